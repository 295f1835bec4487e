"""Kokoro inside a sentence, streamed: prosody once, then the decoder window by window.

Kokoro's decoder is convolutional, so a window of decoder frames can be decoded on its own
if it carries enough neighbouring frames (context) for the receptive field; only the
samples of the window itself are kept, and neighbours are cross-faded over a few
milliseconds at each seam. Two things are global over the sentence and are therefore
computed once, before the first window:

- the text encoder, the durations, F0 and energy (`predict_prosody`, plus any `ProsodyEdit`);
- the harmonic source: its phase is a running sum of F0 from the start of the sentence, so
  it is made for the whole sentence and each window takes its slice of the source's STFT.

What cannot match the whole-sentence decode exactly: every AdaIN layer normalises over the
frames it sees (instance norm), so a window's statistics come from its own frames plus
context rather than the whole sentence. That lost words, so the decoder's cheap frame-rate
blocks (encode + 4 decode blocks) also run once over the whole sentence (`SentencePlan.hidden`)
and only the generator is windowed; its norms see the window pooled with every frame
decoded before it (`RunningStats`: the later windows' statistics approach the sentence's;
`benchmarks/streaming_norm_oracle.md`, `streaming_fidelity_frame_rate.md`,
`streaming_fidelity_running.md`).
`benchmarks/streaming.md` measures what the windows cost (log-mel distance, Whisper's words,
the largest sample jump at a seam).

Receptive field (measured by perturbing one decoder frame and finding where the output
moves: `benchmarks/streaming.md`): above 1e-3 of the peak the change stays within ±10
frames (±0.25 s); a tail to the right stays below 4e-4 of the peak (about -70 dB).
`StreamConfig.context_frames` (12, 0.3 s) covers the first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias
from torch import Tensor, nn

from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro.engine import (
    SAMPLE_RATE,
    KokoroEngine,
    load_vocab,
    token_ids,
)
from deepfake_studio.synthesizer.kokoro.model import (
    AdaIN1d,
    AdainResBlock,
    Decoder,
    KokoroModel,
    SnakeResBlock,
    snake,
)
from deepfake_studio.synthesizer.kokoro.torch_path import ProsodyEdit, TorchKokoro, text_stage
from deepfake_studio.synthesizer.languages import DEFAULT_LANGUAGE

FRAME_SAMPLES = 600  # 24 kHz samples per aligned decoder frame (40 frames per second)
FRAMES_PER_SECOND = 40
SOURCE_FRAMES_PER_FRAME = 120  # source STFT frames (hop 5) per aligned decoder frame


@dataclass(frozen=True)
class StreamConfig:
    """How a sentence is cut into decoder windows (frames are 25 ms)."""

    # 0.4 s, then each window 1.5 × the one before. On 2 idle AMD EPYC cores the first audio
    # came after 0.52 / 0.47 s (one sentence / long text) with at most 0.01 s of stall, against
    # 0.57 / 0.52 s and 0.07 / 0.04 s of stall with 0.5 s and 2 ×; 0.3 s first windows stalled
    # 0.1 s or more (the next window was not ready in time): benchmarks/streaming_windows.md.
    first_window_frames: int = 16
    growth: float = 1.5
    max_window_frames: int = 400  # 10 s
    context_frames: int = 12  # each side, 0.3 s: the convolutions' receptive field
    crossfade_samples: int = 480  # 20 ms at each seam (inside the context)
    min_last_window_frames: int = 20  # a shorter tail is merged into the window before it
    # A later sentence of a stream may start with a longer window: the audio already sent
    # plays while it is decoded. Its first window is as long as that audio covers if the
    # decoder ran at this real-time factor (a safe bound: 0.26-0.45 measured on 2 idle Xeon
    # cores); 0 starts every sentence with `first_window_frames`. Fewer windows cost less
    # context, and a sentence in one window is decoded whole, exactly as `render` does.
    planning_rtf: float = 0.5
    # AdaIN statistics of the first window pooled with probes over the rest of the sentence.
    # Off by default: on 3 sentences they moved the log-mel distance to the whole decode only
    # from 0.33/0.28/0.31 to 0.29/0.24/0.31, and 6 probes made the first window's decode about
    # four times longer (benchmarks/streaming.md): first audio matters more.
    probe_fraction: float = 0.0  # share of the rest of the sentence the probes cover
    probe_frames: int = 8  # counted frames per probe
    probe_margin_frames: int = 4  # uncounted context each side of a probe
    max_probes: int = 8
    # The decoder's frame-rate blocks (10 of its AdaIN norms) run over the whole sentence
    # before the first window, so only the generator is windowed (`with_frame_rate_blocks`).
    # (Running them only after the first window was sent kept 0.03-0.06 s of first audio but
    # lost words: WER 15.8 vs 15.0 % on 40 clips, benchmarks/streaming_fidelity_frame_rate.md.)
    whole_sentence_frame_rate: bool = True
    # The generator's AdaIN statistics pooled over the windows decoded so far (`RunningStats`;
    # with `whole_sentence_frame_rate` before the first window). On 120 clips: Whisper-base
    # WER 9.2 % vs 10.3 % with each window's own (whole sentences 8.8 %), log-mel distance to
    # the whole decode 0.23 vs 0.29; first audio and RTF unchanged within noise
    # (benchmarks/streaming_fidelity_running.md, streaming_running_time.md).
    generator_running_stats: bool = True
    # The first sentence of a stream starts this many frames (0.1 s) before its speech: the
    # silence Kokoro puts before the first word (10-14 frames, 0.25-0.35 s, on 4 sentences ×
    # 2 packs) filled most of the 0.4 s first window, so the first word came with the second.
    # Where the speech begins is read from the predicted energy (`speech_start_frame`), before
    # any decoding. Later sentences keep theirs: the audio already sent covers them, and it
    # is part of the pause between sentences. None: every sentence from its first frame.
    lead_in_frames: int | None = 4
    # Context to the left of such a first window: all of it (12 frames, the silence) cost
    # 0.1 s of first audio; none moved the log-mel distance to the whole decode from
    # 0.22/0.29/0.23 (3 sentences, the whole lead-in streamed) to 0.20/0.40/0.21; 4 frames:
    # 0.17/0.32/0.17 (full context 0.16/0.30/0.17), AMD EPYC, scratch measurement.
    lead_in_context_frames: int = 4

    def __post_init__(self) -> None:
        if self.first_window_frames < 1 or self.max_window_frames < 1 or self.growth < 1:
            raise ValueError("windows need at least one frame")
        if self.context_frames < 0 or self.crossfade_samples < 0 or self.lead_in_context_frames < 0:
            raise ValueError("context and cross-fade cannot be negative")
        if self.crossfade_samples > self.context_frames * FRAME_SAMPLES:
            raise ValueError("the cross-fade must fit inside the context")
        if self.lead_in_frames is not None and self.lead_in_frames < 0:
            raise ValueError("lead_in_frames cannot be negative")
        if not 0 <= self.planning_rtf < 1:
            raise ValueError("planning_rtf is a real-time factor in [0, 1)")

    def first_window(self, sent_seconds: float) -> int:
        """Frames of a sentence's first window when `sent_seconds` of the stream's audio were
        sent before it: what that audio covers at `planning_rtf`, less the window's context,
        and never less than `first_window_frames`."""
        if self.planning_rtf <= 0 or sent_seconds <= 0:
            return self.first_window_frames
        slack_frames = sent_seconds * FRAMES_PER_SECOND * (1 - self.planning_rtf)
        covered = int(slack_frames / self.planning_rtf) - 2 * self.context_frames
        return max(self.first_window_frames, covered)


def window_cuts(frames: int, config: StreamConfig, first: int | None = None) -> list[int]:
    """Frame indices where windows start and end: [0, c1, ..., frames]. The first window has
    `first` frames (default `config.first_window_frames`); the next grow by `growth` (each
    one is decoded while the audio before it plays) up to `max_window_frames`."""
    cuts = [0]
    size = float(first or config.first_window_frames)
    while frames - cuts[-1] > size:
        cuts.append(cuts[-1] + int(size))
        size = min(size * config.growth, config.max_window_frames)
    if len(cuts) > 1 and frames - cuts[-1] < config.min_last_window_frames:
        cuts.pop()  # a tiny tail would pay a whole context for little audio
    cuts.append(frames)
    return cuts


class Norms:
    """Which positions each AdaIN layer takes its instance-norm statistics over: here every
    position, with the model's own AdaIN (one fused instance norm; a sentence's decode took
    1.16 s against 1.61 s with statistics counted position by position,
    benchmarks/streaming_bf16_text.md). `CountedNorms` and `RunningStats` take them over
    other positions with the same call."""

    def __call__(self, norm: AdaIN1d, x: Tensor, style: Tensor) -> Tensor:
        return norm(x, style)


def _adain(norm: AdaIN1d, x32: Tensor, style: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    gamma, beta = norm.fc(style).unsqueeze(-1).chunk(2, dim=1)
    return (1 + gamma) * (x32 - mean) * torch.rsqrt(var.clamp_min(0) + 1e-5) + beta


class CountedNorms(Norms):
    """Statistics over the positions `counted` marks (bool per input frame, mapped to each
    layer's time resolution): the first window can be decoded beside probes from the rest of
    the sentence (`StreamConfig.probe_fraction`), its statistics pooling the window with the
    probes' middles, closer to the whole sentence's than the window's own (a window starting
    in silence has an unrepresentative mean)."""

    def __init__(self, counted: Tensor) -> None:
        self.counted = counted

    def __call__(self, norm: AdaIN1d, x: Tensor, style: Tensor) -> Tensor:
        x32 = x.float()
        length = x.shape[-1]
        index = torch.arange(length) * len(self.counted) // length
        chosen = x32[..., self.counted[index]]
        mean = chosen.mean(-1, keepdim=True)
        return _adain(norm, x32, style, mean, chosen.var(-1, unbiased=False, keepdim=True))


class RunningStats(Norms):
    """AdaIN statistics pooled over the sentence decoded so far.

    A later window normalises with the sums of every earlier window's own frames (each frame
    once) plus its own positions: closer to the whole sentence's statistics than its own
    alone, at no extra decoding. `window(lo, hi, keep_lo, keep_hi)` says which frames the next
    call covers and which of them it adds to the sums."""

    def __init__(self) -> None:
        self._sums: dict[int, tuple[Tensor, Tensor, int]] = {}
        self._span = (0, 1, 0, 0)

    def window(self, lo: int, hi: int, keep_lo: int, keep_hi: int) -> None:
        self._span = (lo, hi, keep_lo, keep_hi)

    def __call__(self, norm: AdaIN1d, x: Tensor, style: Tensor) -> Tensor:
        x32 = x.float()
        squared = x32.square()
        total, squares, count = x32.sum(-1), squared.sum(-1), x32.shape[-1]
        before = self._sums.get(id(norm))
        if before is not None:
            total, squares, count = total + before[0], squares + before[1], count + before[2]
        mean = (total / count).unsqueeze(-1)
        var = (squares / count).unsqueeze(-1) - mean.square()
        lo, hi, keep_lo, keep_hi = self._span
        length = x32.shape[-1]
        a = (keep_lo - lo) * length // (hi - lo)
        b = (keep_hi - lo) * length // (hi - lo)
        old = before or (0.0, 0.0, 0)
        self._sums[id(norm)] = (
            old[0] + x32[..., a:b].sum(-1),
            old[1] + squared[..., a:b].sum(-1),
            old[2] + (b - a),
        )
        return _adain(norm, x32, style, mean, var)


def _adain_block(block: AdainResBlock, x: Tensor, style: Tensor, norms: Norms) -> Tensor:
    """`AdainResBlock.forward` with the statistics from `norms`."""
    h = F.leaky_relu(norms(block.norm1, x, style), 0.2)
    if block.pool is not None:
        h = block.pool(h)
    h = block.conv1(h)
    h = block.conv2(F.leaky_relu(norms(block.norm2, h, style), 0.2))
    shortcut = F.interpolate(x, scale_factor=2.0, mode="nearest") if block.upsample else x
    if block.conv1x1 is not None:
        shortcut = block.conv1x1(shortcut)
    return (h + shortcut) / math.sqrt(2.0)


def _snake_block(block: SnakeResBlock, x: Tensor, style: Tensor, norms: Norms) -> Tensor:
    """`SnakeResBlock.forward` with the statistics from `norms`."""
    for c1, c2, n1, n2, a1, a2 in zip(
        block.convs1,
        block.convs2,
        block.adain1,
        block.adain2,
        block.alpha1,
        block.alpha2,
        strict=True,
    ):
        h = c1(snake(norms(n1, x, style), a1))
        x = x + c2(snake(norms(n2, h, style), a2))
    return x


def _frame_rate_blocks(
    dec: Decoder, aligned: Tensor, f0: Tensor, energy: Tensor, style: Tensor, norms: Norms
) -> Tensor:
    """The decoder's encode and decode blocks (AdaIN residual blocks at the frame rate, the
    last one upsampling to two positions per frame): what the generator takes."""
    f0_down = dec.F0_conv(f0[:, None])
    energy_down = dec.N_conv(energy[:, None])
    x = _adain_block(dec.encode, torch.cat([aligned, f0_down, energy_down], dim=1), style, norms)
    text_skip = dec.asr_res(aligned)
    for block in dec.decode:
        x = _adain_block(
            block, torch.cat([x, text_skip, f0_down, energy_down], dim=1), style, norms
        )
    return x


class _FrameRateStage(nn.Module):
    """`_frame_rate_blocks` over a whole sentence with the model's own norms; wraps the
    decoder so `functional_call` can swap in a voice's adapted weights (`decoder.<name>`)."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, aligned: Tensor, f0: Tensor, energy: Tensor, style: Tensor) -> Tensor:
        return _frame_rate_blocks(self.decoder, aligned, f0, energy, style, Norms())


