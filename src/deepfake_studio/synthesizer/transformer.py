"""A transformer TTS conditioned on a speaker d-vector and an emotion (after Li et al., 2019).

    model = TransformerTTS(TransformerTTSConfig())
    mel = model.generate(text_ids, speaker=d_vector, emotion=EMOTIONS.index("happy"))

Text: the characters of RTVC's front-end (`sv2tts_text`: English cleaners, numbers spelled
out, 66 symbols), so training and speaking need no phonemizer. A character model needs more
data than a phoneme one to learn pronunciation; it keeps the package free of espeak at
training time and shares the front-end with the Tacotron path.

    characters ─► embedding + α·positions ─► 6 encoder layers (8 heads) ─► memory
    memory + W_s·d-vector (256) + W_e·emotion (128-d table, 6 emotions) ─► conditioned memory
    previous mel frame ─► prenet (always-on dropout) ─► + α·positions ─► 6 decoder layers
        (causal self-attention, cross-attention to the conditioned memory) ─► mel (80) + stop
    mel ─► 5-layer conv postnet (residual) ─► mel

The speaker and emotion are added to every memory vector, so each cross-attention read
carries them. Alignment is learned by teacher forcing, a stop token, and a guided-attention
loss (Tachibana et al., 2017) on the last decoder layer's cross-attention, which pushes it
toward the diagonal: with the few hours a laptop can train on, plain transformer TTS often
never finds the alignment at all, and a duration model would need an aligner first.
Decoding recomputes the decoder over all frames each step (no key/value cache): simple,
quadratic in length, fine for sentence-sized chunks.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias
from torch import nn

from deepfake_studio.synthesizer.tacotron import HIFIGAN_AUDIO, AudioConfig

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "fear")  # the emotion table's rows


@dataclass(frozen=True)
class TransformerTTSConfig:
    n_symbols: int = 66  # sv2tts_text's symbol table
    d_model: int = 256
    heads: int = 8
    encoder_layers: int = 6
    decoder_layers: int = 6
    ffn_dims: int = 1024
    dropout: float = 0.1
    speaker_dims: int = 256  # the GE2E d-vector
    emotion_dims: int = 128
    n_emotions: int = len(EMOTIONS)
    prenet_dims: int = 256
    prenet_dropout: float = 0.5
    postnet_dims: int = 256
    postnet_layers: int = 5
    postnet_kernel: int = 5
    audio: AudioConfig = HIFIGAN_AUDIO  # the mel it writes: HiFi-GAN's 22.05 kHz, hop 512


def positions(length: int, dims: int, device: torch.device) -> torch.Tensor:
    """(length, dims) sinusoidal position encodings."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, dims, 2, device=device) * (-math.log(10_000.0) / dims))
    table = torch.zeros(length, dims, device=device)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate)
    return table


class FeedForward(nn.Sequential):
    def __init__(self, c: TransformerTTSConfig) -> None:
        super().__init__(
            nn.Linear(c.d_model, c.ffn_dims), nn.ReLU(), nn.Dropout(c.dropout),
            nn.Linear(c.ffn_dims, c.d_model),
        )  # fmt: skip


