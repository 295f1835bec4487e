"""The `best` enrollment: decoder adaptation on top of the style fit, and how voices store it.

The reference is a real train-split speaker (VCC16_TF1, two clips, 7 s, with transcripts), as in
test_reconstruct.py, and the style fit under it is the one that file judges (made once per
session, conftest.py); the adaptation is cut to a few steps on short crops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_studio.audio import Audio
from deepfake_studio.errors import EngineError
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro import reconstruct as rc
from deepfake_studio.synthesizer.kokoro.adapt import (
    AdaptConfig,
    DecoderAdapter,
    factors_to_arrays,
)
from deepfake_studio.synthesizer.kokoro.fit import HOLDOUT_SENTENCE
from deepfake_studio.synthesizer.kokoro.torch_path import (
    LOWRANK_PREFIX,
    lowrank_deltas,
    needs_torch,
)
from deepfake_studio.voices import Voice, VoiceLibrary

# Only the crops of the fitter that the guard test adapts; the style fit itself is the
# session's (conftest.py): adaptation does not need a good one, and one fit serves both files.
FIT = rc.StyleFitConfig(steps=2, crop_seconds=1.0)
TEXT = "A short sentence to speak."


def test_lowrank_factors_expand_to_deltas_and_damaged_ones_fail() -> None:
    rng = np.random.default_rng(0)
    up, down = rng.normal(size=(4, 2)), rng.normal(size=(2, 3 * 5))
    arrays = factors_to_arrays({"encode.conv1.weight": (up, down)})
    assert set(arrays) == {
        f"{LOWRANK_PREFIX}decoder.encode.conv1.weight.up",
        f"{LOWRANK_PREFIX}decoder.encode.conv1.weight.down",
    }
    assert all(a.dtype == np.float16 for a in arrays.values())
    shapes = {"decoder.encode.conv1.weight": (4, 3, 5)}
    delta = lowrank_deltas(arrays, shapes)["decoder.encode.conv1.weight"]
    assert delta.shape == (4, 3, 5)
    np.testing.assert_allclose(delta, (up @ down).reshape(4, 3, 5), atol=0.02)

    lone = {k: v for k, v in arrays.items() if k.endswith(".up")}
    with pytest.raises(EngineError, match="incomplete"):
        lowrank_deltas(lone, shapes)
    with pytest.raises(EngineError, match="does not fit"):
        lowrank_deltas(arrays, {"decoder.encode.conv1.weight": (5, 3, 5)})
    with pytest.raises(EngineError, match="not a decoder weight"):
        lowrank_deltas(arrays, {})


def test_a_lowrank_voice_speaks_through_pytorch_and_survives_the_library(
    kokoro_engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    plain = kokoro_engine.default_conditioning()
    rng = np.random.default_rng(1)
    weight = dict(kokoro_engine.torch_path.model.decoder.named_parameters())["encode.conv1.weight"]
    up = rng.normal(scale=0.2, size=(weight.shape[0], 4))
    down = rng.normal(scale=0.2, size=(4, weight.shape[1] * weight.shape[2]))
    adapted = Conditioning(
        engine="kokoro",
        arrays={**plain.arrays, **factors_to_arrays({"encode.conv1.weight": (up, down)})},
        info=dict(plain.info),
    )
    assert needs_torch(adapted) and not needs_torch(plain)
    library = VoiceLibrary(tmp_path)
    library.save(
        Voice(
            name="lowrank",
            embedding=np.zeros(256, np.float32),
            conditioning=adapted,
            consent="test",
            source_sha256="",
        )
    )
    stored = library.load("lowrank").conditioning
    zero = {
        k: np.zeros_like(v)
        for k, v in factors_to_arrays({"encode.conv1.weight": (up, down)}).items()
    }
    unchanged = Conditioning(engine="kokoro", arrays={**plain.arrays, **zero}, info={})
    a = kokoro_engine.synthesize(TEXT, stored)
    b = kokoro_engine.synthesize(TEXT, adapted)
    # One expansion per voice: the stored and the in-memory copy are the same voice.
    cached = kokoro_engine.torch_path.adapted_params(adapted)
    assert kokoro_engine.torch_path.adapted_params(stored) is cached
    same_voice_on_pytorch = kokoro_engine.synthesize(TEXT, unchanged)
    assert kokoro_engine.torch_path.adapted_params(unchanged) is not cached
    assert kokoro_engine.torch_path.adapted_params(plain) == {}
    np.testing.assert_allclose(a, b, atol=1e-5)  # the library keeps the factors exactly
    n = min(len(a), len(same_voice_on_pytorch))
    # The delta changes the sound (a zero delta would leave it as the pack's).
    assert np.abs(a[:n] - same_voice_on_pytorch[:n]).mean() > 0.1 * np.abs(a[:n]).mean()


@pytest.fixture(scope="module")
def reference(tf1_reference: Audio) -> Audio:
    return tf1_reference


@pytest.fixture(scope="module")
def fitted(tf1_fitted: rc.StyleFitResult) -> rc.StyleFitResult:
    return tf1_fitted


@pytest.mark.slow
def test_best_adapts_the_decoder_and_stores_a_few_megabytes(
    kokoro_engine, fitted: rc.StyleFitResult, reference: Audio
) -> None:  # type: ignore[no-untyped-def]
    standard = rc.conditioning_from(kokoro_engine.style_packs, fitted)
    config = AdaptConfig(steps=4, check_every=2, crop_seconds=1.5, max_wer_rise=0.5)
    best = kokoro_engine.adapt(reference, fitted, standard, config=config)
    report = best.info["adaptation"]
    assert best.info["quality"] == "best"
    checks = report["checks"]
    assert [c["step"] for c in checks] == [0, 2, 4], checks
    # Kept: the check with the lowest loss on the held-out tail of the reference.
    kept = next(c for c in checks if c["step"] == report["kept_step"])
    assert report["kept_step"] > 0, checks
    assert kept["holdout_loss"] < checks[0]["holdout_loss"], checks
    assert any(k.startswith(LOWRANK_PREFIX) for k in best.arrays)
    assert 0.5 < report["stored_mb"] < 25, report["stored_mb"]
    assert needs_torch(best)
    audio = kokoro_engine.synthesize(HOLDOUT_SENTENCE, best)
    plain = kokoro_engine.synthesize(HOLDOUT_SENTENCE, standard)
    assert 0.7 < len(audio) / len(plain) < 1.3
    assert 0.01 < float(np.sqrt(np.mean(audio**2))) < 0.5


@pytest.mark.slow
def test_an_adaptation_the_guard_hears_as_garbled_is_rolled_back(
    kokoro_engine, fitted: rc.StyleFitResult, reference: Audio
) -> None:  # type: ignore[no-untyped-def]
    """The intelligibility guard alone: with no held-out slice (as for a reference too short
    to spare one) every check would be kept on its loss, but from step 1 on the words come
    back wrong, so none may be. (Whisper is replaced here because what is under test is the
    guard's decision, not the recogniser.)"""
    model = kokoro_engine.torch_path.model
    fitter = rc.StyleFitter(
        model,
        fitted.alignment.ids,
        fitted.alignment.durations,
        rc.prepare_reference(reference, FIT),
        FIT,
    )
    heard: list[int] = []

    def speak_and_transcribe(style: np.ndarray, deltas: dict[str, torch.Tensor]) -> str:
        heard.append(len(deltas))
        moved = any(float(d.abs().max()) > 0 for d in deltas.values())
        return "garbled words only" if moved else HOLDOUT_SENTENCE

    config = AdaptConfig(steps=2, check_every=1, crop_seconds=1.0, holdout_fraction=0.0)
    result = DecoderAdapter(model, fitter, speak_and_transcribe, config).adapt(fitted.style)
    assert [c.step for c in result.checks] == [0, 1, 2]
    assert result.checks[0].wer == 0.0 and result.checks[-1].wer == 1.0
    assert all(c.holdout_loss is None for c in result.checks)  # nothing held out
    assert result.kept_step == 0 and result.factors == {} and result.arrays() == {}
    np.testing.assert_array_equal(result.style, fitted.style)
    assert min(heard) > 0  # the guard saw the deltas of every adapted weight
