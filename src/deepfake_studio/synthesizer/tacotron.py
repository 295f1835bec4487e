"""SV2TTS stage 2: Tacotron with a CBHG encoder, conditioned on a GE2E speaker embedding.

Text ids → mel spectrogram (80 bands, 12.5 ms frames, values in [-4, 4]). The layout and the
parameter names follow Real-Time-Voice-Cloning's synthesizer, so its published
`synthesizer.pt` (`model_state`) loads with `load_state_dict(strict=True)`:

    ids (n,) ──embedding 512──prenet 256──CBHG──► encoder states (n, 256)
                                              ⊕ speaker embedding (256) on every step
                                              = memory (n, 512) ──encoder_proj──► keys (n, 128)

    decoder, one step = r frames:
      previous frame ─prenet─┐
      context (512) ─────────┴─ attention GRU (128) ─ location-sensitive attention over keys
      [context, attention state] ─rnn_input─ 2 residual LSTMs (1024) ─┬─ mel_proj → r frames
                                                                      └─ stop_proj → P(stop)

    all frames ──postnet (CBHG)──post_proj──► refined mel (80, T)

Quirks kept on purpose because the published weights were trained with them:
  * both prenets apply dropout (p = 0.5) at inference too, so output varies with the seed;
  * mel_proj always predicts `max_r` = 20 frames and the first `r` are used, laid out as
    (n_mels, max_r) in the output vector;
  * attention scores of padding ids (0) are multiplied by 0 rather than masked to -inf.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias
from torch import nn


@dataclass(frozen=True)
class AudioConfig:
    """How SV2TTS mel spectrograms are made (shared by the synthesizer and both vocoders)."""

    sample_rate: int = 16_000
    n_fft: int = 800
    hop_length: int = 200  # 12.5 ms frames
    win_length: int = 800  # 50 ms windows
    n_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    # Log-magnitude scaling: dB in [min_level_db, 0] (after subtracting ref_level_db) maps
    # linearly onto [-max_abs_value, max_abs_value].
    min_level_db: float = -100.0
    ref_level_db: float = 20.0
    max_abs_value: float = 4.0


RTVC_AUDIO = AudioConfig()
"""RTVC's 16 kHz format: Tacotron and WaveRNN (12.5 ms hop)."""
HIFIGAN_AUDIO = AudioConfig(
    sample_rate=22_050,
    n_fft=2048,
    hop_length=512,
    win_length=2048,
    fmin=0.0,
    fmax=8000.0,
    preemphasis=0.0,
)
"""22.05 kHz with the hop of 512 samples that HiFi-GAN's upsampling (8·8·4·2) makes; used by
the transformer synthesizer and HiFi-GAN. Same log scale as RTVC's, without pre-emphasis."""


def audio_preset(sample_rate: int) -> AudioConfig:
    """The mel format `prepare` uses at a sample rate: RTVC's at 16 kHz, else HiFi-GAN's."""
    if sample_rate == RTVC_AUDIO.sample_rate:
        return RTVC_AUDIO
    return replace(HIFIGAN_AUDIO, sample_rate=sample_rate)


@dataclass(frozen=True)
class TacotronConfig:
    """Network sizes of RTVC's synthesizer (`synthesizer/hparams.py`)."""

    n_symbols: int = 66
    embed_dims: int = 512
    encoder_dims: int = 256
    decoder_dims: int = 128
    postnet_dims: int = 512
    encoder_k: int = 5  # conv bank kernel sizes 1..K
    postnet_k: int = 5
    lstm_dims: int = 1024
    num_highways: int = 4
    dropout: float = 0.5
    speaker_embedding_size: int = 256
    n_mels: int = 80
    max_r: int = 20  # frames mel_proj can emit per step
    r: int = 2  # frames actually used per step (the published model was trained with 2)
    stop_threshold: float = -3.4  # trailing frames whose every band is below this are silence
    attention_filters: int = 32
    attention_kernel: int = 31
    stop_after_frame: int = 10  # the stop token counts only for steps starting after this
    audio: AudioConfig = field(default_factory=AudioConfig)  # the mel format it speaks