class EncoderLayer(nn.Module):
    """Pre-norm self-attention + feed-forward (pre-norm trains stably without warm-up tricks)."""

    def __init__(self, c: TransformerTTSConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.attention = nn.MultiheadAttention(c.d_model, c.heads, c.dropout, batch_first=True)
        self.ffn = FeedForward(c)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.dropout(
            self.attention(h, h, h, key_padding_mask=padding, need_weights=False)[0]
        )
        return x + self.dropout(self.ffn(self.norm2(x)))


class DecoderLayer(nn.Module):
    """Pre-norm causal self-attention, cross-attention to the text, feed-forward."""

    def __init__(self, c: TransformerTTSConfig) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(c.d_model) for _ in range(3))
        self.self_attention = nn.MultiheadAttention(c.d_model, c.heads, c.dropout, batch_first=True)
        self.cross_attention = nn.MultiheadAttention(
            c.d_model, c.heads, c.dropout, batch_first=True
        )
        self.ffn = FeedForward(c)
        self.dropout = nn.Dropout(c.dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        causal: torch.Tensor,
        text_padding: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norms[0](x)
        x = x + self.dropout(self.self_attention(h, h, h, attn_mask=causal, need_weights=False)[0])
        h = self.norms[1](x)
        attended, weights = self.cross_attention(
            h, memory, memory, key_padding_mask=text_padding, need_weights=True
        )  # weights: (B, frames, characters), averaged over heads
        x = x + self.dropout(attended)
        return x + self.dropout(self.ffn(self.norms[2](x))), weights


class TransformerTTS(nn.Module):
    """(characters, d-vector, emotion) → mel frames, stop logits, cross-attention."""

    def __init__(self, config: TransformerTTSConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or TransformerTTSConfig()
        n_mels = c.audio.n_mels
        self.embedding = nn.Embedding(c.n_symbols, c.d_model, padding_idx=0)
        self.encoder_alpha = nn.Parameter(torch.ones(1))  # learned scale of the positions
        self.encoder = nn.ModuleList(EncoderLayer(c) for _ in range(c.encoder_layers))
        self.encoder_norm = nn.LayerNorm(c.d_model)
        self.speaker_proj = nn.Linear(c.speaker_dims, c.d_model)
        self.emotion_table = nn.Embedding(c.n_emotions, c.emotion_dims)
        self.emotion_proj = nn.Linear(c.emotion_dims, c.d_model)

        self.prenet = nn.ModuleList(
            [nn.Linear(n_mels, c.prenet_dims), nn.Linear(c.prenet_dims, c.prenet_dims)]
        )
        self.prenet_proj = nn.Linear(c.prenet_dims, c.d_model)
        self.decoder_alpha = nn.Parameter(torch.ones(1))
        self.decoder = nn.ModuleList(DecoderLayer(c) for _ in range(c.decoder_layers))
        self.decoder_norm = nn.LayerNorm(c.d_model)
        self.mel_head = nn.Linear(c.d_model, n_mels)
        self.stop_head = nn.Linear(c.d_model, 1)

        layers: list[nn.Module] = []
        channels = [n_mels, *([c.postnet_dims] * (c.postnet_layers - 1)), n_mels]
        for i, (a, b) in enumerate(itertools.pairwise(channels)):
            layers += [
                nn.Conv1d(a, b, c.postnet_kernel, padding=c.postnet_kernel // 2),
                nn.BatchNorm1d(b),
            ]
            if i < c.postnet_layers - 1:
                layers += [nn.Tanh(), nn.Dropout(c.dropout)]
        self.postnet = nn.Sequential(*layers)

    def encode(
        self,
        text: torch.Tensor,
        speaker: torch.Tensor,
        emotion: torch.Tensor,
        emotion_strength: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """text (B, N) ids (0 = padding), speaker (B, 256), emotion (B,) → memory, padding mask.
        `emotion_strength` < 1 moves the emotion's embedding that far from neutral's (row 0)."""
        padding = text == 0
        x = self.embedding(text) + self.encoder_alpha * positions(
            text.size(1), self.config.d_model, text.device
        )
        for layer in self.encoder:
            x = layer(x, padding)
        feeling = self.emotion_table(emotion)
        if emotion_strength != 1.0:
            neutral = self.emotion_table.weight[EMOTIONS.index("neutral")]
            feeling = neutral + (feeling - neutral) * emotion_strength
        condition = self.speaker_proj(speaker) + self.emotion_proj(feeling)
        return self.encoder_norm(x) + condition[:, None, :], padding

    def decode(
        self, memory: torch.Tensor, padding: torch.Tensor, previous: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """previous (B, T, n_mels) frames (a zero frame first) → mel (B, T, n_mels), stop
        logits (B, T), last layer's cross-attention (B, T, N)."""
        x = previous
        for linear in self.prenet:  # dropout stays on at inference too (Tacotron's trick)
            x = F.dropout(F.relu(linear(x)), self.config.prenet_dropout, training=True)
        frames = x.size(1)
        x = self.prenet_proj(x) + self.decoder_alpha * positions(
            frames, self.config.d_model, x.device
        )
        causal = torch.triu(torch.ones(frames, frames, dtype=torch.bool, device=x.device), 1)
        attention = x.new_zeros(0)
        for layer in self.decoder:
            x, attention = layer(x, memory, causal, padding)
        x = self.decoder_norm(x)
        return self.mel_head(x), self.stop_head(x).squeeze(-1), attention

    def postnet_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, T, n_mels) → refined (B, T, n_mels)."""
        return mel + self.postnet(mel.transpose(1, 2)).transpose(1, 2)

    def forward(
        self, text: torch.Tensor, speaker: torch.Tensor, emotion: torch.Tensor, mels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher forcing: mels (B, T, n_mels) → mel, postnet mel, stop logits, attention."""
        memory, padding = self.encode(text, speaker, emotion)
        previous = F.pad(mels[:, :-1], (0, 0, 1, 0), value=0.0)  # frame t sees frames < t
        mel, stop, attention = self.decode(memory, padding, previous)
        return mel, self.postnet_mel(mel), stop, attention

    @torch.inference_mode()
    def generate(
        self,
        text_ids: list[int] | torch.Tensor,
        speaker: torch.Tensor,
        emotion: int = 0,
        max_frames: int = 1000,
        min_frames: int = 5,
        emotion_strength: float = 1.0,
    ) -> torch.Tensor:
        """One utterance → mel (n_mels, T): until the stop logit is positive or max_frames."""
        if self.training:
            raise RuntimeError("call .eval() before generate()")
        text = torch.as_tensor(text_ids, dtype=torch.long).reshape(1, -1)
        memory, padding = self.encode(
            text, speaker.reshape(1, -1).float(), torch.tensor([emotion]), emotion_strength
        )
        frames = torch.zeros(1, 1, self.config.audio.n_mels)
        for step in range(max_frames):
            mel, stop, _ = self.decode(memory, padding, frames)
            frames = torch.cat([frames, mel[:, -1:]], dim=1)
            if step + 1 >= min_frames and stop[0, -1] > 0:
                break
        mel = self.postnet_mel(frames[:, 1:])
        return mel[0].T.clamp(-self.config.audio.max_abs_value, self.config.audio.max_abs_value)


def guided_attention_loss(
    attention: torch.Tensor, text_lengths: torch.Tensor, mel_lengths: torch.Tensor, sigma: float
) -> torch.Tensor:
    """Mean attention weight off the diagonal band: W[t, n] = 1 - exp(-(n/N - t/T)² / 2σ²)."""
    _, frames, chars = attention.shape
    t = torch.arange(frames, dtype=torch.float32)[None, :, None] / mel_lengths[:, None, None]
    n = torch.arange(chars, dtype=torch.float32)[None, None, :] / text_lengths[:, None, None]
    weight = 1 - torch.exp(-((n - t) ** 2) / (2 * sigma**2))
    valid = (t < 1) & (n < 1)  # inside each item's own frames × characters
    return (attention * weight * valid).sum() / valid.sum()