class _WindowDecoder(nn.Module):
    """`Decoder.forward` on a stretch of frames, with the harmonic source's spectrum given
    (its phase needs the whole sentence) and the AdaIN statistics from `Norms`. With
    `hidden` (the frame-rate blocks' output for these frames, computed over the whole
    sentence) only the generator runs here. Wraps the decoder so `functional_call` can swap
    in a voice's adapted weights (`decoder.<name>`)."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(
        self,
        aligned: Tensor,
        f0: Tensor,
        energy: Tensor,
        style: Tensor,
        source: Tensor,
        norms: Norms,
        hidden: Tensor | None = None,
    ) -> Tensor:
        dec = self.decoder
        x = hidden
        if x is None:
            x = _frame_rate_blocks(dec, aligned, f0, energy, style, norms)
        gen = dec.generator
        for i, up in enumerate(gen.ups):
            x = up(F.leaky_relu(x, 0.1))
            if i == len(gen.ups) - 1:
                x = F.pad(x, (1, 0), mode="reflect")
            noise = gen.noise_convs[i](source)
            x = x + _snake_block(gen.noise_res[i], noise, style, norms)
            blocks = gen.resblocks[i * gen.n_kernels : (i + 1) * gen.n_kernels]
            x = torch.stack([_snake_block(b, x, style, norms) for b in blocks]).mean(0)
        x = gen.conv_post(F.leaky_relu(x, 0.01))
        bins = gen.n_fft // 2 + 1
        return gen.istft(torch.exp(x[:, :bins]), torch.sin(x[:, bins:]))


@dataclass
class SentencePlan:
    """What is computed once per sentence before its windows are decoded."""

    aligned: Tensor  # [1, 512, frames]
    f0: Tensor  # [1, 2·frames]
    energy: Tensor  # [1, 2·frames]
    decoder_style: Tensor  # [1, 128]
    source: Tensor  # [1, 22, 120·frames + 1] the harmonic source's STFT
    # The decoder's frame-rate blocks over the whole sentence [1, 512, 2·frames]
    # (`with_frame_rate_blocks`); None: each window computes them over its own frames.
    hidden: Tensor | None = None

    @property
    def frames(self) -> int:
        return int(self.aligned.shape[-1])


def plan_sentence(
    model: KokoroModel,
    ids: list[int],
    style_row: np.ndarray,
    speed: float,
    edit: ProsodyEdit | None,
    bfloat16: bool,
) -> SentencePlan:
    """Text encoding, prosody (with `edit`), alignment (`text_stage`, as `render` does them)
    and the harmonic source."""
    with torch.inference_mode():
        text = text_stage(model, ids, style_row, speed, edit, bfloat16)
        f0, energy = text.prosody.f0, text.prosody.energy
        source = model.decoder.generator.source_spectrum(f0)
    return SentencePlan(text.aligned, f0, energy, text.decoder_style, source)


def with_frame_rate_blocks(
    model: KokoroModel, plan: SentencePlan, decoder_params: dict[str, Tensor], bfloat16: bool
) -> SentencePlan:
    """`plan` with the decoder's frame-rate blocks run over the whole sentence once.

    Why: every AdaIN layer normalises over the positions it sees, and a window's own
    statistics lost words (Whisper-base WER 12.0 % streamed vs 8.4 % whole on 80 clips; the
    sentence's statistics in these 10 norms alone: 9.9 %, benchmarks/streaming_norm_oracle.md).
    These blocks are the decoder's cheap part: 87 ms for a 7 s sentence against 1.8 s for
    the whole decode (AMD EPYC, 2 idle cores)."""
    stage = _FrameRateStage(model.decoder)
    params = {f"decoder.{name}": value for name, value in decoder_params.items()}
    with (
        torch.inference_mode(),
        torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16),
    ):
        hidden = torch.func.functional_call(
            stage, params, (plan.aligned, plan.f0, plan.energy, plan.decoder_style), strict=False
        )
    return replace(plan, hidden=hidden)


def _segments_input(
    plan: SentencePlan, segments: list[tuple[int, int]]
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The decoder's inputs for frame ranges of the sentence laid end to end."""
    aligned = torch.cat([plan.aligned[..., lo:hi] for lo, hi in segments], dim=-1)
    f0 = torch.cat([plan.f0[..., 2 * lo : 2 * hi] for lo, hi in segments], dim=-1)
    energy = torch.cat([plan.energy[..., 2 * lo : 2 * hi] for lo, hi in segments], dim=-1)
    per = SOURCE_FRAMES_PER_FRAME
    parts = [plan.source[..., lo * per : hi * per] for lo, hi in segments]
    last = segments[-1][1] * per
    parts.append(plan.source[..., last : last + 1])  # the STFT has one frame more than 120·F
    return aligned, f0, energy, torch.cat(parts, dim=-1)


def decode_segments(
    model: KokoroModel,
    plan: SentencePlan,
    segments: list[tuple[int, int]],
    decoder_params: dict[str, Tensor],
    norms: Norms,
    bfloat16: bool,
) -> np.ndarray:
    """The decoder on frame ranges of the sentence laid end to end (600 samples per frame).

    Convolutions mix neighbouring segments near the joins: callers keep context there."""
    wrapper = _WindowDecoder(model.decoder)
    params = {f"decoder.{name}": value for name, value in decoder_params.items()}
    aligned, f0, energy, source = _segments_input(plan, segments)
    hidden = None
    if plan.hidden is not None:
        hidden = torch.cat([plan.hidden[..., 2 * lo : 2 * hi] for lo, hi in segments], dim=-1)
    inputs = (aligned, f0, energy, plan.decoder_style, source, norms, hidden)
    with (
        torch.inference_mode(),
        torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16),
    ):
        audio = torch.func.functional_call(wrapper, params, inputs, strict=False)
    return audio[0].float().numpy()


