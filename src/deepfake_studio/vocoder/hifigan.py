"""HiFi-GAN (Kong et al., 2020): the vocoder of the transformer synthesizer.

    vocoder = load_hifigan_vocoder(Path("run/hifigan.pt"))
    wav = vocoder(mel)        # (80, frames) HIFIGAN_AUDIO mel → float32, frames · 512 samples

The generator upsamples the mel by 8·8·4·2 = 512 (the mel hop) with transposed convolutions,
each followed by a multi-receptive-field fusion: residual blocks with kernels 3, 7, 11 and
dilations 1, 3, 5, averaged. Two discriminators judge its output in training: the
multi-period one looks at the waveform folded by periods 2, 3, 5, 7, 11 (pitch-periodic
structure), the multi-scale one at the raw, ×2 and ×4 average-pooled waveform. Losses: least
squares GAN, feature matching (L1 between the discriminators' inner activations for real and
generated audio), and an L1 mel loss weighted 45 that does most of the work early on.

The mel is the project's normalised log-mel (`vocoder.audio`), here with HIFIGAN_AUDIO's
22.05 kHz / hop 512 settings; `mel_torch` is its differentiable twin for the mel loss.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from deepfake_studio.configs import ConfigError, config_from_dict
from deepfake_studio.synthesizer.tacotron import HIFIGAN_AUDIO, AudioConfig
from deepfake_studio.vocoder.audio import mel_basis, normalize_db, stft

LRELU_SLOPE = 0.1


@dataclass(frozen=True)
class HiFiGANConfig:
    """The generator (the seeds' configuration: HiFi-GAN V1 widths, hop 512)."""

    upsample_rates: tuple[int, ...] = (8, 8, 4, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 8, 4)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    audio: AudioConfig = HIFIGAN_AUDIO

    def __post_init__(self) -> None:
        hop = int(np.prod(self.upsample_rates))
        if hop != self.audio.hop_length:
            raise ConfigError(
                f"HiFi-GAN upsample rates {list(self.upsample_rates)} multiply to {hop}, but the "
                f"mel hop is {self.audio.hop_length}: they must be equal"
            )
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ConfigError("HiFi-GAN needs one upsample kernel size per upsample rate")

    @property
    def hop_length(self) -> int:
        return self.audio.hop_length


# --- generator -----------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """HiFi-GAN's "resblock 1": per dilation, a dilated conv then a plain one, plus the input."""

    def __init__(self, channels: int, kernel: int, dilations: Iterable[int]) -> None:
        super().__init__()
        dilations = tuple(dilations)
        self.convs1 = nn.ModuleList(
            weight_norm(
                nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2)
            )
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2))
            for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv1, conv2 in zip(self.convs1, self.convs2, strict=True):
            x = x + conv2(F.leaky_relu(conv1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class Generator(nn.Module):
    """(B, n_mels, frames) normalised mel → (B, 1, frames · hop) waveform in [-1, 1]."""

    def __init__(self, config: HiFiGANConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or HiFiGANConfig()
        self.conv_pre = weight_norm(
            nn.Conv1d(c.audio.n_mels, c.upsample_initial_channel, 7, padding=3)
        )
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        channels = c.upsample_initial_channel
        for rate, kernel in zip(c.upsample_rates, c.upsample_kernel_sizes, strict=True):
            up = nn.ConvTranspose1d(
                channels, channels // 2, kernel, rate, padding=(kernel - rate) // 2
            )
            self.ups.append(weight_norm(up))
            channels //= 2
            for k, dilations in zip(
                c.resblock_kernel_sizes, c.resblock_dilation_sizes, strict=True
            ):
                self.resblocks.append(ResBlock(channels, k, dilations))
        self.conv_post = weight_norm(nn.Conv1d(channels, 1, 7, padding=3))
        for module in self.modules():  # the paper's initialisation: N(0, 0.01)
            if isinstance(module, nn.Conv1d | nn.ConvTranspose1d):
                module.weight.data.normal_(0.0, 0.01)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        kernels = len(self.config.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            # Multi-receptive-field fusion: the mean of the level's residual blocks.
            x = sum(block(x) for block in self.resblocks[i * kernels : (i + 1) * kernels]) / kernels  # type: ignore[assignment]
        return torch.tanh(self.conv_post(F.leaky_relu(x)))

    def remove_weight_norm(self) -> Generator:
        """Fold the weight-norm parametrisations into plain weights (faster inference)."""
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight")
        return self


# --- discriminators ----------------------------------------------------------------------------


class PeriodDiscriminator(nn.Module):
    """2-D convs over the waveform folded into rows of `period` samples."""

    def __init__(self, period: int, width: float = 1.0) -> None:
        super().__init__()
        self.period = period
        sizes = [1, *(max(4, int(c * width)) for c in (32, 128, 512, 1024, 1024))]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1) if i < 4 else (1, 1), padding=(2, 0)))
            for i, (a, b) in enumerate(itertools.pairwise(sizes))
        )
        self.conv_post = weight_norm(nn.Conv2d(sizes[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, channels, length = x.shape
        if length % self.period:
            x = F.pad(x, (0, self.period - length % self.period), "reflect")
        x = x.view(batch, channels, -1, self.period)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            features.append(x)
        x = self.conv_post(x)
        features.append(x)
        return x.flatten(1), features


class ScaleDiscriminator(nn.Module):
    """Grouped 1-D convs over the waveform at one scale."""

    # (in, out, kernel, stride, groups) of each conv, as in the paper's code
    LAYERS = ((1, 128, 15, 1, 1), (128, 128, 41, 2, 4), (128, 256, 41, 2, 16),
              (256, 512, 41, 4, 16), (512, 1024, 41, 4, 16), (1024, 1024, 41, 1, 16),
              (1024, 1024, 5, 1, 1))  # fmt: skip

    def __init__(self, width: float = 1.0, spectral: bool = False) -> None:
        super().__init__()
        norm = spectral_norm if spectral else weight_norm

        def scaled(c: int) -> int:
            return c if c == 1 else max(16, int(c * width))

        self.convs = nn.ModuleList(
            norm(nn.Conv1d(scaled(a), scaled(b), k, s, groups=g, padding=(k - 1) // 2))
            for a, b, k, s, g in self.LAYERS
        )
        self.conv_post = norm(nn.Conv1d(scaled(1024), 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            features.append(x)
        x = self.conv_post(x)
        features.append(x)
        return x.flatten(1), features


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), width: float = 1.0) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, width) for p in periods)

    def forward(self, wav: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(wav) for d in self.discriminators]


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            [
                ScaleDiscriminator(width, spectral=True),
                ScaleDiscriminator(width),
                ScaleDiscriminator(width),
            ]
        )
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, wav: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        outputs = []
        for i, discriminator in enumerate(self.discriminators):
            if i:
                wav = self.pool(wav)
            outputs.append(discriminator(wav))
        return outputs


# --- losses --------------------------------------------------------------------------------------

Judgements = list[tuple[torch.Tensor, list[torch.Tensor]]]


def discriminator_loss(real: Judgements, fake: Judgements) -> torch.Tensor:
    """LSGAN: real → 1, generated → 0."""
    return sum(
        torch.mean((1 - r) ** 2) + torch.mean(f**2)
        for (r, _), (f, _) in zip(real, fake, strict=True)
    )  # type: ignore[return-value]


def generator_loss(fake: Judgements) -> torch.Tensor:
    """LSGAN: the generator wants its audio judged 1."""
    return sum(torch.mean((1 - f) ** 2) for f, _ in fake)  # type: ignore[return-value]


def feature_matching_loss(real: Judgements, fake: Judgements) -> torch.Tensor:
    """L1 between the discriminators' activations on real and generated audio (×2, as the paper)."""
    total = 0.0
    for (_, real_maps), (_, fake_maps) in zip(real, fake, strict=True):
        for r, f in zip(real_maps, fake_maps, strict=True):
            total = total + torch.mean(torch.abs(r.detach() - f))
    return 2 * total  # type: ignore[return-value]


def mel_torch(wav: torch.Tensor, audio: AudioConfig = HIFIGAN_AUDIO) -> torch.Tensor:
    """Differentiable `vocoder.audio.melspectrogram`: (B, samples) → (B, n_mels, frames)."""
    if audio.preemphasis:
        wav = torch.cat([wav[:, :1], wav[:, 1:] - audio.preemphasis * wav[:, :-1]], dim=1)
    magnitude = stft(wav, audio).abs()
    mel = mel_basis(audio).to(wav.dtype) @ magnitude
    floor = 10 ** (audio.min_level_db / 20)
    db = 20 * torch.log10(mel.clamp_min(floor)) - audio.ref_level_db
    return normalize_db(db, audio)


# --- inference -----------------------------------------------------------------------------------


class HiFiGANVocoder:
    """A trained generator as a function: mel (n_mels, frames) → float32 waveform."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator.eval().remove_weight_norm()
        self.sample_rate = generator.config.audio.sample_rate

    @torch.inference_mode()
    def __call__(self, mel: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(mel, np.float32)).unsqueeze(0)
        return self.generator(x)[0, 0].numpy().astype(np.float32)


def load_hifigan_vocoder(path: Path) -> HiFiGANVocoder:
    """RUN/hifigan.pt (from `train vocoder --model hifigan`) → HiFiGANVocoder.

    One-line `SV2TTSModelError`s for a missing file, a Git LFS pointer, a damaged file or a
    checkpoint whose config, keys or shapes do not fit.
    """
    from deepfake_studio.synthesizer.sv2tts import (
        CheckpointMismatchError,
        load_weights,
        read_state_dict,
    )

    state = read_state_dict(Path(path), "HiFi-GAN")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    saved = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    try:
        config = config_from_dict(HiFiGANConfig, saved or {}, str(path))
    except ConfigError as exc:
        raise CheckpointMismatchError(str(exc)) from exc
    generator = Generator(config)
    load_weights(generator, state, f"HiFi-GAN checkpoint {path}")
    return HiFiGANVocoder(generator)


__all__ = [
    "Generator",
    "HiFiGANConfig",
    "HiFiGANVocoder",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_loss",
    "load_hifigan_vocoder",
    "mel_torch",
]
