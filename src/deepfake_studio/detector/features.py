"""Detector input features: LFCC at 16 kHz, as SpecRNet (Kawa et al., 2022) used them.

    16 kHz wav ─► |STFT|² (Hann 800 = 50 ms, hop 160 = 10 ms, n_fft 1024, centred, reflect)
               ─► 256 linear-frequency triangular filters (0–8 kHz) ─► 10·log10
               ─► DCT-II (orthonormal) ─► first 160 coefficients  =  LFCC (160, frames)

Linear (not mel) bands keep the resolution high above 4 kHz, where vocoders and codecs leave
most of their traces. The window and the filters are finer than SpecRNet's (25 ms, 128 bands,
80 coefficients) so that the harmonics of the voice survive: a 25 ms window cannot separate
harmonics 100 Hz apart, and keeping 80 of 128 cepstra drops the quefrencies of any pitch below
about 200 Hz. Both hide what vocoder resynthesis gets wrong (WORLD's too-regular excitation):
with SpecRNet's settings WORLD clips had a 14 % EER, with these 0.3 %
(benchmarks/detector_training_compare.md).

Pure numpy, so inference needs neither torch nor librosa; training uses the very same
function, so what the network saw is exactly what it gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy.fft import dct

if TYPE_CHECKING:
    import torch

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class FeatureConfig:
    """How LFCCs are computed (stored in the model card JSON with the shipped weights)."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    win_length: int = 800  # 50 ms: resolves harmonics 100 Hz apart
    hop_length: int = 160  # 10 ms
    n_filters: int = 256  # 31.25 Hz apart
    n_lfcc: int = 160  # keeps pitches down to 100 Hz; the network needs at least 64
    floor: float = 1e-10  # power floor before the log (digital silence → -100 dB, not -inf)

    def frames(self, n_samples: int) -> int:
        """Frames `lfcc` returns for `n_samples` (centred framing: one per hop, plus one)."""
        return n_samples // self.hop_length + 1


@lru_cache(maxsize=4)
def linear_filterbank(config: FeatureConfig) -> np.ndarray:
    """(n_filters, n_fft // 2 + 1) triangular filters, evenly spaced from 0 Hz to Nyquist."""
    bins = np.fft.rfftfreq(config.n_fft, d=1.0 / config.sample_rate)
    edges = np.linspace(0.0, config.sample_rate / 2, config.n_filters + 2)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


@lru_cache(maxsize=4)
def _window(config: FeatureConfig) -> np.ndarray:
    """Periodic Hann of win_length, zero-padded (centred) to n_fft."""
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(config.win_length) / config.win_length)
    padded = np.zeros(config.n_fft, np.float32)
    left = (config.n_fft - config.win_length) // 2
    padded[left : left + config.win_length] = hann
    return padded


def lfcc(samples: np.ndarray, config: FeatureConfig | None = None) -> np.ndarray:
    """(n_lfcc, frames) float32 LFCCs of a mono 16 kHz waveform."""
    config = config or FeatureConfig()
    x = np.asarray(samples, np.float32)
    pad = config.n_fft // 2
    if len(x) <= pad:  # reflect padding needs more samples than it mirrors
        x = np.pad(x, (0, pad + 1 - len(x)))
    x = np.pad(x, pad, mode="reflect")
    n_frames = 1 + (len(x) - config.n_fft) // config.hop_length
    frames = np.lib.stride_tricks.sliding_window_view(x, config.n_fft)[:: config.hop_length]
    spectrum = np.fft.rfft(frames[:n_frames] * _window(config), axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    bands = power.astype(np.float32) @ linear_filterbank(config).T
    log_bands = 10.0 * np.log10(np.maximum(bands, config.floor))
    coefficients = dct(log_bands, type=2, axis=1, norm="ortho")[:, : config.n_lfcc]
    return np.ascontiguousarray(coefficients.T, dtype=np.float32)


def window_starts(n_frames: int, window: int, hop: int) -> list[int]:
    """First frames of the windows that cover `n_frames`: every `hop`, the last one flush with
    the end (so no tail is left unscored); a single window when the input is shorter."""
    if n_frames <= window:
        return [0]
    starts = list(range(0, n_frames - window + 1, hop))
    if starts[-1] != n_frames - window:
        starts.append(n_frames - window)
    return starts


def fit_frames(features: np.ndarray, window: int) -> np.ndarray:
    """Features with at least `window` frames: shorter inputs are repeated (as clips are
    tiled in the training data) rather than padded with silence."""
    frames = features.shape[-1]
    if frames >= window:
        return features
    return np.tile(features, (1, -(-window // frames)))[:, :window]


def lfcc_batch(samples: torch.Tensor, config: FeatureConfig | None = None) -> torch.Tensor:
    """`lfcc` for a batch (B, samples) in torch: training computes features of augmented crops
    on the fly with it. Same window, filters and DCT as `lfcc` (tests compare the two)."""
    import torch

    config = config or FeatureConfig()
    window = torch.from_numpy(_window(config))
    spectrum = torch.stft(
        samples.float(),
        config.n_fft,
        hop_length=config.hop_length,
        win_length=config.n_fft,  # `_window` is already the Hann of win_length, padded to n_fft
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )  # (B, n_fft // 2 + 1, frames)
    power = spectrum.real**2 + spectrum.imag**2
    bands = torch.from_numpy(linear_filterbank(config)) @ power
    log_bands = 10.0 * torch.log10(torch.clamp(bands, min=config.floor))
    return torch.from_numpy(_dct_matrix(config)) @ log_bands  # (B, n_lfcc, frames)


@lru_cache(maxsize=4)
def _dct_matrix(config: FeatureConfig) -> np.ndarray:
    """(n_lfcc, n_filters) orthonormal DCT-II, the first n_lfcc rows of scipy's `dct`."""
    return np.ascontiguousarray(
        dct(np.eye(config.n_filters, dtype=np.float64), type=2, axis=0, norm="ortho")[
            : config.n_lfcc
        ].astype(np.float32)
    )