def prenet_dropout(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Dropout that is always on (Tacotron's prenet trick); seeded through `generator`."""
    if p <= 0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep / (1.0 - p)


class PreNet(nn.Module):
    """Two ReLU layers with always-on dropout: a bottleneck that keeps attention honest."""

    def __init__(self, in_dims: int, fc1_dims: int, fc2_dims: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dims, fc1_dims)
        self.fc2 = nn.Linear(fc1_dims, fc2_dims)
        self.p = dropout

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = prenet_dropout(F.relu(self.fc1(x)), self.p, generator)
        return prenet_dropout(F.relu(self.fc2(x)), self.p, generator)


class BatchNormConv(nn.Module):
    """Conv1d (no bias) → optional ReLU → BatchNorm, 'same' padding (one extra for even k)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False)
        self.bnorm = nn.BatchNorm1d(out_channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.bnorm(F.relu(x) if self.relu else x)


class HighwayNetwork(nn.Module):
    """y = g·relu(W1 x) + (1 - g)·x with gate g = sigmoid(W2 x)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.W1 = nn.Linear(size, size)  # checkpoint name
        self.W2 = nn.Linear(size, size)  # checkpoint name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.W2(x))
        return gate * F.relu(self.W1(x)) + (1.0 - gate) * x


class CBHG(nn.Module):
    """Conv bank (kernels 1..K) → max-pool → 2 projections + residual → highways → BiGRU.

    (batch, in_channels, time) → (batch, time, channels).
    """

    def __init__(
        self, k: int, in_channels: int, channels: int, proj_channels: int, num_highways: int
    ) -> None:
        super().__init__()
        self.conv1d_bank = nn.ModuleList(
            BatchNormConv(in_channels, channels, kernel) for kernel in range(1, k + 1)
        )
        self.conv_project1 = BatchNormConv(k * channels, proj_channels, 3)
        # The second projection returns to the input width so the residual can be added.
        self.conv_project2 = BatchNormConv(proj_channels, in_channels, 3, relu=False)
        # Highways run at `channels`; a bias-free linear bridges the width if it differs
        # (the postnet: 80 mel bands in, 512 channels).
        self.pre_highway = (
            nn.Linear(in_channels, channels, bias=False) if in_channels != channels else None
        )
        self.highways = nn.ModuleList(HighwayNetwork(channels) for _ in range(num_highways))
        self.rnn = nn.GRU(channels, channels // 2, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual, length = x, x.size(-1)
        # Even kernels pad one frame too many; trimming keeps every branch aligned.
        bank = torch.cat([conv(x)[:, :, :length] for conv in self.conv1d_bank], dim=1)
        x = F.max_pool1d(bank, kernel_size=2, stride=1, padding=1)[:, :, :length]
        x = self.conv_project2(self.conv_project1(x)) + residual
        x = x.transpose(1, 2)
        if self.pre_highway is not None:
            x = self.pre_highway(x)
        for highway in self.highways:
            x = highway(x)
        x, _ = self.rnn(x)
        return x


class Encoder(nn.Module):
    """Character ids → encoder states, with the speaker embedding appended to every step."""

    def __init__(self, c: TacotronConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(c.n_symbols, c.embed_dims)
        self.pre_net = PreNet(c.embed_dims, c.encoder_dims, c.encoder_dims, c.dropout)
        self.cbhg = CBHG(c.encoder_k, c.encoder_dims, c.encoder_dims, c.encoder_dims,
                         c.num_highways)  # fmt: skip

    def forward(
        self, ids: torch.Tensor, speaker: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """ids (B, n), speaker (B, 256) → memory (B, n, encoder_dims + 256)."""
        x = self.pre_net(self.embedding(ids), generator)
        x = self.cbhg(x.transpose(1, 2))
        # SV2TTS: the same d-vector on every character, so attention can read it anywhere.
        tiled = speaker.unsqueeze(1).expand(-1, x.size(1), -1)
        return torch.cat([x, tiled], dim=2)


class LocationSensitiveAttention(nn.Module):
    """Additive attention whose energies also see a convolution of the cumulative alignment,
    which pushes the alignment forward monotonically (Chorowski et al., 2015)."""

    def __init__(self, attn_dims: int, filters: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, filters, kernel, padding=(kernel - 1) // 2, bias=True)
        self.L = nn.Linear(filters, attn_dims, bias=False)  # checkpoint name
        self.W = nn.Linear(attn_dims, attn_dims, bias=True)  # carries the bias
        self.v = nn.Linear(attn_dims, 1, bias=False)

    def forward(
        self, keys: torch.Tensor, query: torch.Tensor, cumulative: torch.Tensor, ids: torch.Tensor
    ) -> torch.Tensor:
        """keys (B, n, 128), query (B, 128), cumulative (B, n) → weights (B, n)."""
        location = self.L(self.conv(cumulative.unsqueeze(1)).transpose(1, 2))
        energies = self.v(torch.tanh(self.W(query).unsqueeze(1) + keys + location)).squeeze(-1)
        energies = energies * (ids != 0).float()  # RTVC's padding "mask" (see module doc)
        return F.softmax(energies, dim=1)


@dataclass
class DecoderState:
    """Everything the decoder carries from one step to the next."""

    attn_hidden: torch.Tensor  # (B, decoder_dims)
    rnn1: tuple[torch.Tensor, torch.Tensor]  # (h, c), each (B, lstm_dims)
    rnn2: tuple[torch.Tensor, torch.Tensor]
    context: torch.Tensor  # (B, encoder_dims + speaker) — attention-weighted memory
    cumulative: torch.Tensor  # (B, n) — sum of all past alignments


class Decoder(nn.Module):
    """One autoregressive step: previous frame → next r frames and a stop probability."""

    def __init__(self, c: TacotronConfig) -> None:
        super().__init__()
        memory_dims = c.encoder_dims + c.speaker_embedding_size
        # r lives in the checkpoint (RTVC changes it during training); int32 scalar like RTVC.
        self.register_buffer("r", torch.tensor(c.r, dtype=torch.int32))
        self.n_mels, self.max_r = c.n_mels, c.max_r
        self.prenet = PreNet(c.n_mels, 2 * c.decoder_dims, 2 * c.decoder_dims, c.dropout)
        self.attn_net = LocationSensitiveAttention(
            c.decoder_dims, c.attention_filters, c.attention_kernel
        )
        self.attn_rnn = nn.GRUCell(memory_dims + 2 * c.decoder_dims, c.decoder_dims)
        self.rnn_input = nn.Linear(memory_dims + c.decoder_dims, c.lstm_dims)
        self.res_rnn1 = nn.LSTMCell(c.lstm_dims, c.lstm_dims)
        self.res_rnn2 = nn.LSTMCell(c.lstm_dims, c.lstm_dims)
        self.mel_proj = nn.Linear(c.lstm_dims, c.n_mels * c.max_r, bias=False)
        self.stop_proj = nn.Linear(memory_dims + c.lstm_dims, 1)

    def forward(
        self,
        memory: torch.Tensor,
        keys: torch.Tensor,
        ids: torch.Tensor,
        previous_frame: torch.Tensor,
        state: DecoderState,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """→ frames (B, n_mels, r), stop probability (B, 1), new state."""
        batch = memory.size(0)
        x = self.prenet(previous_frame, generator)
        attn_hidden = self.attn_rnn(torch.cat([state.context, x], dim=-1), state.attn_hidden)

        weights = self.attn_net(keys, attn_hidden, state.cumulative, ids)
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)

        x = self.rnn_input(torch.cat([context, attn_hidden], dim=1))
        # Zoneout only matters in training; at inference both LSTMs are plain residual layers.
        rnn1 = self.res_rnn1(x, state.rnn1)
        x = x + rnn1[0]
        rnn2 = self.res_rnn2(x, state.rnn2)
        x = x + rnn2[0]

        r = int(self.r)
        frames = self.mel_proj(x).view(batch, self.n_mels, self.max_r)[:, :, :r]
        stop = torch.sigmoid(self.stop_proj(torch.cat([x, context], dim=1)))
        new_state = DecoderState(attn_hidden, rnn1, rnn2, context, state.cumulative + weights)
        return frames, stop, new_state


class Tacotron(nn.Module):
    """SV2TTS synthesizer: (text ids, speaker embedding) → mel spectrogram."""

    def __init__(self, config: TacotronConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or TacotronConfig()
        self.encoder = Encoder(c)
        self.encoder_proj = nn.Linear(
            c.encoder_dims + c.speaker_embedding_size, c.decoder_dims, bias=False
        )
        self.decoder = Decoder(c)
        self.postnet = CBHG(c.postnet_k, c.n_mels, c.postnet_dims, c.postnet_dims, c.num_highways)
        self.post_proj = nn.Linear(c.postnet_dims, c.n_mels, bias=False)
        # Training bookkeeping that RTVC stores in the state dict; kept for strict loading.
        self.register_buffer("step", torch.zeros(1, dtype=torch.long))
        self.register_buffer("stop_threshold", torch.tensor(c.stop_threshold, dtype=torch.float32))
        for p in self.parameters():  # RTVC's initialisation (matters only for untrained use)
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    @property
    def r(self) -> int:
        """Frames per decoder step, as stored in the checkpoint."""
        return int(self.decoder.r)

    def initial_state(self, memory: torch.Tensor) -> DecoderState:
        """All-zero decoder state for a batch of encoder memories (B, n, 512)."""
        c, (batch, n, memory_dims) = self.config, memory.shape

        def zeros(*shape: int) -> torch.Tensor:
            return memory.new_zeros(*shape)

        return DecoderState(
            attn_hidden=zeros(batch, c.decoder_dims),
            rnn1=(zeros(batch, c.lstm_dims), zeros(batch, c.lstm_dims)),
            rnn2=(zeros(batch, c.lstm_dims), zeros(batch, c.lstm_dims)),
            context=zeros(batch, memory_dims),
            cumulative=zeros(batch, n),
        )

    def forward(
        self,
        text_ids: torch.Tensor,
        mels: torch.Tensor,
        speaker_embedding: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher-forced pass for training, as RTVC's `Tacotron.forward(x, m, embed)`.

        text_ids (B, n) padded with 0, target mels (B, n_mels, T), embeddings (B, 256) →
        decoder mels (B, n_mels, T), postnet mels (B, n_mels, T), attention (B, steps, n) and
        stop probabilities (B, T) (each step's value repeated for its r frames). Each step is
        fed the last *target* frame of the previous step. RTVC's zoneout is not applied.
        """
        batch, _, total = mels.shape
        r = self.r
        memory = self.encoder(text_ids, speaker_embedding, generator)
        keys = self.encoder_proj(memory)
        state = self.initial_state(memory)
        frame = memory.new_zeros(batch, self.config.n_mels)  # the <GO> frame
        frames, stops, alignments = [], [], []
        for start in range(0, total, r):
            if start > 0:
                frame = mels[:, :, start - 1]
            before = state.cumulative
            step_frames, stop, state = self.decoder(memory, keys, text_ids, frame, state, generator)
            frames.append(step_frames)
            stops.append(stop.expand(-1, r))
            alignments.append(state.cumulative - before)  # this step's attention weights
        mel_out = torch.cat(frames, dim=2)[:, :, :total]
        stop_out = torch.cat(stops, dim=1)[:, :total]
        attention = torch.stack(alignments, dim=1)
        post_out = self.post_proj(self.postnet(mel_out)).transpose(1, 2)
        return mel_out, post_out, attention, stop_out

    @torch.inference_mode()
    def generate(
        self,
        text_ids: torch.Tensor | list[int],
        speaker_embedding: torch.Tensor,
        max_frames: int = 2000,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decode one utterance: (n,) ids and a (256,) embedding → mel (n_mels, T) in [-4, 4].

        Decoding ends when the stop token's probability passes 0.5 (in a step that starts
        after `stop_after_frame`) or after `max_frames` frames; trailing frames quieter than
        `stop_threshold` in every band are then cut, as RTVC does. At least one frame is
        always returned.
        """
        if self.training:
            raise RuntimeError("call .eval() before generate(): batch norm needs its statistics")
        device = self.post_proj.weight.device
        ids = torch.as_tensor(text_ids, dtype=torch.long, device=device).reshape(1, -1)
        speaker = speaker_embedding.to(device, torch.float32).reshape(1, -1)
        if ids.size(1) == 0:
            raise ValueError("generate() needs at least one text id")

        memory = self.encoder(ids, speaker, generator)
        keys = self.encoder_proj(memory)  # projected once, not at every decoder step
        state = self.initial_state(memory)
        frame = memory.new_zeros(1, self.config.n_mels)  # the <GO> frame
        chunks: list[torch.Tensor] = []
        produced = 0
        while produced < max_frames:
            frames, stop, state = self.decoder(memory, keys, ids, frame, state, generator)
            chunks.append(frames)
            start, produced = produced, produced + frames.size(2)
            frame = frames[:, :, -1]
            if start > self.config.stop_after_frame and bool((stop > 0.5).all()):
                break

        mel = self.postnet(torch.cat(chunks, dim=2))  # (1, T, postnet_dims)
        mel = self.post_proj(mel).transpose(1, 2)[0]  # (n_mels, T)
        # Targets were clipped to ±max_abs_value in training; anything outside is model error.
        limit = self.config.audio.max_abs_value
        mel = mel.clamp(-limit, limit)
        loud = (mel.max(dim=0).values >= self.stop_threshold).nonzero()
        end = int(loud[-1]) + 1 if len(loud) else 1
        return mel[:, :end].float()