def probe_segments(
    start: int, frames: int, config: StreamConfig
) -> list[tuple[int, int, int, int]]:
    """Short stretches spread over frames [start, frames) whose middles count towards the
    AdaIN statistics: (lo, hi, counted_lo, counted_hi)."""
    rest = frames - start
    if rest <= 0 or config.probe_fraction <= 0:
        return []
    n = min(config.max_probes, math.ceil(rest * config.probe_fraction / config.probe_frames))
    probes = []
    for k in range(n):
        centre = start + (k + 0.5) * rest / n
        c_lo = max(start, round(centre - config.probe_frames / 2))
        c_hi = min(frames, c_lo + config.probe_frames)
        lo = max(0, c_lo - config.probe_margin_frames)
        hi = min(frames, c_hi + config.probe_margin_frames)
        probes.append((lo, hi, c_lo, c_hi))
    return probes


def speech_start_frame(energy: Tensor) -> int:
    """The first aligned frame whose predicted energy ([1, 2·frames]) is past halfway from
    the sentence's first frame (the silence before it) to its median: where the audible
    speech begins (within a frame of the decoded level's rise past -40 dB of its peak, on
    4 sentences × 2 packs)."""
    per_frame = energy[0, ::2]
    threshold = (per_frame[0] + per_frame.median()) / 2
    above = torch.nonzero(per_frame > threshold)
    return int(above[0, 0]) if len(above) else 0


