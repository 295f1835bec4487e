"""WaveRNN vocoder: RTVC checkpoint format, folded generation, and its fold/unfold arithmetic."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_studio.synthesizer.sv2tts import (
    CheckpointMismatchError,
    LFSPointerError,
    ModelFileMissingError,
    limit_torch_threads,
    load_wavernn,
)
from deepfake_studio.vocoder.wavernn import (
    WaveRNN,
    WaveRNNConfig,
    WaveRNNVocoder,
    crossfade_weights,
    fold_with_overlap,
    xfade_and_unfold,
)


def expected_vocoder_shapes() -> dict[str, tuple[int, ...]]:
    """RTVC `vocoder.pt` model_state, from FACTS ("Vocoder (WaveRNN, RAW mode ...)")."""
    t: dict[str, tuple[int, ...]] = {"step": (1,)}

    def batch_norm(prefix: str) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            t[f"{prefix}.{name}"] = (128,)
        t[f"{prefix}.num_batches_tracked"] = ()

    t["upsample.resnet.conv_in.weight"] = (128, 80, 5)
    batch_norm("upsample.resnet.batch_norm")
    for i in range(10):
        t[f"upsample.resnet.layers.{i}.conv1.weight"] = (128, 128, 1)
        t[f"upsample.resnet.layers.{i}.conv2.weight"] = (128, 128, 1)
        batch_norm(f"upsample.resnet.layers.{i}.batch_norm1")
        batch_norm(f"upsample.resnet.layers.{i}.batch_norm2")
    t["upsample.resnet.conv_out.weight"] = (128, 128, 1)
    t["upsample.resnet.conv_out.bias"] = (128,)
    t["upsample.up_layers.1.weight"] = (1, 1, 1, 11)
    t["upsample.up_layers.3.weight"] = (1, 1, 1, 11)
    t["upsample.up_layers.5.weight"] = (1, 1, 1, 17)
    t["I.weight"], t["I.bias"] = (512, 113), (512,)
    for name, inp in (("rnn1", 512), ("rnn2", 544)):
        t[f"{name}.weight_ih_l0"] = (1536, inp)
        t[f"{name}.weight_hh_l0"] = (1536, 512)
        t[f"{name}.bias_ih_l0"] = (1536,)
        t[f"{name}.bias_hh_l0"] = (1536,)
    for name, inp in (("fc1", 544), ("fc2", 544), ("fc3", 512)):
        t[f"{name}.weight"], t[f"{name}.bias"] = (512, inp), (512,)
    return t


class Opaque:
    """A pickled object: torch.load(weights_only=True) must refuse it."""


@pytest.fixture(scope="module")
def model() -> WaveRNN:
    torch.manual_seed(0)
    return WaveRNN().eval()


def test_state_dict_matches_the_rtvc_checkpoint_format(model: WaveRNN) -> None:
    actual = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert actual == expected_vocoder_shapes()
    buffers = ("step", "running_mean", "running_var", "num_batches_tracked")
    from_facts = sum(
        math.prod(s) for k, s in expected_vocoder_shapes().items() if not k.endswith(buffers)
    )
    counted = sum(p.numel() for p in model.parameters())
    assert counted == from_facts
    assert abs(counted - 4.5e6) < 0.05e6


@pytest.mark.parametrize("wrapped", [True, False])
def test_checkpoint_loads_with_or_without_model_state(
    model: WaveRNN, tmp_path: Path, wrapped: bool
) -> None:
    state = model.state_dict()
    path = tmp_path / "vocoder.pt"
    torch.save({"model_state": state, "optimizer_state": None} if wrapped else state, path)
    loaded = load_wavernn(path)
    assert not loaded.training
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


def test_checkpoint_errors_are_one_line(model: WaveRNN, tmp_path: Path) -> None:
    with pytest.raises(ModelFileMissingError, match="vocoder checkpoint not found"):
        load_wavernn(tmp_path / "vocoder.pt")

    pointer = tmp_path / "pointer.pt"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 53845290\n")
    with pytest.raises(LFSPointerError, match="Git LFS pointer"):
        load_wavernn(pointer)

    state = dict(model.state_dict())
    state["fc3.weight"] = torch.zeros(256, 512)  # an 8-bit model: does not fit
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointMismatchError) as exc:
        load_wavernn(tmp_path / "bad.pt")
    assert "'fc3.weight' has shape (256, 512), expected (512, 512)" in str(exc.value)
    assert "\n" not in str(exc.value)

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint" * 100)
    with pytest.raises(CheckpointMismatchError, match="cannot read SV2TTS vocoder"):
        load_wavernn(tmp_path / "junk.pt")

    torch.save({"model_state": Opaque()}, tmp_path / "code.pt")
    with pytest.raises(CheckpointMismatchError, match="holds Python objects other than tensors"):
        load_wavernn(tmp_path / "code.pt")


@pytest.mark.parametrize(("length", "target", "overlap"), [(10, 2, 1), (4400, 2000, 200),
    (4401, 2000, 200), (999, 2000, 200), (16000, 8000, 800), (5000, 300, 0)])  # fmt: skip
def test_unfolding_a_folded_signal_reproduces_it(length: int, target: int, overlap: int) -> None:
    signal = torch.randn(1, length, 1, dtype=torch.float64)
    folds = fold_with_overlap(signal, target, overlap)
    n_folds = folds.shape[0]
    assert folds.shape == (n_folds, target + 2 * overlap, 1)
    assert n_folds == max(1, math.ceil((length - overlap) / (target + overlap)))
    for i in range(n_folds):  # fold i starts at i * (target + overlap)
        start = i * (target + overlap)
        chunk = signal[0, start : start + target + 2 * overlap, 0]
        assert torch.equal(folds[i, : len(chunk), 0], chunk)
    unfolded = xfade_and_unfold(folds[:, :, 0].numpy(), overlap)
    assert len(unfolded) == n_folds * (target + overlap) + overlap >= length
    np.testing.assert_allclose(unfolded[:length], signal[0, :, 0].numpy(), atol=1e-12)
    assert not unfolded[length:].any()


def test_crossfade_gains_sum_to_one_and_leave_the_warm_up_silent() -> None:
    fade_in = crossfade_weights(800)
    assert (fade_in[:400] == 0).all()
    assert np.all(np.diff(fade_in) >= 0) and 0 < fade_in[400] < 0.01 and 0.99 < fade_in[-1] <= 1


def test_folded_generation_returns_about_t_times_hop_samples(model: WaveRNN) -> None:
    # RTVC generates with target 8000 / overlap 800; smaller folds keep the test short.
    small = WaveRNN(replace(WaveRNNConfig(), target=50, overlap=10)).eval()
    small.load_state_dict(model.state_dict())
    mel = np.random.default_rng(0).uniform(-4, 4, (80, 8)).astype(np.float32)
    with limit_torch_threads(1):
        wav = WaveRNNVocoder(small, seed=3)(mel)
        again = WaveRNNVocoder(small, seed=3)(mel)
    assert wav.dtype == np.float32 and wav.shape == ((8 - 1) * 200,)
    assert np.isfinite(wav).all() and np.abs(wav).max() > 0
    np.testing.assert_array_equal(wav, again)  # sampling is seeded
    assert wav[-1] == 0.0  # faded out at the end
