"""SV2TTS synthesizer and engine: RTVC checkpoint compatibility, decoding, and one-line errors.

The published weights are not available offline, so compatibility is checked against the
checkpoint format written down in shared/FACTS.md (key names and shapes), rebuilt here by
hand rather than taken from the model code.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_studio.audio import load_audio
from deepfake_studio.encoder import SpeakerEncoderModel
from deepfake_studio.errors import EngineError, StudioError, TextError
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.sv2tts import (
    CheckpointMismatchError,
    LFSPointerError,
    ModelFileMissingError,
    SV2TTSConfig,
    SV2TTSEngine,
    limit_torch_threads,
    load_sv2tts_engine,
    load_tacotron,
    load_weights,
    split_text,
    stretch_time,
)
from deepfake_studio.synthesizer.tacotron import Tacotron
from deepfake_studio.vocoder.griffin_lim import GriffinLimConfig, GriffinLimVocoder
from deepfake_studio.vocoder.wavernn import WaveRNN, WaveRNNConfig

BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
BUFFERS = {"step", "stop_threshold", "decoder.r"}


def _batch_norm(table: dict[str, tuple[int, ...]], prefix: str, channels: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        table[f"{prefix}.{name}"] = (channels,)
    table[f"{prefix}.num_batches_tracked"] = ()


def _linear(table: dict[str, tuple[int, ...]], prefix: str, out: int, inp: int, bias=True) -> None:  # type: ignore[no-untyped-def]
    table[f"{prefix}.weight"] = (out, inp)
    if bias:
        table[f"{prefix}.bias"] = (out,)


def _bigru(table: dict[str, tuple[int, ...]], prefix: str, inp: int, hidden: int) -> None:
    for suffix in ("", "_reverse"):
        table[f"{prefix}.weight_ih_l0{suffix}"] = (3 * hidden, inp)
        table[f"{prefix}.weight_hh_l0{suffix}"] = (3 * hidden, hidden)
        table[f"{prefix}.bias_ih_l0{suffix}"] = (3 * hidden,)
        table[f"{prefix}.bias_hh_l0{suffix}"] = (3 * hidden,)


def _cbhg(table: dict[str, tuple[int, ...]], prefix: str, inp: int, channels: int) -> None:
    """FACTS: conv bank k = 1..5, two projections, 4 highways, bidirectional GRU."""
    for k in range(1, 6):
        table[f"{prefix}.conv1d_bank.{k - 1}.conv.weight"] = (channels, inp, k)
        _batch_norm(table, f"{prefix}.conv1d_bank.{k - 1}.bnorm", channels)
    table[f"{prefix}.conv_project1.conv.weight"] = (channels, 5 * channels, 3)
    _batch_norm(table, f"{prefix}.conv_project1.bnorm", channels)
    table[f"{prefix}.conv_project2.conv.weight"] = (inp, channels, 3)
    _batch_norm(table, f"{prefix}.conv_project2.bnorm", inp)
    if inp != channels:
        table[f"{prefix}.pre_highway.weight"] = (channels, inp)
    for i in range(4):
        _linear(table, f"{prefix}.highways.{i}.W1", channels, channels)
        _linear(table, f"{prefix}.highways.{i}.W2", channels, channels)
    _bigru(table, f"{prefix}.rnn", channels, channels // 2)


def expected_synthesizer_shapes() -> dict[str, tuple[int, ...]]:
    """RTVC `synthesizer.pt` model_state, from FACTS ("Synthesizer (Tacotron with CBHG ...)")."""
    t: dict[str, tuple[int, ...]] = {"step": (1,), "stop_threshold": (), "decoder.r": ()}
    t["encoder.embedding.weight"] = (66, 512)
    _linear(t, "encoder.pre_net.fc1", 256, 512)
    _linear(t, "encoder.pre_net.fc2", 256, 256)
    _cbhg(t, "encoder.cbhg", 256, 256)
    t["encoder_proj.weight"] = (128, 512)
    _linear(t, "decoder.prenet.fc1", 256, 80)
    _linear(t, "decoder.prenet.fc2", 256, 256)
    t["decoder.attn_net.conv.weight"] = (32, 1, 31)
    t["decoder.attn_net.conv.bias"] = (32,)
    t["decoder.attn_net.L.weight"] = (128, 32)
    _linear(t, "decoder.attn_net.W", 128, 128)
    t["decoder.attn_net.v.weight"] = (1, 128)
    for name, gates, inp, hidden in [
        ("attn_rnn", 3, 768, 128),
        ("res_rnn1", 4, 1024, 1024),
        ("res_rnn2", 4, 1024, 1024),
    ]:
        t[f"decoder.{name}.weight_ih"] = (gates * hidden, inp)
        t[f"decoder.{name}.weight_hh"] = (gates * hidden, hidden)
        t[f"decoder.{name}.bias_ih"] = (gates * hidden,)
        t[f"decoder.{name}.bias_hh"] = (gates * hidden,)
    _linear(t, "decoder.rnn_input", 1024, 640)
    t["decoder.mel_proj.weight"] = (1600, 1024)
    _linear(t, "decoder.stop_proj", 1, 1536)
    _cbhg(t, "postnet", 80, 512)
    t["post_proj.weight"] = (80, 512)
    return t


def _is_parameter(key: str) -> bool:
    return key not in BUFFERS and not key.endswith(BUFFER_SUFFIXES)


@pytest.fixture(scope="module")
def tacotron() -> Tacotron:
    torch.manual_seed(0)
    return Tacotron().eval()


def test_state_dict_matches_the_rtvc_checkpoint_format(tacotron: Tacotron) -> None:
    expected = expected_synthesizer_shapes()
    actual = {k: tuple(v.shape) for k, v in tacotron.state_dict().items()}
    assert sorted(set(actual) - set(expected)) == []
    assert sorted(set(expected) - set(actual)) == []
    assert actual == expected
    state = tacotron.state_dict()
    assert state["step"].dtype == torch.long
    assert state["stop_threshold"].item() == pytest.approx(-3.4)
    assert state["decoder.r"].item() == 2


def test_parameter_count_is_about_30_9_million(tacotron: Tacotron) -> None:
    from_facts = sum(
        math.prod(shape)
        for key, shape in expected_synthesizer_shapes().items()
        if _is_parameter(key)
    )
    counted = sum(p.numel() for p in tacotron.parameters())
    assert counted == from_facts
    assert abs(counted - 30.9e6) < 0.1e6


def _never_stop(model: Tacotron, logit: float) -> Tacotron:
    with torch.no_grad():
        model.decoder.stop_proj.weight.zero_()
        model.decoder.stop_proj.bias.fill_(logit)
    return model


def test_generation_runs_to_max_frames_when_the_stop_token_never_fires(tacotron: Tacotron) -> None:
    model = _never_stop(copy.deepcopy(tacotron), -100.0)
    embedding = torch.nn.functional.normalize(torch.randn(256), dim=0)
    with limit_torch_threads(1):
        mel = model.generate([30, 31, 32, 65, 33, 1], embedding, max_frames=20)
    assert mel.shape == (80, 20)
    assert mel.dtype == torch.float32
    assert torch.isfinite(mel).all()
    assert float(mel.min()) >= -4.0 and float(mel.max()) <= 4.0

    _never_stop(model, 100.0)  # always "stop": honoured for the first step starting after 10
    with limit_torch_threads(1):
        mel = model.generate([30, 31, 32, 1], embedding, max_frames=40)
    assert mel.shape == (80, 14)  # steps start at frames 0, 2, ..., 12 with r = 2


def test_reduction_factor_and_dropout_seed(tacotron: Tacotron) -> None:
    embedding = torch.nn.functional.normalize(torch.randn(256), dim=0)
    ids = [40, 41, 42, 1]

    def run(seed: int) -> torch.Tensor:
        with limit_torch_threads(1):
            return tacotron.generate(ids, embedding, 6, torch.Generator().manual_seed(seed))

    first, again, other = run(1), run(1), run(2)
    assert torch.equal(first, again)  # prenet dropout is seeded, not global
    assert not torch.equal(first, other)

    # r comes from the checkpoint (RTVC changed it during training).
    three = copy.deepcopy(tacotron)
    three.load_state_dict(
        {**tacotron.state_dict(), "decoder.r": torch.tensor(3, dtype=torch.int32)}
    )
    _never_stop(three, -100.0)
    with limit_torch_threads(1):
        assert three.generate(ids, embedding, max_frames=7).shape == (80, 9)  # 3 steps of 3


# --- checkpoints through the engine's loader -----------------------------------------------------


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory, tacotron: Tacotron) -> Path:
    """encoder.pt, synthesizer.pt, vocoder.pt written the way RTVC writes them."""
    folder = tmp_path_factory.mktemp("rtvc")
    torch.manual_seed(1)
    encoder = SpeakerEncoderModel()
    torch.save(
        {"step": 1, "model_state": encoder.state_dict(), "optimizer_state": None},
        folder / "encoder.pt",
    )
    torch.save(
        {"model_state": tacotron.state_dict(), "optimizer_state": None}, folder / "synthesizer.pt"
    )
    torch.save(
        {"model_state": WaveRNN().state_dict(), "optimizer_state": None}, folder / "vocoder.pt"
    )
    return folder


def test_rtvc_synthesizer_checkpoint_loads_strictly(models_dir: Path, tacotron: Tacotron) -> None:
    loaded = load_tacotron(models_dir / "synthesizer.pt")
    assert not loaded.training
    state = loaded.state_dict()
    for key, value in tacotron.state_dict().items():
        assert torch.equal(state[key], value), key


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> SV2TTSEngine:
    """The engine on random weights, with budgets that keep the tests short."""
    config = SV2TTSConfig(
        max_frames=10,
        wavernn=replace(WaveRNNConfig(), target=50, overlap=10, fade_out_frames=2),
        griffin_lim=replace(GriffinLimConfig(), iterations=4),
    )
    return SV2TTSEngine(models_dir, "wavernn", config)


def test_engine_loads_all_three_and_speaks(engine: SV2TTSEngine) -> None:
    assert (engine.name, engine.sample_rate, engine.vocoder_name) == ("sv2tts", 16000, "wavernn")
    embedding = np.random.default_rng(0).normal(size=256).astype(np.float32)
    voice = Conditioning(
        engine="sv2tts", arrays={"embedding": embedding / np.linalg.norm(embedding)}
    )

    # Random weights: a few frames through both vocoders, just to run the whole path.
    samples = engine.synthesize("Hi.", voice)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert 1000 <= len(samples) <= 3000 and np.isfinite(samples).all()

    wavernn = engine.vocoder
    try:
        engine.vocoder = GriffinLimVocoder(engine.config.tacotron.audio, engine.config.griffin_lim)
        samples = engine.synthesize("Hi there.", voice, speed=1.0)
    finally:
        engine.vocoder = wavernn
    assert samples.dtype == np.float32 and np.abs(samples).max() <= 0.99 + 1e-6

    with pytest.raises(TextError):
        engine.synthesize(" ... ", voice)
    with pytest.raises(EngineError, match="no SV2TTS speaker embedding"):
        engine.synthesize("Hi.", Conditioning(engine="kokoro"))
    with pytest.raises(EngineError, match="no built-in voice"):
        engine.default_conditioning()


def test_condition_embeds_with_the_rtvc_encoder(
    engine: SV2TTSEngine, models_dir: Path, speech_dir: Path
) -> None:
    reference = load_audio(speech_dir / "ljspeech/LJ/LJ001-0002.flac", 16000)
    conditioning = engine.condition(reference, encoder=None)  # type: ignore[arg-type]
    embedding = conditioning.arrays["embedding"]
    assert conditioning.engine == "sv2tts"
    assert embedding.shape == (256,) and embedding.dtype == np.float32
    assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)
    # The embedding comes from the folder's encoder.pt, not from resemblyzer's weights.
    from deepfake_studio.encoder import SpeakerEncoder

    ours = SpeakerEncoder(models_dir / "encoder.pt").embed(reference.samples, 16000)
    assert np.allclose(embedding, ours, atol=1e-6)


def test_missing_vocoder_falls_back_to_griffin_lim(models_dir: Path, tmp_path: Path) -> None:
    for name in ("encoder.pt", "synthesizer.pt"):
        (tmp_path / name).symlink_to(models_dir / name)
    assert load_sv2tts_engine(tmp_path, vocoder="wavernn").vocoder_name == "griffinlim"
    (tmp_path / "vocoder.pt").symlink_to(models_dir / "vocoder.pt")  # present but not wanted
    with pytest.raises(EngineError, match="unknown SV2TTS vocoder 'hifigan'"):
        load_sv2tts_engine(tmp_path, vocoder="hifigan")  # type: ignore[arg-type]


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message and isinstance(exc.value, StudioError)
    return message


def test_missing_folder_and_missing_file_errors(models_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFileMissingError) as exc:
        load_sv2tts_engine(tmp_path / "nowhere")
    assert "models folder not found" in _one_line(exc)

    (tmp_path / "encoder.pt").symlink_to(models_dir / "encoder.pt")
    with pytest.raises(ModelFileMissingError) as exc:
        load_sv2tts_engine(tmp_path)
    assert "synthesizer checkpoint not found" in _one_line(exc)


def test_lfs_pointer_error(models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "encoder.pt").symlink_to(models_dir / "encoder.pt")
    (tmp_path / "synthesizer.pt").write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:f2b5ea3c2b8c5a0e1c0d5e4a4f4b2f0c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a\n"
        "size 370554559\n"
    )
    with pytest.raises(LFSPointerError) as exc:
        load_sv2tts_engine(tmp_path)
    assert "Git LFS pointer" in _one_line(exc) and "synthesizer.pt" in str(exc.value)


def test_wrong_shape_names_the_key(models_dir: Path, tmp_path: Path, tacotron: Tacotron) -> None:
    # A small file is enough: the check stops at the first key that does not fit.
    (tmp_path / "encoder.pt").symlink_to(models_dir / "encoder.pt")
    bad = {"step": torch.zeros(1, dtype=torch.long), "stop_threshold": torch.tensor(-3.4),
           "encoder.embedding.weight": torch.zeros(70, 512)}  # fmt: skip
    torch.save({"model_state": bad, "optimizer_state": None}, tmp_path / "synthesizer.pt")
    with pytest.raises(CheckpointMismatchError) as exc:
        load_sv2tts_engine(tmp_path)
    assert "'encoder.embedding.weight' has shape (70, 512), expected (66, 512)" in _one_line(exc)

    state = dict(tacotron.state_dict())
    del state["decoder.mel_proj.weight"]
    model = tacotron  # the checks raise before anything is loaded into it
    with pytest.raises(CheckpointMismatchError, match="missing key 'decoder.mel_proj.weight'"):
        load_weights(model, state, "synthesizer")
    state = {**tacotron.state_dict(), "decoder.extra": torch.zeros(1)}
    with pytest.raises(CheckpointMismatchError, match="unexpected key 'decoder.extra'"):
        load_weights(model, state, "synthesizer")


def test_text_is_split_for_the_attention_and_speed_stretches_the_mel() -> None:
    text = ", ".join(["the red house on the green hill"] * 12) + "."
    pieces = split_text(text, 100)
    assert len(pieces) > 1 and all(len(p) <= 100 for p in pieces)
    assert " ".join(pieces) == text
    mel = np.random.default_rng(0).uniform(-4, 4, (80, 100)).astype(np.float32)
    assert stretch_time(mel, 2.0).shape == (80, 50)
    assert stretch_time(mel, 0.8).shape == (80, 125)
    assert stretch_time(mel, 1.0) is mel