def stream_windows(
    decode: Callable[[int, int], np.ndarray],
    frames: int,
    config: StreamConfig,
    post: Callable[[np.ndarray], np.ndarray] | None = None,
    first: int | None = None,
    start: int = 0,
) -> Iterator[np.ndarray]:
    """Decode a sentence of `frames` window by window (`window_cuts`, from frame `start`: the
    frames before it are only context); yield its samples in order.

    `decode(lo, hi)` returns the 600·(hi-lo) samples of frames [lo, hi); `post` (e.g. the
    emotion's voice-quality filter) runs on each decoded span with its context, before the
    context is cut away. Each yielded piece ends `crossfade_samples / 2` before the seam;
    the rest of the seam is held until the next window is decoded and faded into it.
    """
    cuts = [start + cut for cut in window_cuts(frames - start, config, first)]
    half = config.crossfade_samples // 2
    held = np.zeros(0, np.float32)  # the previous window's tail beyond the seam's fade start
    for i in range(len(cuts) - 1):
        begin, end = cuts[i], cuts[i + 1]
        context = config.context_frames
        if i == 0 and begin > 0 and len(cuts) > 2:  # a first window after a lead-in
            context = config.lead_in_context_frames
        lo = max(0, begin - context)
        hi = min(frames, end + config.context_frames)
        span = decode(lo, hi)
        if post is not None:
            span = post(span)
        # Keep [begin - half, end + half) of this window (the first from `begin`).
        keep_from = max(0, begin * FRAME_SAMPLES - (half if i else 0)) - lo * FRAME_SAMPLES
        last = i == len(cuts) - 2
        keep_to = (end * FRAME_SAMPLES + (0 if last else half)) - lo * FRAME_SAMPLES
        piece = span[keep_from:keep_to].astype(np.float32)
        if len(held):
            n = len(held)
            fade_in = (np.arange(n, dtype=np.float32) + 0.5) / n
            piece = piece.copy()
            piece[:n] = held * (1.0 - fade_in) + piece[:n] * fade_in
        if last:
            yield piece
        else:
            cut = len(piece) - 2 * half
            held = piece[cut:]
            yield piece[:cut]


