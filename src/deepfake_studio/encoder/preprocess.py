"""Waveform preprocessing before embedding, equivalent to resemblyzer's `preprocess_wav`.

Steps: resample to 16 kHz (soxr "HQ", as `librosa.resample`'s default), raise the level to
-30 dBFS RMS if quieter (never lower it), then cut silences longer than ~0.2 s using webrtcvad.
The encoder was trained on audio treated this way, so skipping it changes the embeddings.
"""

from __future__ import annotations

import math

import numpy as np
import soxr
from scipy.ndimage import binary_dilation

from ..errors import AudioError
from .model import EncoderConfig

_INT16_MAX = 2**15 - 1


def as_mono_float(samples: np.ndarray) -> np.ndarray:
    """Validate a 1-D waveform and return it as float32/float64 (integer PCM is rescaled)."""
    wav = np.asarray(samples)
    if wav.ndim != 1:
        raise AudioError(f"expected mono 1-D samples, got an array of shape {wav.shape}")
    if wav.size == 0:
        raise AudioError("audio is empty")
    if np.issubdtype(wav.dtype, np.integer):
        wav = wav.astype(np.float32) / float(np.iinfo(wav.dtype).max)
    elif wav.dtype not in (np.float32, np.float64):
        wav = wav.astype(np.float32)
    if not np.all(np.isfinite(wav)):
        raise AudioError("audio contains NaN or infinite samples")
    return wav


def resample(wav: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample like `librosa.resample(res_type="soxr_hq")`, including its output length."""
    if source_rate == target_rate:
        return wav
    if source_rate <= 0:
        raise AudioError(f"invalid sample rate {source_rate}")
    out = soxr.resample(wav, source_rate, target_rate, quality="HQ")
    # librosa fixes the length to ceil(n * ratio); soxr may be a sample short.
    n_out = math.ceil(len(wav) * target_rate / source_rate)
    if len(out) < n_out:
        out = np.pad(out, (0, n_out - len(out)))
    return np.asarray(out[:n_out], dtype=wav.dtype)


def normalize_volume(wav: np.ndarray, target_dbfs: float, increase_only: bool = True) -> np.ndarray:
    """Scale to `target_dbfs` RMS (relative to int16 full scale), optionally only upwards."""
    rms = float(np.sqrt(np.mean((wav.astype(np.float64) * _INT16_MAX) ** 2)))
    if rms == 0.0:
        raise AudioError("audio is silent (all samples are zero)")
    change_db = target_dbfs - 20.0 * math.log10(rms / _INT16_MAX)
    if change_db < 0 and increase_only:
        return wav
    # float64 result, as resemblyzer gets under numpy 2 (float32 array * float64 scalar).
    return wav.astype(np.float64) * (10.0 ** (change_db / 20.0))


def trim_long_silences(wav: np.ndarray, config: EncoderConfig | None = None) -> np.ndarray:
    """Drop non-speech stretches longer than `vad_max_silence_windows` VAD windows.

    Expects audio at `config.sample_rate`. Mirrors resemblyzer's `trim_long_silences`,
    including dropping the last partial VAD window.
    """
    from deepfake_studio.audio import import_webrtcvad

    webrtcvad = import_webrtcvad()  # deferred: it imports pkg_resources, slow at package import

    config = config or EncoderConfig()
    window = config.vad_window_ms * config.sample_rate // 1000
    wav = wav[: len(wav) - len(wav) % window]
    # Clipping is a deliberate deviation: resemblyzer lets int16 wrap around on |x| > 1.
    pcm = np.clip(np.round(wav * _INT16_MAX), -_INT16_MAX - 1, _INT16_MAX).astype("<i2")
    vad = webrtcvad.Vad(config.vad_mode)
    voiced = np.array(
        [
            vad.is_speech(pcm[start : start + window].tobytes(), config.sample_rate)
            for start in range(0, len(pcm), window)
        ],
        dtype=np.float64,
    )
    # Smooth the per-window decisions, then grow voiced regions so short pauses survive.
    mask = np.round(_moving_average(voiced, config.vad_moving_average_width)).astype(bool)
    mask = binary_dilation(mask, np.ones(config.vad_max_silence_windows + 1))
    return wav[np.repeat(mask, window)]


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average with zero padding, same output length as the input."""
    padded = np.concatenate((np.zeros((width - 1) // 2), values, np.zeros(width // 2)))
    sums = np.cumsum(padded, dtype=np.float64)
    sums[width:] = sums[width:] - sums[:-width]
    return sums[width - 1 :] / width


def preprocess_wav(
    samples: np.ndarray, sample_rate: int, config: EncoderConfig | None = None
) -> np.ndarray:
    """Resample, level and trim a waveform for the encoder (resemblyzer's `preprocess_wav`)."""
    config = config or EncoderConfig()
    wav = resample(as_mono_float(samples), sample_rate, config.sample_rate)
    wav = normalize_volume(wav, config.target_dbfs, increase_only=True)
    trimmed = trim_long_silences(wav, config)
    if trimmed.size == 0:
        raise AudioError("no speech detected in the audio (voice activity detection found none)")
    return trimmed
