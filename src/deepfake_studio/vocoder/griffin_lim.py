"""Griffin-Lim: a vocoder with no weights, the fallback when no `vocoder.pt` is present.

mel (80, T) in [-4, 4] → linear magnitudes through the pseudo-inverse of the mel filterbank
→ raised to `power` (RTVC uses 1.5: it sharpens formants that the mel smoothing blurred) →
phase recovered by fast Griffin-Lim (Perraudin et al., 2013: Griffin-Lim with momentum,
librosa's default) → de-emphasis. It is robotic next to WaveRNN but intelligible and fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepfake_studio.synthesizer.tacotron import AudioConfig
from deepfake_studio.vocoder.audio import de_emphasis, istft, mel_to_linear_magnitude, stft


@dataclass(frozen=True)
class GriffinLimConfig:
    """Phase-recovery settings."""

    iterations: int = 60
    power: float = 1.5  # magnitude exponent (RTVC hparams.power)
    momentum: float = 0.99  # 0 gives the original Griffin-Lim; 0.99 converges much faster
    seed: int = 0  # initial random phase


def griffin_lim_magnitude(
    magnitude: torch.Tensor, audio: AudioConfig, config: GriffinLimConfig
) -> torch.Tensor:
    """A waveform whose STFT magnitude approximates `magnitude` (freq, frames)."""
    generator = torch.Generator().manual_seed(config.seed)
    phase = torch.rand(magnitude.shape, generator=generator, dtype=magnitude.dtype) * 2 * np.pi
    angles = torch.polar(torch.ones_like(magnitude), phase)
    length = (magnitude.shape[-1] - 1) * audio.hop_length
    previous = torch.zeros_like(angles)
    for _ in range(config.iterations):
        wav = istft(magnitude * angles, audio, length=length)
        rebuilt = stft(wav, audio)
        # Momentum: step past the projection, in the direction it moved since last time.
        accelerated = rebuilt - (config.momentum / (1 + config.momentum)) * previous
        angles = accelerated / accelerated.abs().clamp_min(1e-16)
        previous = rebuilt
    return istft(magnitude * angles, audio, length=length)


def griffin_lim(
    mel: np.ndarray, audio: AudioConfig | None = None, config: GriffinLimConfig | None = None
) -> np.ndarray:
    """(n_mels, T) normalised mel → float32 waveform of (T - 1) · hop samples."""
    audio, config = audio or AudioConfig(), config or GriffinLimConfig()
    magnitude = mel_to_linear_magnitude(mel, audio) ** config.power
    with torch.inference_mode():
        wav = griffin_lim_magnitude(magnitude, audio, config).numpy()
    return de_emphasis(wav, audio.preemphasis).astype(np.float32)


class GriffinLimVocoder:
    """Callable mel → waveform, interchangeable with `WaveRNNVocoder`."""

    name = "griffinlim"

    def __init__(self, audio: AudioConfig | None = None, config: GriffinLimConfig | None = None):
        self.audio = audio or AudioConfig()
        self.config = config or GriffinLimConfig()

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        return griffin_lim(mel, self.audio, self.config)
