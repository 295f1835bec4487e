"""LFCC shapes and content, window arithmetic, the network's size and its ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_studio.detector.features import (
    FeatureConfig,
    fit_frames,
    lfcc,
    lfcc_batch,
    linear_filterbank,
    window_starts,
)
from deepfake_studio.detector.model import ModelConfig, SpecRNetLite, count_parameters
from deepfake_studio.detector.train import TrainConfig, export_onnx


def test_lfcc_shape_is_160_by_one_frame_per_10_ms() -> None:
    rng = np.random.default_rng(0)
    for seconds, frames in ((1.0, 101), (3.0, 301), (4.0, 401)):
        f = lfcc(rng.normal(0, 0.1, int(seconds * 16_000)).astype(np.float32))
        assert f.shape == (160, frames) and f.dtype == np.float32
        assert np.isfinite(f).all()
    tiny = lfcc(np.zeros(100, np.float32))  # shorter than a frame: padded, no crash
    assert tiny.shape[0] == 160 and tiny.shape[1] >= 1 and np.isfinite(tiny).all()


def test_torch_lfcc_for_training_matches_the_numpy_one() -> None:
    rng = np.random.default_rng(0)
    batch = rng.normal(0, 0.1, (4, 48_000)).astype(np.float32)
    batch[1, :20_000] = 0.0  # digital silence hits the floor in both
    batch[2] *= np.linspace(0, 1, 48_000, dtype=np.float32) ** 3
    expected = np.stack([lfcc(x) for x in batch])
    got = lfcc_batch(torch.from_numpy(batch)).numpy()
    assert got.shape == expected.shape == (4, 160, 301)
    assert np.abs(got - expected).max() < 0.01  # dB-scale cepstra; float32 rounding only


def test_lfcc_sees_the_band_a_tone_is_in() -> None:
    """Linear bands: a 6 kHz tone lands in filter 6000 / 8000 · 257 ≈ 192 of 256."""
    config = FeatureConfig()
    t = np.arange(16_000) / 16_000
    tone = (0.5 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    bank = linear_filterbank(config)
    spectrum = np.abs(np.fft.rfft(tone[:1024] * np.hanning(1024))) ** 2
    assert abs(int(np.argmax(bank @ spectrum)) - 192) <= 1
    # Cepstra of a tone differ from those of noise at the same level.
    noise = np.random.default_rng(0).normal(0, 0.35, 16_000).astype(np.float32)
    assert np.abs(lfcc(tone).mean(1) - lfcc(noise).mean(1)).max() > 5


def test_windows_cover_every_frame() -> None:
    assert window_starts(401, 301, 150) == [0, 100]
    assert window_starts(301, 301, 150) == [0]
    assert window_starts(100, 301, 150) == [0]
    assert window_starts(1000, 301, 150) == [0, 150, 300, 450, 600, 699]
    short = np.arange(2 * 50, dtype=np.float32).reshape(2, 50)
    filled = fit_frames(short, 301)
    assert filled.shape == (2, 301) and (filled[:, 50:100] == short).all()


def test_model_is_small_and_takes_any_length() -> None:
    model = SpecRNetLite(ModelConfig()).eval()
    assert count_parameters(model) < 400_000
    with torch.inference_mode():
        for frames in (32, 301, 1001):
            assert model(torch.randn(3, 160, frames)).shape == (3,)


def test_onnx_export_matches_torch(tmp_path: Path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = SpecRNetLite().eval()
    path = export_onnx(model, tmp_path / "d.onnx", TrainConfig())
    assert path.stat().st_size < 2 * 2**20
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 160, 450)
    with torch.inference_mode():
        expected = model(x).numpy()
    got = session.run(None, {"lfcc": x.numpy()})[0]
    assert got == pytest.approx(expected, abs=1e-4)


def test_one_class_head_scores_by_cosine_to_the_real_direction(tmp_path: Path) -> None:
    """OC-softmax: logit α·(mid − cos); the loss is small for real speech on the real direction
    and for spoofs far from it, large the other way round; it exports to ONNX like the BCE head."""
    import onnxruntime as ort

    from deepfake_studio.detector.model import one_class_loss

    config = ModelConfig(one_class_dim=8)
    torch.manual_seed(0)
    model = SpecRNetLite(config).eval()
    direction = model.real_direction.detach()
    on, away = direction[None, :], -direction[None, :]
    assert model.cosine_to_logit(model.real_cosine(on)).item() == pytest.approx(20 * (0.55 - 1))
    assert model.cosine_to_logit(model.real_cosine(away)).item() == pytest.approx(20 * 1.55)
    logits = torch.tensor([20 * (0.55 - 0.95), 20 * (0.55 - 0.1)])  # cos 0.95, cos 0.1
    right = one_class_loss(logits, torch.tensor([0.0, 1.0]), config)  # real near, spoof far
    wrong = one_class_loss(logits, torch.tensor([1.0, 0.0]), config)
    assert right.item() < 0.8 and wrong.item() > 10
    # Inside its margin a real clip costs almost nothing; the loss is the paper's formula.
    cos = torch.tensor([0.95])
    expected = torch.nn.functional.softplus(20 * (0.9 - cos))
    got = one_class_loss(model.cosine_to_logit(cos), torch.tensor([0.0]), config)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert count_parameters(model) < 500_000
    path = export_onnx(model, tmp_path / "oc.onnx", TrainConfig(model=config))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 160, 301)
    with torch.inference_mode():
        expected_logits = model(x).numpy()
    assert session.run(None, {"lfcc": x.numpy()})[0] == pytest.approx(expected_logits, abs=1e-4)
    assert np.all(np.abs(expected_logits) <= 20 * 1.55 + 1e-4)  # bounded: a cosine underneath


def test_onnx_weights_load_back_into_torch_for_fine_tuning(tmp_path: Path) -> None:
    """The shipped weights exist only as ONNX, with four BatchNorms folded into convolutions
    and the GRU's gates reordered: loaded back, the torch model gives the ONNX model's logits,
    and stays that way in training mode once its BatchNorms are frozen."""
    import onnxruntime as ort

    from deepfake_studio.detector.infer import weights_dir
    from deepfake_studio.detector.model import freeze_batchnorm, load_onnx_weights

    shipped = weights_dir() / "detector.onnx"
    model = load_onnx_weights(SpecRNetLite(ModelConfig()), shipped).eval()
    session = ort.InferenceSession(str(shipped), providers=["CPUExecutionProvider"])
    x = 10 * torch.randn(3, 160, 301, generator=torch.Generator().manual_seed(1))
    expected = session.run(None, {"lfcc": x.numpy()})[0]
    assert np.abs(expected).max() > 0.5  # not a degenerate input
    with torch.inference_mode():
        assert model(x).numpy() == pytest.approx(expected, abs=1e-4)
        model.train()
        freeze_batchnorm(model)
        model.dropout.eval()  # dropout is the one random layer left
        assert model(x).numpy() == pytest.approx(expected, abs=1e-4)
    # A fresh model is far from it: the weights did come from the file.
    with torch.inference_mode():
        assert np.abs(SpecRNetLite(ModelConfig()).eval()(x).numpy() - expected).max() > 0.1
