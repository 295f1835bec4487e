"""The GE2E speaker encoder network (SV2TTS stage 1), small enough to read in one sitting.

Architecture (Wan et al., "Generalized End-to-End Loss for Speaker Verification", 2018, as
trained by Real-Time-Voice-Cloning and shipped by resemblyzer):

    mel partial (B, 160 frames, 40 mels)
      -> 3-layer LSTM, 256 hidden units          (only the last layer's final hidden state is kept)
      -> linear 256 -> 256 -> ReLU
      -> L2 normalisation                          (so embeddings lie on the unit sphere, >= 0)

The parameter names match both checkpoints exactly (`lstm.*`, `linear.*`, `similarity_weight`,
`similarity_bias`), so `load_state_dict(strict=True)` works without any key renaming.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias
from torch import nn


@dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of the encoder and of the audio it expects (RTVC/resemblyzer values)."""

    # Audio and mel features.
    sample_rate: int = 16_000
    n_mels: int = 40
    window_ms: float = 25.0
    hop_ms: float = 10.0

    # Partial utterances: 160 frames = 1.6 s windows, half-overlapping.
    partial_frames: int = 160
    partial_overlap: float = 0.5
    # The last partial is kept only if at least this fraction of it is real (not padding) audio.
    min_coverage: float = 0.75

    # Network.
    hidden_size: int = 256
    embedding_size: int = 256
    num_layers: int = 3

    # Preprocessing (resemblyzer's `preprocess_wav`).
    target_dbfs: float = -30.0
    vad_window_ms: int = 30  # webrtcvad accepts 10, 20 or 30 ms windows only
    vad_moving_average_width: int = 8
    vad_max_silence_windows: int = 6
    vad_mode: int = 3  # most aggressive: treat anything doubtful as non-speech

    @property
    def n_fft(self) -> int:
        """FFT size = window length in samples (400 at 16 kHz)."""
        return int(self.sample_rate * self.window_ms / 1000)

    @property
    def hop_length(self) -> int:
        """Hop in samples between mel frames (160 at 16 kHz)."""
        return int(self.sample_rate * self.hop_ms / 1000)

    @property
    def partial_step(self) -> int:
        """Frames between the starts of consecutive partials (80 for 50 % overlap)."""
        return max(1, round(self.partial_frames * (1.0 - self.partial_overlap)))


class SpeakerEncoderModel(nn.Module):
    """LSTM -> linear -> ReLU -> L2 norm; maps mel partials to 256-d speaker embeddings."""

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or EncoderConfig()
        c = self.config
        self.lstm = nn.LSTM(c.n_mels, c.hidden_size, c.num_layers, batch_first=True)
        self.linear = nn.Linear(c.hidden_size, c.embedding_size)
        self.relu = nn.ReLU()
        # GE2E's learnable scale/offset of the cosine-similarity matrix. Only used in training,
        # but kept so that checkpoints load with strict=True.
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Embed a batch of equal-length mel partials.

        mels: (batch, frames, n_mels) float32 power-mel frames.
        Returns (batch, embedding_size) L2-normalised embeddings.
        """
        _, (hidden, _) = self.lstm(mels)
        embeds = self.relu(self.linear(hidden[-1]))  # hidden[-1]: the top layer's last state
        # eps only matters for an all-zero ReLU output, where resemblyzer would return NaN.
        return F.normalize(embeds, p=2.0, dim=1, eps=1e-12)


def expected_shapes(config: EncoderConfig | None = None) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes a checkpoint must have, in the model's own key order."""
    # Building on the meta device allocates no memory and runs no initialisation.
    with torch.device("meta"):
        model = SpeakerEncoderModel(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}
