"""Signal processing of the SV2TTS mel format: waveform ↔ normalised log-mel, mu-law, emphasis.

    wav ─pre-emphasis─► |STFT| (n_fft 800, hop 200, Hann 800) ─mel (80, 55-7600 Hz, Slaney)─►
        20·log10(max(1e-5, ·)) - 20 dB ─► map [-100, 0] dB onto [-4, 4] (clipped)

This is what RTVC computed with librosa 0.8 (centred frames, reflect padding). It is rebuilt
here with numpy/torch so that neither librosa nor its numba start-up is needed at run time.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from deepfake_studio.encoder.features import hz_to_mel, mel_to_hz
from deepfake_studio.synthesizer.tacotron import AudioConfig


@lru_cache(maxsize=4)
def mel_basis(config: AudioConfig = AudioConfig()) -> torch.Tensor:  # noqa: B008 - frozen
    """(n_mels, n_fft // 2 + 1) Slaney filterbank, equal to librosa.filters.mel(sr, n_fft,
    n_mels=80, fmin=55, fmax=7600) (htk=False, norm="slaney")."""
    fft_freqs = np.fft.rfftfreq(config.n_fft, d=1.0 / config.sample_rate)
    mels = np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.fmax), config.n_mels + 2)
    edges = mel_to_hz(mels)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per band
    return torch.from_numpy(weights.astype(np.float32))


@lru_cache(maxsize=4)
def inverse_mel_basis(config: AudioConfig = AudioConfig()) -> torch.Tensor:  # noqa: B008
    """Moore-Penrose pseudo-inverse of `mel_basis`: mel magnitudes → linear magnitudes."""
    # torch rather than numpy: a LAPACK call in numpy wakes OpenBLAS's spinning thread pool,
    # which then slows torch's own threads on a 2-core machine.
    return torch.linalg.pinv(mel_basis(config).double()).float()


def hann_window(config: AudioConfig) -> torch.Tensor:
    return torch.hann_window(config.win_length, periodic=True)


def stft(wav: torch.Tensor, config: AudioConfig) -> torch.Tensor:
    """Complex STFT (..., n_fft // 2 + 1, frames), centred frames with reflect padding."""
    return torch.stft(
        wav,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=hann_window(config).to(wav.device, wav.dtype),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )


def istft(spectrum: torch.Tensor, config: AudioConfig, length: int | None = None) -> torch.Tensor:
    """Inverse of `stft` (window-sum normalised overlap-add)."""
    return torch.istft(
        spectrum,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=hann_window(config).to(spectrum.device, spectrum.real.dtype),
        center=True,
        length=length,
    )


def preemphasis(wav: np.ndarray, coefficient: float) -> np.ndarray:
    """y[n] = x[n] - k·x[n-1]: tilts the spectrum up so high bands are not lost in training."""
    wav = np.asarray(wav, np.float64)
    return np.concatenate([wav[:1], wav[1:] - coefficient * wav[:-1]])


def de_emphasis(wav: np.ndarray, coefficient: float) -> np.ndarray:
    """Inverse of `preemphasis`: y[n] = x[n] + k·y[n-1]."""
    from scipy.signal import lfilter  # imported here: scipy.signal takes seconds to import

    return lfilter([1.0], [1.0, -coefficient], wav)


def normalize_db(db: torch.Tensor, config: AudioConfig) -> torch.Tensor:
    """dB relative to the reference level, [min_level_db, 0] → [-max_abs, max_abs] (clipped)."""
    m = config.max_abs_value
    scaled = 2 * m * (db - config.min_level_db) / -config.min_level_db - m
    return scaled.clamp(-m, m)


def denormalize_db(mel: torch.Tensor, config: AudioConfig) -> torch.Tensor:
    """Inverse of `normalize_db` (values outside ±max_abs are clipped first)."""
    m = config.max_abs_value
    return (mel.clamp(-m, m) + m) * -config.min_level_db / (2 * m) + config.min_level_db


def melspectrogram(wav: np.ndarray, config: AudioConfig | None = None) -> np.ndarray:
    """(n_mels, frames) float32 mel of a 16 kHz waveform in the synthesizer's [-4, 4] scale."""
    config = config or AudioConfig()
    emphasised = torch.from_numpy(preemphasis(np.asarray(wav, np.float64), config.preemphasis))
    magnitude = stft(emphasised, config).abs()
    mel = mel_basis(config).double() @ magnitude
    floor = 10 ** (config.min_level_db / 20)
    db = 20 * torch.log10(mel.clamp_min(floor)) - config.ref_level_db
    return normalize_db(db, config).float().numpy()


def mel_to_linear_magnitude(mel: np.ndarray, config: AudioConfig | None = None) -> torch.Tensor:
    """(n_mels, frames) normalised mel → (n_fft // 2 + 1, frames) linear magnitudes."""
    config = config or AudioConfig()
    db = denormalize_db(torch.as_tensor(mel, dtype=torch.float32), config) + config.ref_level_db
    amplitude = 10 ** (db / 20)
    return (inverse_mel_basis(config) @ amplitude).clamp_min(1e-10)


def decode_mu_law(y: np.ndarray, mu: int) -> np.ndarray:
    """Mu-law companded values in [-1, 1] → linear amplitude in [-1, 1] (mu = 2**bits)."""
    mu -= 1
    return np.sign(y) / mu * ((1 + mu) ** np.abs(y) - 1)


def encode_mu_law(x: np.ndarray, mu: int) -> np.ndarray:
    """Linear amplitude in [-1, 1] → mu-law companded values in [-1, 1] (inverse of decode)."""
    mu -= 1
    return np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
