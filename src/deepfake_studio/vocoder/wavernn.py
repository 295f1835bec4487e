"""SV2TTS stage 3: WaveRNN (fatchord's version, RAW mode) — mel spectrogram → 16 kHz waveform.

Parameter names follow Real-Time-Voice-Cloning's vocoder, so its published `vocoder.pt`
loads with `load_state_dict(strict=True)`.

    mel (80, T) / 4 ──┬─ upsample: 3 × (stretch ×s, smoothing conv) with s = 5, 5, 8 ─► (T·200, 80)
                      └─ MelResNet (conv k=5, 10 residual 1×1 blocks) ─ stretch ×200 ─► (T·200, 128)
                                                           split into 4 × 32 "aux" features a1..a4
    per sample t:  x = I([previous sample, mel_t, a1_t])
                   x = x + GRU1(x);   x = x + GRU2([x, a2_t])
                   x = relu(fc1([x, a3_t]));  x = relu(fc2([x, a4_t]));  logits = fc3(x)
                   sample ~ softmax(logits) over 512 classes (9-bit mu-law)

Generating one sample at a time is slow, so the conditioning is cut into overlapping
"folds" that are generated as one batch and cross-faded back together (see
`fold_with_overlap` / `xfade_and_unfold`). The output is mu-law decoded and de-emphasised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias
from torch import nn

from deepfake_studio.synthesizer.tacotron import AudioConfig
from deepfake_studio.vocoder.audio import de_emphasis, decode_mu_law


@dataclass(frozen=True)
class WaveRNNConfig:
    """RTVC's `vocoder/hparams.py` plus its generation defaults (`infer_waveform`)."""

    rnn_dims: int = 512
    fc_dims: int = 512
    bits: int = 9  # 512 mu-law classes
    pad: int = 2  # mel frames of context on each side for the MelResNet's k=5 conv
    upsample_factors: tuple[int, ...] = (5, 5, 8)  # product = hop length 200
    feat_dims: int = 80
    compute_dims: int = 128
    res_out_dims: int = 128
    res_blocks: int = 10
    mel_scale: float = 4.0  # the synthesizer's max_abs_value: the vocoder sees mel / 4
    # Batched ("folded") generation: each fold makes `target` new samples after `overlap`
    # samples shared with its neighbour. RTVC's toolbox uses 8000 / 800.
    target: int = 8000
    overlap: int = 800
    fade_out_frames: int = 20  # fade the last 20 hops (0.25 s) so speech does not end in a click
    audio: AudioConfig = field(default_factory=AudioConfig)

    @property
    def n_classes(self) -> int:
        return 2**self.bits

    @property
    def hop_length(self) -> int:
        return int(np.prod(self.upsample_factors))

    @property
    def aux_dims(self) -> int:
        return self.res_out_dims // 4


class ResBlock(nn.Module):
    """1×1 conv → BN → ReLU → 1×1 conv → BN, plus the input."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(dims, dims, kernel_size=1, bias=False)
        self.conv2 = nn.Conv1d(dims, dims, kernel_size=1, bias=False)
        self.batch_norm1 = nn.BatchNorm1d(dims)
        self.batch_norm2 = nn.BatchNorm1d(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.batch_norm1(self.conv1(x)))
        return x + self.batch_norm2(self.conv2(y))


class MelResNet(nn.Module):
    """Frame-rate features from a (2·pad + 1)-frame window: (B, 80, T + 2·pad) → (B, 128, T)."""

    def __init__(self, c: WaveRNNConfig) -> None:
        super().__init__()
        self.conv_in = nn.Conv1d(c.feat_dims, c.compute_dims, kernel_size=2 * c.pad + 1, bias=False)
        self.batch_norm = nn.BatchNorm1d(c.compute_dims)
        self.layers = nn.ModuleList(ResBlock(c.compute_dims) for _ in range(c.res_blocks))
        self.conv_out = nn.Conv1d(c.compute_dims, c.res_out_dims, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.batch_norm(self.conv_in(x)))
        for layer in self.layers:
            x = layer(x)
        return self.conv_out(x)


class Stretch2d(nn.Module):
    """Nearest-neighbour upsampling of the last axis by an integer factor (no parameters)."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(self.factor, dim=-1)


