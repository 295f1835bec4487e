"""The engine's two paths: int8 ONNX for plain voices, PyTorch for adapted or edited ones."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_studio.errors import EngineError
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro import KokoroEngine
from deepfake_studio.synthesizer.kokoro.model import KokoroModel
from deepfake_studio.synthesizer.kokoro.parity import aligned_log_mel_l1
from deepfake_studio.synthesizer.kokoro.torch_path import (
    ProsodyEdit,
    TorchKokoro,
    needs_torch,
    with_decoder_deltas,
    with_prosody_edit,
)

TEXT = "The weather is lovely today."
SAMPLE_RATE = 24_000


@pytest.fixture
def engine(kokoro_engine: KokoroEngine, kokoro_torch: KokoroModel, monkeypatch) -> KokoroEngine:  # type: ignore[no-untyped-def]
    """The session engine, its PyTorch path sharing the session's float model."""
    monkeypatch.setattr(kokoro_engine, "torch_path", TorchKokoro(model=kokoro_torch))
    return kokoro_engine


@pytest.fixture(scope="module")
def onnx_audio(kokoro_engine: KokoroEngine) -> np.ndarray:
    return kokoro_engine.synthesize(TEXT, kokoro_engine.default_conditioning())


def median_f0(audio: np.ndarray) -> float:
    import pyworld

    f0, _ = pyworld.dio(audio.astype(np.float64), SAMPLE_RATE, frame_period=10.0)
    return float(np.median(f0[f0 > 0]))


def test_the_path_follows_the_conditioning(kokoro_engine: KokoroEngine) -> None:
    plain = kokoro_engine.default_conditioning()
    assert not needs_torch(plain)
    assert not needs_torch(with_prosody_edit(plain, ProsodyEdit()))
    assert needs_torch(with_prosody_edit(plain, ProsodyEdit(f0_shift_semitones=2.0)))
    assert needs_torch(with_decoder_deltas(plain, {"decoder.asr_res.0.bias": np.zeros(64)}))


def test_a_voice_sounds_the_same_on_both_paths(
    engine: KokoroEngine, onnx_audio: np.ndarray
) -> None:
    # zero deltas: the same voice, forced onto the PyTorch path
    zero = {"decoder.generator.conv_post.bias": np.zeros(22, np.float32)}
    torch_audio = engine.synthesize(TEXT, with_decoder_deltas(engine.default_conditioning(), zero))
    assert abs(len(torch_audio) - len(onnx_audio)) <= 5 * 600  # ≤ 5 frames of durations apart
    distance = aligned_log_mel_l1(onnx_audio, torch_audio)
    print(f"ONNX vs PyTorch path (bfloat16={engine.torch_path.bfloat16}): {distance:.3f}")
    assert distance <= 0.3, f"ONNX vs PyTorch path: aligned log-mel L1 {distance:.3f}"
    other = Conditioning(engine="kokoro", arrays={"style": engine.style_packs["jf_gongitsune"]})
    assert distance < 0.5 * aligned_log_mel_l1(onnx_audio, engine.synthesize(TEXT, other))


def test_a_prosody_edit_shifts_the_pitch(engine: KokoroEngine, onnx_audio: np.ndarray) -> None:
    edit = ProsodyEdit(f0_shift_semitones=5.0)
    raised = engine.synthesize(TEXT, with_prosody_edit(engine.default_conditioning(), edit))
    ratio = median_f0(raised) / median_f0(onnx_audio)
    assert 1.2 < ratio < 1.5, f"pitch ratio {ratio:.3f}, expected about {2 ** (5 / 12):.3f}"


def test_decoder_deltas_change_the_output_and_bad_ones_fail(
    engine: KokoroEngine, onnx_audio: np.ndarray
) -> None:
    louder = np.zeros(22, np.float32)
    louder[:11] = 0.5  # log-magnitude channels of the predicted STFT: ×1.65
    conditioning = with_decoder_deltas(
        engine.default_conditioning(), {"decoder.generator.conv_post.bias": louder}
    )
    audio = engine.synthesize(TEXT, conditioning)
    rms_ratio = np.sqrt(np.mean(audio**2)) / np.sqrt(np.mean(onnx_audio**2))
    assert rms_ratio > 1.3
    for bad, expected in [
        ({"bert.layer.ffn.bias": np.zeros(2048)}, "not a decoder weight"),
        ({"decoder.generator.conv_post.bias": np.zeros(21)}, "(21,)"),
    ]:
        with pytest.raises(EngineError) as err:
            engine.synthesize(TEXT, with_decoder_deltas(engine.default_conditioning(), bad))
        assert expected in str(err.value) and "\n" not in str(err.value)


def test_every_enrollment_quality_has_one_card_for_the_front_ends() -> None:
    """The CLI, the API and the web studio describe the qualities from QUALITY_CARDS: one card
    per quality, cheapest first, each with a time and a measured similarity."""
    from deepfake_studio.synthesizer.kokoro.engine import (
        QUALITIES,
        QUALITY_CARDS,
        quality_similarities,
    )

    assert tuple(QUALITY_CARDS) == QUALITIES
    assert all(card.time and 0.0 < card.similarity < 1.0 for card in QUALITY_CARDS.values())
    sims = [card.similarity for card in QUALITY_CARDS.values()]
    assert sims == sorted(sims)  # a dearer quality gives more
    assert quality_similarities().startswith("quick 0.")
