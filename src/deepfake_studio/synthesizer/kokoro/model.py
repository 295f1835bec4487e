"""Kokoro-82M v1.0 as a float PyTorch network, read top to bottom for one utterance.

Kokoro is a StyleTTS2 model with an iSTFTNet vocoder. One utterance flows:

    phoneme ids ─► ALBERT ─► bert_encoder ─┐                       (encode_text)
               └─► TextEncoder ───────────┐│
                                          ││  style[128:] (prosody half)
    durations ◄── ProsodyPredictor ◄──────┘┘                       (predict_prosody)
    F0, energy ◄─ (features repeated by the durations)
    TextEncoder features repeated by the durations, F0, energy,
    style[:128] (decoder half) ─► Decoder ─► harmonic source + iSTFTNet ─► 24 kHz wave  (decode)

The three stages are separate methods so a caller can force the durations, replace or
transform the F0 and energy curves, or adapt decoder weights between them; every stage is
differentiable except the rounding of durations. Module and parameter names follow the
original release's state-dict keys, so `weights.py` can fill them from the bundled ONNX graph.
Weight norm is folded into plain weights (the int8 export only has the product g·v/|v|).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias
from torch import Tensor, nn

# The layers the int8 ONNX quantises at run time: plain Linear / Conv1d / LSTM unless the
# model is asked to round their inputs as the ONNX does (`set_onnx_int8_emulation`).
from deepfake_studio.synthesizer.kokoro.int8_emulation import Int8Conv1d, Int8Linear, Int8LSTM


@dataclass(frozen=True)
class AlbertConfig:
    """The phoneme-level ALBERT ("PL-BERT") that reads the phoneme ids."""

    embedding_dim: int = 128
    hidden_dim: int = 768
    heads: int = 12
    intermediate_dim: int = 2048
    layers: int = 12  # one layer's weights, applied this many times
    max_positions: int = 512
    token_types: int = 2


@dataclass(frozen=True)
class VocoderConfig:
    """The iSTFTNet generator: two transposed-conv upsamplings, then an inverse STFT."""

    upsample_rates: tuple[int, ...] = (10, 6)
    upsample_kernels: tuple[int, ...] = (20, 12)
    initial_channels: int = 512
    resblock_kernels: tuple[int, ...] = (3, 7, 11)
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    n_fft: int = 20
    hop: int = 5
    harmonics: int = 8  # overtones above F0 in the sine source
    sine_amplitude: float = 0.1
    voiced_threshold_hz: float = 10.0


@dataclass(frozen=True)
class KokoroModelConfig:
    """Kokoro-82M v1.0 (values of the released config)."""

    n_token: int = 178
    hidden_dim: int = 512
    style_dim: int = 128  # the 256-d style vector = 128 decoder + 128 prosody dimensions
    n_layer: int = 3
    max_duration: int = 50  # frames per token the duration head can predict
    text_kernel: int = 5
    sample_rate: int = 24_000
    albert: AlbertConfig = field(default_factory=AlbertConfig)
    vocoder: VocoderConfig = field(default_factory=VocoderConfig)
    # Round the inputs of every layer the int8 ONNX quantises at run time (its Conv and
    # Linear layers but `conv_post` and the harmonic source's merge, and its LSTMs) as the ONNX
    # does, so this model renders like the ONNX the engine speaks through.
    emulate_onnx_int8: bool = False

    @property
    def samples_per_frame(self) -> int:
        """Waveform samples per F0/energy frame (the decoder upsamples the text frames ×2)."""
        return math.prod(self.vocoder.upsample_rates) * self.vocoder.hop


# ----------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channels of a [B, C, T] tensor."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.transpose(1, 2), (x.shape[1],), self.gamma, self.beta, self.eps)
        return y.transpose(1, 2)


class AdaLayerNorm(nn.Module):
    """Layer norm of [B, T, C] whose scale and shift come from the style."""

    def __init__(self, style_dim: int, channels: int) -> None:
        super().__init__()
        self.fc = Int8Linear(style_dim, 2 * channels)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        gamma, beta = self.fc(style).unsqueeze(1).chunk(2, dim=-1)
        return (1 + gamma) * F.layer_norm(x, (x.shape[-1],), eps=1e-5) + beta


class AdaIN1d(nn.Module):
    """Instance norm of [B, C, T] whose scale and shift come from the style.

    The release's InstanceNorm had an (unused, inference-time) affine pair; the ONNX export
    does a plain instance norm, so there is none here.
    """

    def __init__(self, style_dim: int, channels: int) -> None:
        super().__init__()
        self.fc = Int8Linear(style_dim, 2 * channels)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        gamma, beta = self.fc(style).unsqueeze(-1).chunk(2, dim=1)
        return (1 + gamma) * F.instance_norm(x, eps=1e-5) + beta


class AdainResBlock(nn.Module):
    """Residual block: AdaIN → LeakyReLU → (×2 upsample) → conv, twice; shortcut averaged in."""

    def __init__(self, dim_in: int, dim_out: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.norm1 = AdaIN1d(style_dim, dim_in)
        self.conv1 = Int8Conv1d(dim_in, dim_out, 3, padding=1)
        self.norm2 = AdaIN1d(style_dim, dim_out)
        self.conv2 = Int8Conv1d(dim_out, dim_out, 3, padding=1)
        # depthwise learned ×2 upsampling on the residual path
        self.pool = (
            nn.ConvTranspose1d(
                dim_in, dim_in, 3, stride=2, padding=1, output_padding=1, groups=dim_in
            )
            if upsample
            else None
        )
        self.conv1x1 = Int8Conv1d(dim_in, dim_out, 1, bias=False) if dim_in != dim_out else None

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        h = F.leaky_relu(self.norm1(x, style), 0.2)
        if self.pool is not None:
            h = self.pool(h)
        h = self.conv1(h)
        h = self.conv2(F.leaky_relu(self.norm2(h, style), 0.2))
        shortcut = F.interpolate(x, scale_factor=2.0, mode="nearest") if self.upsample else x
        if self.conv1x1 is not None:
            shortcut = self.conv1x1(shortcut)
        return (h + shortcut) / math.sqrt(2.0)


def snake(x: Tensor, alpha: Tensor) -> Tensor:
    """Periodic activation x + sin²(αx)/α (per channel α)."""
    return x + torch.sin(alpha * x) ** 2 / alpha


class SnakeResBlock(nn.Module):
    """iSTFTNet residual block: three (AdaIN → snake → dilated conv → AdaIN → snake → conv)."""

    def __init__(
        self, channels: int, kernel: int, dilations: tuple[int, ...], style_dim: int
    ) -> None:
        super().__init__()
        n = len(dilations)
        self.convs1 = nn.ModuleList(
            Int8Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2)
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            Int8Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2) for _ in dilations
        )
        self.adain1 = nn.ModuleList(AdaIN1d(style_dim, channels) for _ in range(n))
        self.adain2 = nn.ModuleList(AdaIN1d(style_dim, channels) for _ in range(n))
        self.alpha1 = nn.ParameterList(nn.Parameter(torch.ones(1, channels, 1)) for _ in range(n))
        self.alpha2 = nn.ParameterList(nn.Parameter(torch.ones(1, channels, 1)) for _ in range(n))

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        for c1, c2, n1, n2, a1, a2 in zip(
            self.convs1,
            self.convs2,
            self.adain1,
            self.adain2,
            self.alpha1,
            self.alpha2,
            strict=True,
        ):
            h = c1(snake(n1(x, style), a1))
            x = x + c2(snake(n2(h, style), a2))
        return x


def bidirectional_lstm(input_size: int, hidden_size: int) -> Int8LSTM:
    return Int8LSTM(input_size, hidden_size // 2, batch_first=True, bidirectional=True)


# ----------------------------------------------------------------------------------------
# Stage 1: text → token features
# ----------------------------------------------------------------------------------------


class AlbertEmbeddings(nn.Module):
    def __init__(self, n_token: int, cfg: AlbertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(n_token, cfg.embedding_dim)
        self.position_embeddings = nn.Embedding(cfg.max_positions, cfg.embedding_dim)
        self.token_type_embeddings = nn.Embedding(cfg.token_types, cfg.embedding_dim)
        self.LayerNorm = nn.LayerNorm(cfg.embedding_dim, eps=1e-12)

    def forward(self, tokens: Tensor) -> Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = (
            self.word_embeddings(tokens)
            + self.position_embeddings(positions)[None]
            + self.token_type_embeddings.weight[0]  # every token is of type 0
        )
        return self.LayerNorm(x)


class AlbertAttention(nn.Module):
    def __init__(self, cfg: AlbertConfig) -> None:
        super().__init__()
        d = cfg.hidden_dim
        self.heads = cfg.heads
        self.query, self.key, self.value = Int8Linear(d, d), Int8Linear(d, d), Int8Linear(d, d)
        self.dense = Int8Linear(d, d)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape

        def split(y: Tensor) -> Tensor:  # [B, T, D] → [B, heads, T, D/heads]
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x))
        )
        context = context.transpose(1, 2).reshape(b, t, d)
        return self.LayerNorm(x + self.dense(context))


class AlbertLayer(nn.Module):
    def __init__(self, cfg: AlbertConfig) -> None:
        super().__init__()
        self.attention = AlbertAttention(cfg)
        self.ffn = Int8Linear(cfg.hidden_dim, cfg.intermediate_dim)
        self.ffn_output = Int8Linear(cfg.intermediate_dim, cfg.hidden_dim)
        self.full_layer_layer_norm = nn.LayerNorm(cfg.hidden_dim, eps=1e-12)

    def forward(self, x: Tensor) -> Tensor:
        x = self.attention(x)
        h = self.ffn_output(F.gelu(self.ffn(x), approximate="tanh"))
        return self.full_layer_layer_norm(x + h)


class Albert(nn.Module):
    """ALBERT: one transformer layer shared across all depths."""

    def __init__(self, n_token: int, cfg: AlbertConfig) -> None:
        super().__init__()
        self.repeats = cfg.layers
        self.embeddings = AlbertEmbeddings(n_token, cfg)
        self.embedding_hidden_mapping_in = Int8Linear(cfg.embedding_dim, cfg.hidden_dim)
        self.layer = AlbertLayer(cfg)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embedding_hidden_mapping_in(self.embeddings(tokens))
        for _ in range(self.repeats):
            x = self.layer(x)
        return x  # [B, T, 768]


class TextEncoder(nn.Module):
    """Phoneme embedding → 3 × (conv, layer norm, LeakyReLU) → BiLSTM: acoustic token features."""

    def __init__(self, cfg: KokoroModelConfig) -> None:
        super().__init__()
        c = cfg.hidden_dim
        self.embedding = nn.Embedding(cfg.n_token, c)
        self.cnn = nn.ModuleList(
            nn.ModuleList(
                [
                    Int8Conv1d(c, c, cfg.text_kernel, padding=cfg.text_kernel // 2),
                    ChannelLayerNorm(c),
                ]
            )
            for _ in range(cfg.n_layer)
        )
        self.lstm = bidirectional_lstm(c, c)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embedding(tokens).transpose(1, 2)  # [B, C, T]
        for conv, norm in self.cnn:  # type: ignore[misc]
            x = F.leaky_relu(norm(conv(x)), 0.2)
        x, _ = self.lstm(x.transpose(1, 2))
        return x.transpose(1, 2)  # [B, 512, T]


# ----------------------------------------------------------------------------------------
# Stage 2: (features, style, speed) → durations, F0, energy
# ----------------------------------------------------------------------------------------


class DurationEncoder(nn.Module):
    """3 × (BiLSTM → style-conditioned layer norm), the style re-appended after each norm.

    `lstms` alternates LSTM (even index) and AdaLayerNorm (odd index), as in the release.
    """

    def __init__(self, cfg: KokoroModelConfig) -> None:
        super().__init__()
        d, s = cfg.hidden_dim, cfg.style_dim
        blocks: list[nn.Module] = []
        for _ in range(cfg.n_layer):
            blocks += [bidirectional_lstm(d + s, d), AdaLayerNorm(s, d)]
        self.lstms = nn.ModuleList(blocks)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        style_per_token = style[:, None, :].expand(-1, x.shape[1], -1)
        x = torch.cat([x, style_per_token], dim=-1)
        for i in range(0, len(self.lstms), 2):
            x, _ = self.lstms[i](x)
            x = torch.cat([self.lstms[i + 1](x, style), style_per_token], dim=-1)
        return x  # [B, T, 512 + 128]


class ProsodyPredictor(nn.Module):
    def __init__(self, cfg: KokoroModelConfig) -> None:
        super().__init__()
        d, s = cfg.hidden_dim, cfg.style_dim
        self.text_encoder = DurationEncoder(cfg)
        self.lstm = bidirectional_lstm(d + s, d)
        self.duration_proj = nn.ModuleDict({"linear_layer": Int8Linear(d, cfg.max_duration)})
        self.shared = bidirectional_lstm(d + s, d)
        self.F0 = nn.ModuleList(
            [
                AdainResBlock(d, d, s),
                AdainResBlock(d, d // 2, s, upsample=True),
                AdainResBlock(d // 2, d // 2, s),
            ]
        )
        self.N = nn.ModuleList(
            [
                AdainResBlock(d, d, s),
                AdainResBlock(d, d // 2, s, upsample=True),
                AdainResBlock(d // 2, d // 2, s),
            ]
        )
        self.F0_proj = Int8Conv1d(d // 2, 1, 1)
        self.N_proj = Int8Conv1d(d // 2, 1, 1)

    def duration_features(self, bert_features: Tensor, style: Tensor) -> Tensor:
        return self.text_encoder(bert_features.transpose(1, 2), style)  # [B, T, 640]

    def durations(self, features: Tensor, speed: float) -> Tensor:
        """Frames per token (float, before rounding): Σ sigmoid over the 50 duration bins."""
        x, _ = self.lstm(features)
        return torch.sigmoid(self.duration_proj["linear_layer"](x)).sum(-1) / speed  # [B, T]

    def f0_energy(self, aligned: Tensor, style: Tensor) -> tuple[Tensor, Tensor]:
        """F0 (Hz) and energy curves at 2 frames per aligned frame, from [B, 640, F]."""
        x, _ = self.shared(aligned.transpose(1, 2))
        f0 = x.transpose(1, 2)
        for block in self.F0:
            f0 = block(f0, style)
        energy = x.transpose(1, 2)
        for block in self.N:
            energy = block(energy, style)
        return self.F0_proj(f0).squeeze(1), self.N_proj(energy).squeeze(1)


# ----------------------------------------------------------------------------------------
# Stage 3: (aligned features, F0, energy, style) → waveform
# ----------------------------------------------------------------------------------------


PI_FLOAT32 = float(np.float32(math.pi))


def float32_cumsum(x: Tensor) -> Tensor:
    """Cumulative sum over the last axis accumulated in float32, step by step (as
    onnxruntime's CumSum); the gradient is that of the exact sum."""
    exact = torch.cumsum(x, dim=-1)
    sequential = np.cumsum(x.detach().float().cpu().numpy(), axis=-1, dtype=np.float32)
    return exact + (torch.from_numpy(sequential).to(exact) - exact).detach()


class HarmonicSource(nn.Module):
    """F0 (Hz, per frame) → one excitation wave: 9 harmonics, merged by a linear layer + tanh.

    Deterministic (no random initial phase, no noise), as exported. The phase is the running
    sum of the F0, computed at frame rate and interpolated, so the output is differentiable
    with respect to F0 everywhere except at the voiced/unvoiced switch (F0 > 10 Hz).
    """

    def __init__(self, cfg: KokoroModelConfig) -> None:
        super().__init__()
        self.upsample = cfg.samples_per_frame
        self.sample_rate = cfg.sample_rate
        self.amplitude = cfg.vocoder.sine_amplitude
        self.voiced_threshold = cfg.vocoder.voiced_threshold_hz
        self.register_buffer(
            "harmonic_numbers", torch.arange(1, cfg.vocoder.harmonics + 2, dtype=torch.float32)
        )
        self.l_linear = nn.Linear(cfg.vocoder.harmonics + 1, 1)

    def forward(self, f0: Tensor) -> Tensor:
        """f0 [B, F] → excitation [B, F × samples_per_frame]."""
        f0_samples = f0.repeat_interleave(self.upsample, dim=1)[..., None]  # [B, L, 1]
        cycles = f0_samples * self.harmonic_numbers / self.sample_rate  # cycles per sample
        cycles = cycles - torch.floor(cycles).detach()  # wrap to [0, 1); gradient passes
        per_frame = F.interpolate(
            cycles.transpose(1, 2), scale_factor=1 / self.upsample, mode="linear"
        )
        # The running phase as the ONNX computes it: summed in float32 one frame after the
        # other (torch.cumsum on CPU sums float32 in double), then × 2, × π, × 300 in float32.
        # The float32 drift is what the export's harmonic bins carry above ~4 kHz, where the
        # source has almost no energy; the generator turns their phases into a 3-6 dB band
        # shape (benchmarks/onnx_int8_emulation.md).
        phase = float32_cumsum(per_frame) * 2.0 * PI_FLOAT32 * float(self.upsample)
        phase = F.interpolate(phase, scale_factor=float(self.upsample), mode="linear")
        voiced = (f0_samples > self.voiced_threshold).float()
        sines = torch.sin(phase.transpose(1, 2)) * self.amplitude * voiced  # [B, L, 9]
        return torch.tanh(self.l_linear(sines)).squeeze(-1)


class ExportedInverseSTFT(nn.Module):
    """Magnitude + phase → wave by overlap-add, exactly as the shipped ONNX does it.

    The export's inverse STFT is a transposed convolution with a windowed inverse-DFT basis,
    divided by a window sum that was traced for one frame: only the first n_fft samples get
    divided, and the result is n_fft/hop louder than `torch.istft`. Kept for parity.
    """

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        window = np.hanning(n_fft + 1)[:-1]  # periodic Hann
        bins = n_fft // 2 + 1
        dft = np.fft.fft(np.eye(n_fft))[:bins]
        basis = np.vstack([dft.real, dft.imag])  # [2·bins, n_fft]
        inverse = np.linalg.pinv(n_fft / hop * basis).T * window  # [2·bins, n_fft]
        self.register_buffer(
            "inverse_basis", torch.tensor(inverse[:, None, :], dtype=torch.float32)
        )
        self.register_buffer("window_sum", torch.tensor(window**2, dtype=torch.float32))

    def forward(self, magnitude: Tensor, phase: Tensor) -> Tensor:
        spec = torch.cat([magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=1)
        wave = F.conv_transpose1d(spec, self.inverse_basis, stride=self.hop).squeeze(1)
        n = min(self.n_fft, wave.shape[-1])
        head = self.window_sum[:n]
        divisor = torch.where(head > torch.finfo(torch.float32).tiny, head, torch.ones_like(head))
        wave = torch.cat([wave[:, :n] / divisor, wave[:, n:]], dim=1) * (self.n_fft / self.hop)
        return wave[:, self.n_fft // 2 : wave.shape[-1] - self.n_fft // 2]


class Generator(nn.Module):
    """iSTFTNet: upsample the decoder features, mix in the harmonic source, predict an STFT."""

    def __init__(self, cfg: KokoroModelConfig) -> None:
        super().__init__()
        v, s = cfg.vocoder, cfg.style_dim
        self.n_fft, self.hop = v.n_fft, v.hop
        self.n_kernels = len(v.resblock_kernels)
        self.m_source = HarmonicSource(cfg)
        self.register_buffer("stft_window", torch.hann_window(v.n_fft))
        self.ups = nn.ModuleList()
        self.noise_convs = nn.ModuleList()
        self.noise_res = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        spec_channels = v.n_fft + 2
        for i, (rate, kernel) in enumerate(zip(v.upsample_rates, v.upsample_kernels, strict=True)):
            c_in, c_out = v.initial_channels >> i, v.initial_channels >> (i + 1)
            self.ups.append(
                nn.ConvTranspose1d(c_in, c_out, kernel, rate, padding=(kernel - rate) // 2)
            )
            for k, dil in zip(v.resblock_kernels, v.resblock_dilations, strict=True):
                self.resblocks.append(SnakeResBlock(c_out, k, dil, s))
            if i + 1 < len(v.upsample_rates):  # bring the source's STFT frames to this rate
                stride = math.prod(v.upsample_rates[i + 1 :])
                conv = Int8Conv1d(
                    spec_channels, c_out, 2 * stride, stride, padding=(stride + 1) // 2
                )
                self.noise_convs.append(conv)
                self.noise_res.append(SnakeResBlock(c_out, 7, (1, 3, 5), s))
            else:
                self.noise_convs.append(Int8Conv1d(spec_channels, c_out, 1))
                self.noise_res.append(SnakeResBlock(c_out, 11, (1, 3, 5), s))
        self.conv_post = nn.Conv1d(
            v.initial_channels >> len(v.upsample_rates), spec_channels, 7, padding=3
        )
        self.istft = ExportedInverseSTFT(v.n_fft, v.hop)

    def source_spectrum(self, f0: Tensor) -> Tensor:
        """The harmonic source's STFT as [B, magnitude bins + phase bins, frames]."""
        excitation = self.m_source(f0)
        spec = torch.stft(
            excitation, self.n_fft, self.hop, window=self.stft_window, return_complex=True
        )
        phase = torch.angle(spec)
        # A real negative value gets the sign onnxruntime's STFT gives it (its rounding leaves
        # a tiny imaginary part): +π in the DC bin, −π in the Nyquist bin. The generator reads
        # the phase as a number: −π in the DC bin (as this model had it) was the fixed 3-6 dB
        # band shape against the ONNX, −5 dB at 2-4 kHz, +5 dB at 4-6 kHz
        # (benchmarks/onnx_int8_emulation.md).
        sign = torch.ones(spec.shape[1], 1, device=spec.device)
        sign[-1] = -1.0
        phase = torch.where((spec.real < 0) & (spec.imag == 0), math.pi * sign, phase)
        return torch.cat([spec.abs(), phase], dim=1)

    def forward(self, x: Tensor, style: Tensor, f0: Tensor) -> Tensor:
        source = self.source_spectrum(f0)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            if i == len(self.ups) - 1:
                x = F.pad(x, (1, 0), mode="reflect")
            x = x + self.noise_res[i](self.noise_convs[i](source), style)
            blocks = self.resblocks[i * self.n_kernels : (i + 1) * self.n_kernels]
            x = torch.stack([block(x, style) for block in blocks]).mean(0)
        x = self.conv_post(F.leaky_relu(x, 0.01))
        bins = self.n_fft // 2 + 1
        return self.istft(torch.exp(x[:, :bins]), torch.sin(x[:, bins:]))


class Decoder(nn.Module):
    """Aligned text features + F0 + energy → features at 2× frame rate → Generator."""

    def __init__(self, cfg: KokoroModelConfig) -> None:
        super().__init__()
        d, s = cfg.hidden_dim, cfg.style_dim
        self.F0_conv = Int8Conv1d(1, 1, 3, stride=2, padding=1)
        self.N_conv = Int8Conv1d(1, 1, 3, stride=2, padding=1)
        self.asr_res = nn.Sequential(Int8Conv1d(d, 64, 1))
        self.encode = AdainResBlock(d + 2, 1024, s)
        skip = 1024 + 2 + 64  # each decode block also sees the F0, energy and text features
        self.decode = nn.ModuleList(
            [
                AdainResBlock(skip, 1024, s),
                AdainResBlock(skip, 1024, s),
                AdainResBlock(skip, 1024, s),
                AdainResBlock(skip, 512, s, upsample=True),
            ]
        )
        self.generator = Generator(cfg)

    def forward(self, aligned: Tensor, f0: Tensor, energy: Tensor, style: Tensor) -> Tensor:
        f0_down = self.F0_conv(f0[:, None])
        energy_down = self.N_conv(energy[:, None])
        x = self.encode(torch.cat([aligned, f0_down, energy_down], dim=1), style)
        text_skip = self.asr_res(aligned)
        for block in self.decode:
            x = block(torch.cat([x, text_skip, f0_down, energy_down], dim=1), style)
        return self.generator(x, style, f0)


# ----------------------------------------------------------------------------------------
# The whole model and its staged forward
# ----------------------------------------------------------------------------------------


@dataclass
class TextFeatures:
    """Stage 1 output for one utterance."""

    tokens: Tensor  # [1, T] ids, wrapped with 0 at both ends
    prosody: Tensor  # [1, 512, T] ALBERT features projected for the prosody predictor
    acoustic: Tensor  # [1, 512, T] TextEncoder features for the decoder


@dataclass
class Prosody:
    """Stage 2 output: what the decoder needs besides the text features and the style."""

    durations: Tensor  # [T] int64 frames per token (≥ 1)
    f0: Tensor  # [1, 2·frames] Hz
    energy: Tensor  # [1, 2·frames]


def alignment_matrix(durations: Tensor) -> Tensor:
    """[T] frames per token → [1, T, frames] one-hot matrix that repeats each token."""
    frames = int(durations.sum())
    token_of_frame = torch.repeat_interleave(torch.arange(len(durations)), durations.cpu())
    aln = torch.zeros(len(durations), frames)
    aln[token_of_frame, torch.arange(frames)] = 1.0
    return aln[None]


class KokoroModel(nn.Module):
    """Kokoro-82M: text → token features → (durations, F0, energy) → 24 kHz waveform."""

    def __init__(self, config: KokoroModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or KokoroModelConfig()
        cfg = self.config
        self.bert = Albert(cfg.n_token, cfg.albert)
        self.bert_encoder = Int8Linear(cfg.albert.hidden_dim, cfg.hidden_dim)
        self.predictor = ProsodyPredictor(cfg)
        self.text_encoder = TextEncoder(cfg)
        self.decoder = Decoder(cfg)
        self.set_onnx_int8_emulation(cfg.emulate_onnx_int8)

    def set_onnx_int8_emulation(self, enabled: bool) -> None:
        """Round layer inputs as the int8 ONNX does (True) or run them in float (False).

        Changes this model for every caller that shares it."""
        for module in self.modules():
            if isinstance(module, Int8Linear | Int8Conv1d | Int8LSTM):
                module.emulate_onnx_int8 = enabled

    @property
    def emulates_onnx_int8(self) -> bool:
        return bool(self.decoder.generator.noise_convs[0].emulate_onnx_int8)

    def split_style(self, style: Tensor) -> tuple[Tensor, Tensor]:
        """[1, 256] style → (decoder half, prosody half)."""
        s = self.config.style_dim
        return style[:, :s], style[:, s:]

    def encode_text(self, tokens: Tensor) -> TextFeatures:
        """Stage 1. `tokens` [1, T] phoneme ids wrapped with 0 at both ends."""
        prosody = self.bert_encoder(self.bert(tokens)).transpose(1, 2)
        return TextFeatures(tokens=tokens, prosody=prosody, acoustic=self.text_encoder(tokens))

    def predict_prosody(
        self,
        features: TextFeatures,
        style: Tensor,
        speed: float = 1.0,
        durations: Tensor | None = None,
    ) -> Prosody:
        """Stage 2. Durations are predicted unless given ([T] int64, one per token)."""
        _, prosody_style = self.split_style(style)
        d = self.predictor.duration_features(features.prosody, prosody_style)  # [1, T, 640]
        if durations is None:
            predicted = self.predictor.durations(d, speed)[0]
            durations = torch.round(predicted).clamp(min=1).long().detach()
        if durations.shape != (features.tokens.shape[1],):
            raise ValueError(
                f"durations must have one entry per token ({features.tokens.shape[1]}), "
                f"got shape {tuple(durations.shape)}"
            )
        aligned = d.transpose(1, 2) @ alignment_matrix(durations).to(d)
        f0, energy = self.predictor.f0_energy(aligned, prosody_style)
        return Prosody(durations=durations, f0=f0, energy=energy)

    def align(self, features: TextFeatures, durations: Tensor) -> Tensor:
        """The decoder's text features repeated by the durations: [1, 512, frames]."""
        return features.acoustic @ alignment_matrix(durations).to(features.acoustic)

    def decode(self, aligned: Tensor, f0: Tensor, energy: Tensor, style: Tensor) -> Tensor:
        """Stage 3 → waveform [1, samples] at 24 kHz (samples = 600 per aligned frame)."""
        decoder_style, _ = self.split_style(style)
        return self.decoder(aligned, f0, energy, decoder_style)

    def forward(
        self, tokens: Tensor, style: Tensor, speed: float = 1.0, durations: Tensor | None = None
    ) -> Tensor:
        features = self.encode_text(tokens)
        prosody = self.predict_prosody(features, style, speed, durations)
        aligned = self.align(features, prosody.durations)
        return self.decode(aligned, prosody.f0, prosody.energy, style)