class UpsampleNetwork(nn.Module):
    """Mel frames → per-sample conditioning: the mel itself, smoothly stretched, and aux features.

    `up_layers` alternates Stretch2d and a (1, 2s+1) smoothing Conv2d so that the convs sit at
    indices 1, 3, 5, as in the checkpoint.
    """

    def __init__(self, c: WaveRNNConfig) -> None:
        super().__init__()
        self.indent = c.pad * c.hop_length  # samples produced by the padding frames
        self.resnet = MelResNet(c)
        self.resnet_stretch = Stretch2d(c.hop_length)
        layers: list[nn.Module] = []
        for scale in c.upsample_factors:
            conv = nn.Conv2d(1, 1, kernel_size=(1, 2 * scale + 1), padding=(0, scale), bias=False)
            nn.init.constant_(conv.weight, 1.0 / (2 * scale + 1))  # a moving average to start
            layers += [Stretch2d(scale), conv]
        self.up_layers = nn.ModuleList(layers)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mel (B, 80, T + 2·pad) → (B, T·hop, 80) upsampled mel, (B, T·hop, 128) aux."""
        aux = self.resnet_stretch(self.resnet(mel))
        m = mel.unsqueeze(1)  # (B, 1, 80, frames): the convs slide along time only
        for layer in self.up_layers:
            m = layer(m)
        m = m.squeeze(1)[:, :, self.indent : -self.indent]
        return m.transpose(1, 2), aux.transpose(1, 2)


class WaveRNN(nn.Module):
    """The vocoder network; `generate` turns a synthesizer mel into a waveform."""

    def __init__(self, config: WaveRNNConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or WaveRNNConfig()
        a = c.aux_dims
        self.upsample = UpsampleNetwork(c)
        self.I = nn.Linear(c.feat_dims + a + 1, c.rnn_dims)  # checkpoint name
        self.rnn1 = nn.GRU(c.rnn_dims, c.rnn_dims, batch_first=True)
        self.rnn2 = nn.GRU(c.rnn_dims + a, c.rnn_dims, batch_first=True)
        self.fc1 = nn.Linear(c.rnn_dims + a, c.fc_dims)
        self.fc2 = nn.Linear(c.fc_dims + a, c.fc_dims)
        self.fc3 = nn.Linear(c.fc_dims, c.n_classes)
        self.register_buffer("step", torch.zeros(1, dtype=torch.long))  # training bookkeeping

    def forward(self, previous: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Teacher-forced pass for training, as RTVC's `WaveRNN.forward(x, mels)`.

        previous (B, L): the companded value in [-1, 1] of the sample *before* each target;
        mel (B, 80, L / hop + 2·pad) in the synthesizer's [-4, 4] scale, with `pad` frames of
        context on each side → logits (B, L, n_classes) of each target sample's mu-law class.
        """
        c = self.config
        mels, aux = self.upsample(mel / c.mel_scale)
        a1, a2, a3, a4 = aux.split(c.aux_dims, dim=2)
        x = self.I(torch.cat([previous.unsqueeze(-1), mels, a1], dim=2))
        x = x + self.rnn1(x)[0]
        x = x + self.rnn2(torch.cat([x, a2], dim=2))[0]
        x = F.relu(self.fc1(torch.cat([x, a3], dim=2)))
        x = F.relu(self.fc2(torch.cat([x, a4], dim=2)))
        return self.fc3(x)

    def conditioning(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised mel (80, T) → upsampled mel (1, T·hop, 80) and aux (1, T·hop, 128)."""
        c = self.config
        mel = (mel / c.mel_scale).unsqueeze(0)
        mel = F.pad(mel, (c.pad, c.pad))  # zero frames, as RTVC pads
        return self.upsample(mel)

    @torch.inference_mode()
    def generate(
        self,
        mel: torch.Tensor | np.ndarray,
        generator: torch.Generator | None = None,
        batched: bool = True,
    ) -> np.ndarray:
        """(80, T) mel in the synthesizer's [-4, 4] scale → float32 waveform of (T-1)·hop."""
        if self.training:
            raise RuntimeError("call .eval() before generate(): batch norm needs its statistics")
        c = self.config
        device = self.fc3.weight.device
        mel = torch.as_tensor(mel, dtype=torch.float32, device=device)
        mels, aux = self.conditioning(mel)
        if batched:
            mels = fold_with_overlap(mels, c.target, c.overlap)
            aux = fold_with_overlap(aux, c.target, c.overlap)
        labels = self.sample_sequence(mels, aux, generator)

        # Class index → companded value in [-1, 1] → linear amplitude → undo pre-emphasis.
        companded = 2 * labels.double().cpu().numpy() / (c.n_classes - 1) - 1
        companded = xfade_and_unfold(companded, c.overlap) if batched else companded[0]
        wav = de_emphasis(decode_mu_law(companded, c.n_classes), c.audio.preemphasis)

        wav = wav[: (mel.size(-1) - 1) * c.hop_length]
        fade = min(len(wav), c.fade_out_frames * c.hop_length)
        if fade:
            wav[-fade:] *= np.linspace(1.0, 0.0, fade)
        return wav.astype(np.float32)

    def sample_sequence(
        self, mels: torch.Tensor, aux: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Autoregressive sampling over (B, L, ·) conditioning → (B, L) class indices."""
        c, a = self.config, self.config.aux_dims
        batch, length, _ = mels.shape
        a1, a2, a3, a4 = aux.split(a, dim=2)
        # Everything that does not depend on the previous sample is computed for all steps at
        # once; per step only the recurrent part runs (those steps are WaveRNN's whole cost).
        w_sample, w_mel, w_a1 = self.I.weight.split([1, c.feat_dims, a], dim=1)
        inputs = F.linear(torch.cat([mels, a1], dim=2), torch.cat([w_mel, w_a1], 1), self.I.bias)
        w_fc1, w_fc1_aux = self.fc1.weight.split([c.rnn_dims, a], dim=1)
        fc1_aux = F.linear(a3, w_fc1_aux, self.fc1.bias)
        w_fc2, w_fc2_aux = self.fc2.weight.split([c.fc_dims, a], dim=1)
        fc2_aux = F.linear(a4, w_fc2_aux, self.fc2.bias)
        rnn1, rnn2 = _as_cell(self.rnn1), _as_cell(self.rnn2)

        h1 = mels.new_zeros(batch, c.rnn_dims)
        h2 = mels.new_zeros(batch, c.rnn_dims)
        sample = mels.new_zeros(batch, 1)  # companded value of the previous sample
        labels = torch.empty(batch, length, dtype=torch.long, device=mels.device)
        for t in range(length):
            x = torch.addmm(inputs[:, t], sample, w_sample.t())
            h1 = rnn1(x, h1)
            x = x + h1
            h2 = rnn2(torch.cat([x, a2[:, t]], dim=1), h2)
            x = x + h2
            x = F.relu(torch.addmm(fc1_aux[:, t], x, w_fc1.t()))
            x = F.relu(torch.addmm(fc2_aux[:, t], x, w_fc2.t()))
            probabilities = F.softmax(self.fc3(x), dim=1)
            # replacement=True is how torch's Categorical samples: with the same RNG state the
            # draws equal RTVC's, sample for sample (checked against its code, unbatched).
            label = torch.multinomial(probabilities, 1, True, generator=generator)  # (B, 1)
            labels[:, t] = label[:, 0]
            sample = 2 * label.float() / (c.n_classes - 1) - 1
        return labels


def _as_cell(gru: nn.GRU) -> nn.GRUCell:
    """A GRUCell sharing a one-layer GRU's weights (one step at a time, no sequence overhead)."""
    cell = nn.GRUCell(gru.input_size, gru.hidden_size, device=gru.weight_ih_l0.device)
    cell.weight_ih, cell.weight_hh = gru.weight_ih_l0, gru.weight_hh_l0
    cell.bias_ih, cell.bias_hh = gru.bias_ih_l0, gru.bias_hh_l0
    return cell


def fold_with_overlap(x: torch.Tensor, target: int, overlap: int) -> torch.Tensor:
    """(1, L, C) → (n_folds, target + 2·overlap, C); fold i starts at i·(target + overlap).

    Consecutive folds share `overlap` steps, which the second one uses to warm up its RNN
    state and `xfade_and_unfold` uses to cross-fade. The tail is zero-padded.

        target=2, overlap=1, x = h1..h10  →  [h1 h2 h3 h4], [h4 h5 h6 h7], [h7 h8 h9 h10]
    """
    if target <= 0 or overlap < 0:
        raise ValueError(f"need target > 0 and overlap >= 0, got {target}, {overlap}")
    _, total, _ = x.shape
    stride, width = target + overlap, target + 2 * overlap
    n_folds = max(1, -(-(total - overlap) // stride))  # ceil, at least one fold
    padded = F.pad(x, (0, 0, 0, n_folds * stride + overlap - total))
    return torch.cat([padded[:, i * stride : i * stride + width] for i in range(n_folds)])


def crossfade_weights(overlap: int) -> np.ndarray:
    """Gain of the *incoming* fold over an overlap region; the outgoing fold gets 1 - gain.

    The first half is 0 (the incoming fold's RNN is still warming up), the second half a
    raised-cosine ramp 0 → 1. Gains of the two folds always sum to 1, so a signal that is the
    same in both folds comes back unchanged. (RTVC's fades did not overlap and dipped to
    silence in the middle of every overlap.)
    """
    silence = overlap // 2
    ramp = np.sin(0.5 * np.pi * (np.arange(overlap - silence) + 0.5) / (overlap - silence)) ** 2
    return np.concatenate([np.zeros(silence), ramp])


def xfade_and_unfold(y: np.ndarray, overlap: int) -> np.ndarray:
    """(n_folds, target + 2·overlap) → (n_folds·(target + overlap) + overlap,) cross-faded.

    Inverse of `fold_with_overlap` on the time axis: unfolding a folded signal returns it
    (followed by the zero padding).
    """
    n_folds, width = y.shape
    stride = width - overlap
    fade_in = crossfade_weights(overlap)
    out = np.zeros(n_folds * stride + overlap, dtype=np.float64)
    for i, fold in enumerate(y):
        gain = np.ones(width)
        if i > 0 and overlap:
            gain[:overlap] = fade_in
        if i < n_folds - 1 and overlap:
            gain[-overlap:] = 1.0 - fade_in
        out[i * stride : i * stride + width] += fold * gain
    return out


class WaveRNNVocoder:
    """Callable mel → waveform with a fixed seed, interchangeable with `GriffinLimVocoder`."""

    name = "wavernn"

    def __init__(self, model: WaveRNN, seed: int = 0) -> None:
        self.model = model.eval()
        self.seed = seed

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        generator = torch.Generator(device=self.model.fc3.weight.device).manual_seed(self.seed)
        return self.model.generate(mel, generator=generator)