def render_stream(
    torch_kokoro: TorchKokoro,
    ids: list[int],
    style_row: np.ndarray,
    speed: float,
    decoder_params: dict[str, Tensor],
    edit: ProsodyEdit | None = None,
    config: StreamConfig | None = None,
    post: Callable[[np.ndarray], np.ndarray] | None = None,
    sent_seconds: float = 0.0,
) -> Iterator[np.ndarray]:
    """`TorchKokoro.render` as a stream of pieces (their concatenation is the sentence);
    `sent_seconds` of the stream were sent before it (`StreamConfig.first_window`); with none,
    the stream starts `StreamConfig.lead_in_frames` before the speech (the silence before
    that is not decoded for itself nor sent).

    The decoder's frame-rate blocks run over the whole sentence first; in the generator each
    window normalises over its own frames pooled with the frames decoded before it
    (`RunningStats`), or, without `config.generator_running_stats`, over its own alone (with
    `config.probe_fraction` > 0 the first window then also pools probes spread over the rest
    of the sentence). A sentence of one window is decoded whole, exactly as `render` does.
    """
    config = config or StreamConfig()
    model = torch_kokoro.model
    plan = plan_sentence(model, ids, style_row, speed, edit, torch_kokoro.text_bfloat16)
    if config.whole_sentence_frame_rate:
        plan = with_frame_rate_blocks(model, plan, decoder_params, torch_kokoro.bfloat16)
    frames = plan.frames
    first_done = False
    running = RunningStats() if config.generator_running_stats and plan.hidden is not None else None
    counted_to = 0  # frames [0, counted_to) are in `running`'s sums

    def decode(lo: int, hi: int) -> np.ndarray:
        nonlocal first_done, counted_to
        if lo == 0 and hi == frames:  # the whole sentence in one window: as `render` does
            return decode_segments(
                model, plan, [(lo, hi)], decoder_params, Norms(), torch_kokoro.bfloat16
            )
        if running is not None:
            keep_hi = hi if hi == frames else hi - config.context_frames
            running.window(lo, hi, max(lo, counted_to), max(keep_hi, counted_to))
            counted_to = max(keep_hi, counted_to)
            return decode_segments(
                model, plan, [(lo, hi)], decoder_params, running, torch_kokoro.bfloat16
            )
        if first_done:
            return decode_segments(
                model, plan, [(lo, hi)], decoder_params, Norms(), torch_kokoro.bfloat16
            )
        first_done = True
        margin = config.probe_margin_frames if hi < frames else 0
        first = torch.ones(hi - lo, dtype=torch.bool)
        first[len(first) - margin :] = False
        segments, masks = [(lo, hi)], [first]
        for p_lo, p_hi, c_lo, c_hi in probe_segments(hi, frames, config):
            mask = torch.zeros(p_hi - p_lo, dtype=torch.bool)
            mask[c_lo - p_lo : c_hi - p_lo] = True
            segments.append((p_lo, p_hi))
            masks.append(mask)
        norms = CountedNorms(torch.cat(masks)) if len(segments) > 1 else Norms()
        audio = decode_segments(model, plan, segments, decoder_params, norms, torch_kokoro.bfloat16)
        return audio[: (hi - lo) * FRAME_SAMPLES]

    start = 0
    if sent_seconds <= 0 and config.lead_in_frames is not None:
        start = max(0, speech_start_frame(plan.energy) - config.lead_in_frames)
    first = config.first_window(sent_seconds)
    yield from stream_windows(decode, frames, config, post, first, start)


