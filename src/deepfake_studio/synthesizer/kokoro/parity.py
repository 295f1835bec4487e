"""Compare the PyTorch Kokoro with the shipped int8 ONNX on the same input.

The ONNX graph is run with three of its intermediate values exposed as extra outputs — the
rounded durations, the predicted F0 curve and the energy curve — so the PyTorch model can be
run with exactly the ONNX's durations (free-running durations may differ by one frame on a
few tokens, which shifts the audio and makes a waveform comparison meaningless).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DURATIONS = "/encoder/Clip_output_0"
F0_CURVE = "/encoder/F0_proj/Conv_output_0"
ENERGY_CURVE = "/encoder/N_proj/Conv_output_0"


@dataclass
class OnnxRun:
    audio: np.ndarray  # [samples]
    durations: np.ndarray  # [T] int64
    f0: np.ndarray  # [2·frames]
    energy: np.ndarray  # [2·frames]


class OnnxWithIntermediates:
    """The shipped ONNX, with its durations, F0 and energy also returned."""

    def __init__(self, onnx_path: Path, threads: int = 0) -> None:
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(onnx_path))
        for name in (DURATIONS, F0_CURVE, ENERGY_CURVE):
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def run(self, tokens: np.ndarray, style_row: np.ndarray, speed: float = 1.0) -> OnnxRun:
        """`tokens` [1, T] wrapped ids; `style_row` [256]."""
        audio, durations, f0, energy = self._session.run(
            None,
            {
                "tokens": tokens.astype(np.int64),
                "style": style_row.reshape(1, -1).astype(np.float32),
                "speed": np.array([speed], np.float32),
            },
        )
        return OnnxRun(
            audio=np.asarray(audio, np.float32).reshape(-1),
            durations=np.asarray(durations).reshape(-1).astype(np.int64),
            f0=np.asarray(f0, np.float32).reshape(-1),
            energy=np.asarray(energy, np.float32).reshape(-1),
        )


def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-style triangular mel filters [n_mels, n_fft // 2 + 1] (HTK mel scale)."""

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        return 700.0 * (10 ** (mel / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(np.array(sample_rate / 2)), n_mels + 2))
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def log_mel(wave: torch.Tensor, sample_rate: int = 24_000, n_mels: int = 80) -> torch.Tensor:
    """log10 mel magnitude [..., n_mels, frames] (1024-point FFT, hop 256, floor 1e-5).

    Differentiable. On this scale two Kokoro voices saying the same sentence are 1.2-1.4
    apart (mean absolute difference), the figure FACTS.md quotes parity against.
    """
    n_fft, hop = 1024, 256
    window = torch.hann_window(n_fft, device=wave.device)
    spec = torch.stft(wave, n_fft, hop, window=window, return_complex=True).abs()
    bank = torch.from_numpy(_mel_filterbank(sample_rate, n_fft, n_mels)).to(wave)
    return torch.log10((bank @ spec).clamp(min=1e-5))


def log_mel_l1(a: np.ndarray, b: np.ndarray, sample_rate: int = 24_000) -> float:
    """Mean |log10-mel difference| of two waves, over the frames both have."""
    with torch.no_grad():
        ma = log_mel(torch.as_tensor(np.asarray(a, np.float32)), sample_rate)
        mb = log_mel(torch.as_tensor(np.asarray(b, np.float32)), sample_rate)
    frames = min(ma.shape[-1], mb.shape[-1])
    return float((ma[:, :frames] - mb[:, :frames]).abs().mean())


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(np.asarray(a[:n], np.float64), np.asarray(b[:n], np.float64))[0, 1])


def aligned_log_mel_l1(a: np.ndarray, b: np.ndarray, sample_rate: int = 24_000) -> float:
    """log10-mel L1 after dynamic time warping: for two renderings whose durations differ.

    Each path predicts its own durations, which may differ by a frame on a few tokens; DTW
    pairs the frames so only spectral differences are counted (mean over the warping path).
    """
    with torch.no_grad():
        ma = log_mel(torch.as_tensor(np.asarray(a, np.float32)), sample_rate).T.numpy()
        mb = log_mel(torch.as_tensor(np.asarray(b, np.float32)), sample_rate).T.numpy()
    cost = np.abs(ma[:, None, :] - mb[None, :, :]).mean(-1)  # [frames a, frames b]
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    steps = np.zeros((n + 1, m + 1))
    total[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            options = (total[i - 1, j - 1], total[i - 1, j], total[i, j - 1])
            k = int(np.argmin(options))
            prev = ((i - 1, j - 1), (i - 1, j), (i, j - 1))[k]
            total[i, j] = cost[i - 1, j - 1] + options[k]
            steps[i, j] = steps[prev] + 1
    return float(total[n, m] / steps[n, m])


BAND_EDGES_HZ = (0, 250, 500, 1000, 2000, 4000, 6000, 8000, 12000)


def band_levels_db(wave: np.ndarray, sample_rate: int = 24_000) -> list[float]:
    """Mean power (dB) in each band of `BAND_EDGES_HZ` over the louder 70 % of frames
    (1024-point FFT, hop 256): the table `benchmarks/path_similarity.py --bands` prints."""
    with torch.no_grad():
        x = torch.as_tensor(np.asarray(wave, np.float32))
        window = torch.hann_window(1024)
        power = torch.stft(x, 1024, 256, window=window, return_complex=True).abs().numpy() ** 2
    freqs = np.linspace(0.0, sample_rate / 2, power.shape[0])
    frames = power.sum(0)
    loud = frames > np.percentile(frames, 30)
    return [
        float(10 * np.log10(power[(freqs >= lo) & (freqs < hi)][:, loud].mean() + 1e-12))
        for lo, hi in itertools.pairwise(BAND_EDGES_HZ)
    ]
