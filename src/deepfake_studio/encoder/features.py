"""Encoder input features: 40-channel power mel spectrogram, as resemblyzer/RTVC compute it.

resemblyzer calls `librosa.feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160,
n_mels=40)` with librosa's defaults: periodic Hann window, centred frames with zero padding,
|STFT|^2 and a Slaney-style mel filterbank with Slaney area normalisation. It is *not* a log-mel.
The filterbank is rebuilt in numpy and the STFT runs in torch (differentiable, and fast), so
librosa, which is slow to import and only an optional extra here, is never needed.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .model import EncoderConfig

# Slaney's mel scale: linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3.0  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(freqs: np.ndarray) -> np.ndarray:
    """Hz -> Slaney mels (librosa's `hz_to_mel(htk=False)`)."""
    freqs = np.asarray(freqs, dtype=np.float64)
    mels = freqs / _F_SP
    log_part = freqs >= _MIN_LOG_HZ
    return np.where(
        log_part,
        _MIN_LOG_MEL + np.log(np.maximum(freqs, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP,
        mels,
    )


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Slaney mels -> Hz (librosa's `mel_to_hz(htk=False)`)."""
    mels = np.asarray(mels, dtype=np.float64)
    freqs = _F_SP * mels
    log_part = mels >= _MIN_LOG_MEL
    return np.where(log_part, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels - _MIN_LOG_MEL)), freqs)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32 Slaney filterbank, equal to `librosa.filters.mel`."""
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    # n_mels + 2 edges evenly spaced in mel between 0 Hz and Nyquist.
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    # Slaney normalisation: each triangle has (approximately) constant energy.
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    # librosa builds the bank in float32; matching that keeps the features bit-comparable.
    weights = weights.astype(np.float32)
    weights.flags.writeable = False  # cached and shared: nobody may modify it
    return weights


def mel_spectrogram(wav: np.ndarray, config: EncoderConfig | None = None) -> np.ndarray:
    """(frames, n_mels) float32 power mel spectrogram of a 16 kHz mono waveform.

    Runs the torch implementation in float64. Torch rather than numpy because a numpy
    matmul wakes OpenBLAS's thread pool, whose spinning threads then slow the following
    LSTM forward (torch's own OpenMP pool) about 4x on a 2-core machine.
    """
    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {wav.shape}")
    with torch.inference_mode():
        mel = mel_spectrogram_torch(torch.from_numpy(wav.astype(np.float64)), config)
    return mel.numpy().astype(np.float32)


def mel_spectrogram_torch(wav: torch.Tensor, config: EncoderConfig | None = None) -> torch.Tensor:
    """Differentiable twin of `mel_spectrogram`: (..., samples) -> (..., frames, n_mels)."""
    config = config or EncoderConfig()
    n_fft, hop = config.n_fft, config.hop_length
    # Periodic Hann, centred frames, zero padding: librosa's defaults since 0.10.
    window = torch.hann_window(n_fft, periodic=True, dtype=wav.dtype, device=wav.device)
    spectrum = torch.stft(
        wav,
        n_fft=n_fft,
        hop_length=hop,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    power = spectrum.real**2 + spectrum.imag**2  # (..., freq, frames)
    fbank = torch.from_numpy(mel_filterbank(config.sample_rate, n_fft, config.n_mels).copy())
    fbank = fbank.to(device=wav.device, dtype=wav.dtype)
    return torch.matmul(fbank, power).transpose(-1, -2)