class KokoroStreamer:
    """A Kokoro engine's speech as a stream of pieces, every voice through the PyTorch path.

    Why PyTorch for every voice (the ONNX is sealed: it cannot stop after the prosody or
    decode a window): on CPUs with bfloat16 the PyTorch decoder is also faster than the int8
    ONNX (RTF 0.26 vs 0.39-0.47 on 2 Xeon cores, benchmarks/kokoro_torch.md), and a first
    window from one model followed by the rest from the other would seam two different
    renderings (their durations can differ by a frame). What it costs: the float model's
    memory (about 300 MB more than the ONNX alone) and a load of the cached state on the first
    stream (0.4 s; `Studio.warm_streaming` does it ahead).
    """

    def __init__(self, engine: KokoroEngine, config: StreamConfig | None = None) -> None:
        self.engine = engine
        self.config = config or StreamConfig()
        self._vocab = load_vocab()

    def stream(
        self,
        text: str,
        conditioning: Conditioning,
        speed: float = 1.0,
        language: str = DEFAULT_LANGUAGE,
        sent_seconds: float = 0.0,
    ) -> Iterator[np.ndarray]:
        """`KokoroEngine.synthesize(text, ...)` as pieces; joined, they are that utterance
        (up to the windows' AdaIN statistics, `benchmarks/streaming.md`). `sent_seconds`:
        audio of the same stream sent before this text (later windows can be longer)."""
        u = self.engine.prepare(text, conditioning, speed, language)
        post: Callable[[np.ndarray], np.ndarray] | None = None
        if u.emotion is not None:
            post = partial(u.emotion.filter, sample_rate=SAMPLE_RATE)
        torch_kokoro = self.engine.torch_path
        params = torch_kokoro.adapted_params(u.conditioning)
        edit = ProsodyEdit.from_info(u.conditioning.info)
        for chunk in u.chunks:
            ids = token_ids(chunk, self._vocab)
            if ids:
                row = u.style[len(ids) - 1]
                for piece in render_stream(
                    torch_kokoro, ids, row, u.rate, params, edit, self.config, post, sent_seconds
                ):
                    sent_seconds += len(piece) / SAMPLE_RATE
                    yield piece
