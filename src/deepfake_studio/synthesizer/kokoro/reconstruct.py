"""Style fitted by reconstruction: make Kokoro say the reference's own words as the speaker did.

The `standard` enrollment quality. Unlike the black-box search of `fit.py`, this fit sees the
reference sample by sample through the differentiable PyTorch Kokoro (`model.py`):

1. **Words.** The reference's text is the caller's transcript, else Whisper-base's. It becomes
   one Kokoro token sequence (≤ 510 phonemes).
2. **Start.** A bundled pack by the reference's pitch (median below 165 Hz: the male pack,
   else the female packs), the nearest of those by DTW log-mel distance between its speech of
   the text and the reference.
3. **Timing.** DTW on CMVN'd MFCCs between the start pack's speech of the text and the
   reference, one frame per 600 samples at 24 kHz (= one Kokoro duration frame), maps each
   token's frames onto the reference: forced durations that sum to the reference's length.
4. **Style by gradient** (Adam on the 256-d style vector). Each step: the prosody predictor
   on the forced durations, scored by log-F0 L1 on the reference's voiced frames (pYIN) and a
   duration L1 (×0.1) — this moves the prosody half; the decoder fed the reference's own F0
   (and the predicted energy) on a random crop, scored by a two-resolution log-mel L1 against
   the same crop of the reference (both clamped per band at the reference's noise floor,
   `StyleFitConfig.noise_floor_percentile`, on by default) — this moves the decoder half.

The result is the start table plus the learned delta on every row: a normal [510, 256] style
table, so the int8 ONNX engine speaks it.

5. **Guard** (`keep_the_closer`): the project's GE2E encoder compares the start pack and the fit
   on a sentence the fit never saw; if the fit is clearly further from the reference (a very
   short or noisy reference can pull the style off the speaker), the start pack is kept and
   the voice's info says so. The independent judge of `eval clone` never takes part.

Crops come from one `numpy` generator and torch is seeded: a fit is repeatable for a seed (on
one thread; several threads may reorder float sums).
A probe of this method on four shared speakers is in `../shared/FACTS.md`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from deepfake_studio.audio import Audio, resample
from deepfake_studio.errors import EngineError, TextError
from deepfake_studio.synthesizer.base import Conditioning, ProgressCallback
from deepfake_studio.synthesizer.kokoro.fit import HOLDOUT_SENTENCE, median_pitch
from deepfake_studio.synthesizer.languages import DEFAULT_LANGUAGE, FROM_WHISPER, whisper_code

if TYPE_CHECKING:
    from deepfake_studio.encoder import SpeakerEncoder
    from deepfake_studio.evaluation.asr import Transcriber
    from deepfake_studio.synthesizer.kokoro.model import KokoroModel

RATE = 24_000
FRAME = 600  # samples per Kokoro duration frame; F0/energy frames are half of it
MALE_BELOW_SEMITONES = 12 * np.log2(165 / 100)  # 165 Hz, as `median_pitch` measures (re 100 Hz)
MAX_TOKENS = 510


@dataclass(frozen=True)
class StyleFitConfig:
    """Settings of the `standard` enrollment (gradient style fit); defaults as in the probe."""

    # The probe ran 60 steps on 2.5 s crops; half the steps on 2 s crops cost ~40 % of that
    # (measured in benchmarks/style_fit_dev.md).
    steps: int = 30
    learning_rate: float = 0.03
    crop_seconds: float = 2.0  # decoder crop per step (the decoder is the cost)
    duration_weight: float = 0.1
    f0_weight: float = 1.0
    # A longer reference is fitted in pieces of at most this long, cut at pauses: Kokoro reads
    # at most 510 phonemes (about 30 s of speech) in one utterance.
    segment_seconds: float = 30.0
    max_reference_seconds: float = 60.0  # the rest is not used (more adds time, not likeness)
    mfcc: int = 20  # alignment features
    # Per mel band, log-mels below the reference's noise floor (pauses, the hiss of a noisy
    # audiobook) are clamped to it on both sides, so the style is not pulled toward
    # reproducing the recording's noise. The floor: this percentile of the band's log-mels over
    # the reference plus `noise_floor_margin_db` (a noise band's frames scatter by a few dB
    # around its level). None: no floor. The judge's normalised similarity with it, without:
    # 3 dev speakers 0.538 / 0.397 (session 12, benchmarks/style_fit_noise_floor_dev.md), the
    # 8 test speakers 0.570 / 0.518 (style_fit_test_floor10.md). It was held back because the
    # bundled LJ reference's voice lost sentence-final words with it; that was mostly a cut
    # `Studio.speak` made before a long first sentence's last word (fixed in session 14). After
    # the fix, with the guard, 8 new sentences per voice (style_fit_floor_wer_dev.md): 4 dev
    # speakers 0.585 / 0.446, Whisper-base WER 2.9 / 4.8 %; the LJ voice 8.6 / 3.2 %.
    noise_floor_percentile: float | None = 10.0
    noise_floor_margin_db: float = 6.0


@dataclass
class Alignment:
    """The reference's text as Kokoro tokens, with per-token frames on the reference."""

    ids: list[int]  # without the 0 pads
    durations: np.ndarray  # [len(ids) + 2] int64 frames, ≥ 1, summing to `frames`
    frames: int  # reference length in duration frames (600 samples at 24 kHz)


# A reference is read as another language only when Whisper is this sure of it: on
# Mandarin-accented English (speechocean762) it said "zh" with 0.59-0.66 for 3 of 12 clips,
# on native Spanish, Japanese or Mandarin speech 0.98-0.99 (measured with Whisper-base).
OTHER_LANGUAGE_MIN_PROBABILITY = 0.75


def spoken_language(probabilities: dict[str, float]) -> str:
    """The Kokoro language of a reference from Whisper's language probabilities: the most
    likely language when it is sure enough, else English. EngineError when it is sure of a
    language Kokoro does not speak (its words could not be aligned to Kokoro's phonemes)."""
    code, probability = max(probabilities.items(), key=lambda item: item[1])
    if code == "en" or probability < OTHER_LANGUAGE_MIN_PROBABILITY:
        return DEFAULT_LANGUAGE
    if code not in FROM_WHISPER:
        raise EngineError(
            f"the reference sounds like language {code!r} (Whisper, p={probability:.2f}), "
            "which Kokoro does not speak: enroll it with --quality quick"
        )
    return FROM_WHISPER[code]


class TranscriberHolder:
    """Whisper-base, loaded on first use (only enrollments that fit a style need it). A
    `Studio` hands its own holder to its Kokoro engine, so consent checks and enrollments
    share one model in a process."""

    def __init__(self) -> None:
        self._model: Transcriber | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> Transcriber:
        if self._model is None:
            with self._lock:
                if self._model is None:  # another thread may have loaded it meanwhile
                    from deepfake_studio.evaluation.asr import Transcriber

                    self._model = Transcriber()
        return self._model

    def transcribe(self, audio: Audio, language: str = DEFAULT_LANGUAGE) -> str:
        return self.model.transcribe(audio.samples, audio.sample_rate, whisper_code(language))

    def language(self, audio: Audio) -> str:
        """The Kokoro language the reference is spoken in (`spoken_language`)."""
        return spoken_language(self.model.language_probabilities(audio.samples, audio.sample_rate))


# ------------------------------------------------------------------------------------------
# Features
# ------------------------------------------------------------------------------------------


def _mfcc_cmvn(samples: np.ndarray, n_mfcc: int) -> np.ndarray:
    """[frames, n_mfcc] MFCCs every 600 samples at 24 kHz, mean/variance normalised."""
    import librosa

    m = librosa.feature.mfcc(
        y=samples.astype(np.float32), sr=RATE, n_mfcc=n_mfcc, n_fft=2048, hop_length=FRAME
    )
    m = (m - m.mean(axis=1, keepdims=True)) / (m.std(axis=1, keepdims=True) + 1e-5)
    return m.T


def _log_mel_np(samples: np.ndarray) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(
        y=samples.astype(np.float32), sr=RATE, n_fft=1024, hop_length=FRAME, n_mels=80, fmax=8000
    )
    return np.log(mel + 1e-5).T


def _dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[(i, j)] monotonic path from (0, 0) to the ends, Euclidean frame distance."""
    import librosa

    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
    return path[::-1]


def reference_f0(samples: np.ndarray, frames: int) -> np.ndarray:
    """pYIN F0 (Hz, 0 = unvoiced) of 24 kHz speech at Kokoro's F0 rate: 2 × `frames` values."""
    import librosa

    x16 = resample(Audio(samples, RATE), 16_000).samples.astype(np.float32)
    f0, voiced, _ = librosa.pyin(
        x16, fmin=50, fmax=550, sr=16_000, frame_length=1024, hop_length=200, center=True
    )
    f0 = np.where(voiced & np.isfinite(f0), f0, 0.0)
    n = 2 * frames
    if len(f0) < n:
        f0 = np.pad(f0, (0, n - len(f0)))
    return f0[:n].astype(np.float32)


class MultiResolutionLogMel(torch.nn.Module):
    """Log-mel L1 at two resolutions (1024/256, 80 mels; 512/128, 48 mels), 0-8 kHz."""

    def __init__(self) -> None:
        super().__init__()
        import librosa

        self.resolutions = ((1024, 256), (512, 128))
        for k, ((n_fft, _), mels) in enumerate(zip(self.resolutions, (80, 48), strict=True)):
            fb = librosa.filters.mel(sr=RATE, n_fft=n_fft, n_mels=mels, fmin=0, fmax=8000)
            self.register_buffer(f"fb{k}", torch.tensor(fb, dtype=torch.float32))
            self.register_buffer(f"win{k}", torch.hann_window(n_fft))

    def log_mels(self, wave: Tensor) -> list[Tensor]:
        out = []
        for k, (n_fft, hop) in enumerate(self.resolutions):
            spec = torch.stft(
                wave, n_fft, hop, window=getattr(self, f"win{k}"), return_complex=True
            ).abs()
            out.append(torch.log(getattr(self, f"fb{k}") @ spec**2 + 1e-5))
        return out

    def floors(self, reference: Tensor, percentile: float, margin_db: float) -> list[Tensor]:
        """Per resolution, [mels, 1]: each band's `percentile` of the reference's log-mels
        (natural log of power) raised by `margin_db`."""
        margin = margin_db * float(np.log(10.0)) / 10.0
        with torch.no_grad():
            return [
                torch.quantile(m[0], percentile / 100.0, dim=-1, keepdim=True) + margin
                for m in self.log_mels(reference[None])
            ]

    def forward(self, wave: Tensor, target: Tensor, floors: list[Tensor] | None = None) -> Tensor:
        pairs = zip(self.log_mels(wave), self.log_mels(target), strict=True)
        if floors is None:
            return sum((a - b).abs().mean() for a, b in pairs)  # type: ignore[return-value]
        return sum(
            (torch.maximum(a, f) - torch.maximum(b, f)).abs().mean()
            for (a, b), f in zip(pairs, floors, strict=True)
        )  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------
# Words, start pack, alignment
# ------------------------------------------------------------------------------------------


def reference_tokens(
    text: str, phonemize: Callable[[str], list[str]], vocab: dict[str, int]
) -> list[int]:
    """Kokoro ids of the reference text; a one-line TextError if there is nothing to align."""
    if not text or not text.strip():
        raise TextError("the reference text is empty: give the words spoken in the reference")
    phonemes = " ".join(phonemize(text))
    ids = [vocab[p] for p in phonemes if p in vocab]
    if not ids:
        raise TextError(f"the reference text {text[:40]!r} has no speakable words")
    if len(ids) > MAX_TOKENS:
        raise TextError(
            f"the reference text is {len(ids)} phonemes, Kokoro reads at most {MAX_TOKENS}: "
            "use a shorter reference (about 30 s)"
        )
    return ids


@torch.no_grad()
def speak_tokens(
    model: KokoroModel, ids: list[int], style: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Free-running PyTorch Kokoro: (24 kHz audio, durations [len(ids) + 2])."""
    tokens = torch.tensor([[0, *ids, 0]])
    row = torch.from_numpy(np.asarray(style, np.float32)).reshape(1, -1)
    features = model.encode_text(tokens)
    prosody = model.predict_prosody(features, row)
    audio = model.decode(model.align(features, prosody.durations), prosody.f0, prosody.energy, row)
    return audio[0].numpy(), prosody.durations.numpy()


def choose_start_pack(
    model: KokoroModel,
    packs: dict[str, np.ndarray],
    ids: list[int],
    reference24: np.ndarray,
    seeds: tuple[str, ...] = (),
) -> tuple[str, np.ndarray, np.ndarray]:
    """(pack name, its speech of the text, its durations): the pack nearest the reference.

    Gender first (median pitch below 165 Hz: `jm_*` packs), then the DTW log-mel distance.
    `seeds` name further tables of `packs` that always compete (the style encoder's guess).
    """
    pitch = median_pitch(reference24, RATE)
    male = pitch is not None and pitch < MALE_BELOW_SEMITONES
    names = sorted(n for n in packs if n.startswith("jm_" if male else "jf_")) or sorted(packs)
    names += [s for s in seeds if s not in names]
    ref_mel = _log_mel_np(reference24)
    best: tuple[float, str, np.ndarray, np.ndarray] | None = None
    for name in names:
        audio, durations = speak_tokens(model, ids, packs[name][len(ids) - 1])
        mel = _log_mel_np(audio)
        path = _dtw_path(mel, ref_mel)
        dist = float(np.mean(np.abs(mel[path[:, 0]] - ref_mel[path[:, 1]])))
        if best is None or dist < best[0]:
            best = (dist, name, audio, durations)
    assert best is not None
    return best[1], best[2], best[3]


def align_durations(
    synthetic: np.ndarray, durations: np.ndarray, reference24: np.ndarray, n_mfcc: int = 20
) -> np.ndarray:
    """Token durations on the reference: DTW maps each token's synthetic frames onto it.

    `synthetic` is Kokoro's speech of the text with `durations` (frames per token, pads
    included). The result has the same length, every entry ≥ 1, and sums to the reference's
    frame count (len(reference24) // 600).
    """
    frames = len(reference24) // FRAME
    n_tokens = len(durations)
    if frames < n_tokens:
        raise TextError(
            f"the reference ({frames * FRAME / RATE:.1f} s) is too short for its text "
            f"({n_tokens - 2} phonemes): check the reference text"
        )
    syn = _mfcc_cmvn(synthetic[: int(durations.sum()) * FRAME], n_mfcc)
    ref = _mfcc_cmvn(reference24[: frames * FRAME], n_mfcc)
    path = _dtw_path(syn, ref)
    # First reference frame matched to each synthetic frame (the path is monotonic).
    first_ref = np.full(len(syn), frames, dtype=np.int64)
    for i, j in path[::-1]:
        if i < len(first_ref):
            first_ref[i] = j
    starts_syn = np.concatenate([[0], np.cumsum(durations)[:-1]]).astype(np.int64)
    starts = first_ref[np.minimum(starts_syn, len(first_ref) - 1)]
    starts[0] = 0
    # Every token at least one frame, and room left for the tokens after it.
    for k in range(1, n_tokens):
        starts[k] = max(starts[k], starts[k - 1] + 1)
    for k in range(n_tokens - 1, 0, -1):
        starts[k] = min(starts[k], frames - (n_tokens - k))
        if k < n_tokens - 1:
            starts[k] = min(starts[k], starts[k + 1] - 1)
    out = np.diff(np.concatenate([starts, [frames]])).astype(np.int64)
    assert out.sum() == frames and out.min() >= 1, "alignment invariant broken"
    return out


# ------------------------------------------------------------------------------------------
# The fit
# ------------------------------------------------------------------------------------------


@dataclass
class StyleFitResult:
    style: np.ndarray  # (256,) fitted vector at the reference's token count
    start_row: np.ndarray  # (256,) the start pack's vector there
    start_pack: str
    losses: list[float]  # total loss per step
    alignment: Alignment  # of the first piece of the reference (`adapt.py` trains on it)
    seconds: float
    segments: int = 1  # pieces of the reference the style was fitted on


class StyleFitter:
    """The gradient fit for one reference (keeps the prepared targets for its steps)."""

    def __init__(
        self,
        model: KokoroModel,
        ids: list[int],
        durations: np.ndarray,
        reference24: np.ndarray,
        config: StyleFitConfig,
    ) -> None:
        self.model, self.config = model, config
        self.frames = int(durations.sum())
        self.tokens = torch.tensor([[0, *ids, 0]])
        self.durations = torch.from_numpy(durations.astype(np.int64))
        self.reference = torch.from_numpy(reference24[: self.frames * FRAME].astype(np.float32))
        f0 = reference_f0(reference24[: self.frames * FRAME], self.frames)
        self.f0_ref = torch.from_numpy(f0)[None]  # [1, 2·frames]
        self.voiced = self.f0_ref > 10.0
        self.mel_loss = MultiResolutionLogMel()
        self.mel_floors = (
            None
            if config.noise_floor_percentile is None
            else self.mel_loss.floors(
                self.reference, config.noise_floor_percentile, config.noise_floor_margin_db
            )
        )
        with torch.no_grad():
            self.features = model.encode_text(self.tokens)
            self.aligned = model.align(self.features, self.durations)  # [1, 512, frames]

    def losses(
        self,
        style: Tensor,
        crop_start: int,
        crop_frames: int,
        decode: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Prosody (log-F0, duration) and decoder (log-mel on a crop) losses for a style.

        `decode` replaces the model's decoder (`adapt.py` passes one with adapted weights)."""
        model, cfg = self.model, self.config
        decode = decode or model.decode
        _, prosody_style = model.split_style(style)
        d = model.predictor.duration_features(self.features.prosody, prosody_style)
        soft = model.predictor.durations(d, 1.0)[0]
        duration = (soft - self.durations.float()).abs().mean()
        aligned_d = d.transpose(1, 2) @ _alignment(self.durations).to(d)
        f0_pred, energy = model.predictor.f0_energy(aligned_d, prosody_style)
        log_f0 = (
            (torch.log(f0_pred.clamp(min=1.0)[self.voiced]) - torch.log(self.f0_ref[self.voiced]))
            .abs()
            .mean()
            if bool(self.voiced.any())
            else f0_pred.sum() * 0.0
        )
        a, b = crop_start, crop_start + crop_frames
        wave = decode(
            self.aligned[:, :, a:b], self.f0_ref[:, 2 * a : 2 * b], energy[:, 2 * a : 2 * b], style
        )
        target = self.reference[a * FRAME : b * FRAME][None]
        n = min(wave.shape[-1], target.shape[-1])
        mel = self.mel_loss(wave[:, :n], target[:, :n], self.mel_floors)
        total = mel + cfg.f0_weight * log_f0 + cfg.duration_weight * duration
        return {"total": total, "mel": mel, "log_f0": log_f0, "duration": duration}

    def fit(
        self, start: np.ndarray, seed: int, progress: ProgressCallback | None = None
    ) -> tuple[np.ndarray, list[float]]:
        return fit_fitters([self], start, seed, progress)


def fit_fitters(
    fitters: list[StyleFitter],
    start: np.ndarray,
    seed: int,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, list[float]]:
    """One style fitted to every piece of a reference: each step takes a random crop of a
    piece drawn in proportion to its length."""
    cfg, model = fitters[0].config, fitters[0].model
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    style = torch.tensor(np.asarray(start, np.float32)[None], requires_grad=True)
    optimiser = torch.optim.Adam([style], lr=cfg.learning_rate)
    # Cosine decay to zero: Adam's early steps are ~lr per dimension whatever the gradient,
    # so a short fit ends where the noisy random-crop steps have settled.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(1, cfg.steps))
    crop_frames = max(8, round(cfg.crop_seconds * RATE / FRAME))
    weights = np.array([f.frames for f in fitters], np.float64)
    history: list[float] = []
    # Only the style learns: the model's weights are frozen for the fit and given back as
    # they were (the model is shared with the engine and other callers).
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        for step in range(cfg.steps):
            fitter = fitters[0]
            if len(fitters) > 1:
                fitter = fitters[int(rng.choice(len(fitters), p=weights / weights.sum()))]
            crop = min(fitter.frames, crop_frames)
            a = int(rng.integers(0, fitter.frames - crop + 1))
            loss = fitter.losses(style, a, crop)
            optimiser.zero_grad()
            loss["total"].backward()
            optimiser.step()
            schedule.step()
            history.append(loss["total"].item())
            if progress:
                progress(
                    0.1 + 0.88 * (step + 1) / cfg.steps,
                    f"fitting the voice: step {step + 1}/{cfg.steps}",
                )
    finally:
        for p in trainable:
            p.requires_grad_(True)
    return style.detach()[0].numpy().copy(), history


def _alignment(durations: Tensor) -> Tensor:
    from deepfake_studio.synthesizer.kokoro.model import alignment_matrix

    return alignment_matrix(durations)


def prepare_reference(reference: Audio, config: StyleFitConfig) -> np.ndarray:
    """The reference at 24 kHz, cut to the configured length, levelled to Kokoro's loudness."""
    x = resample(reference, RATE).samples.astype(np.float32)
    x = x[: int(config.max_reference_seconds * RATE)]
    rms = float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    if rms < 1e-4:
        raise TextError("the reference is silent")
    return x * (0.08 / rms)  # about Kokoro's own speech level, so loudness is not fitted


def reference_segments(reference: Audio, seconds: float, min_seconds: float = 2.0) -> list[Audio]:
    """The reference in pieces of at most `seconds`, each cut at the quietest 30 ms of the
    last 40 % before the limit (the latest such, in a pause between words, so no word is
    split). A last piece
    shorter than `min_seconds` is dropped: too little to align."""
    x, rate = reference.samples, reference.sample_rate
    limit, frame = int(seconds * rate), int(0.03 * rate)
    pieces: list[np.ndarray] = []
    start = 0
    while len(x) - start > limit:
        starts = np.arange(start + int(0.6 * limit), start + limit - frame, frame // 2)
        energy = np.array([float(np.mean(x[s : s + frame] ** 2)) for s in starts])
        quiet = np.flatnonzero(energy <= 2 * energy.min() + 1e-10)[-1]  # the latest of the quietest
        cut = int(starts[quiet]) + frame // 2
        pieces.append(x[start:cut])
        start = cut
    if not pieces or len(x) - start >= min_seconds * rate:
        pieces.append(x[start:])
    return [reference.with_samples(piece) for piece in pieces]


def fit_style(
    model: KokoroModel,
    packs: dict[str, np.ndarray],
    phonemize: Callable[[str], list[str]],
    vocab: dict[str, int],
    reference: Audio,
    text: str,
    *,
    seed: int = 0,
    config: StyleFitConfig | None = None,
    progress: ProgressCallback | None = None,
) -> StyleFitResult:
    """Fit a style vector to `reference` (speaking `text`); see the module docstring."""
    return fit_style_segments(
        model, packs, phonemize, vocab, [(reference, text)], seed=seed, config=config,
        progress=progress,
    )  # fmt: skip


def fit_style_segments(
    model: KokoroModel,
    packs: dict[str, np.ndarray],
    phonemize: Callable[[str], list[str]],
    vocab: dict[str, int],
    segments: list[tuple[Audio, str]],
    *,
    seed: int = 0,
    config: StyleFitConfig | None = None,
    progress: ProgressCallback | None = None,
    seeds: tuple[str, ...] = (),
) -> StyleFitResult:
    """Fit one style vector to the pieces of a reference, each with the words it speaks.

    The start pack is chosen on the first piece (among the class's packs and `seeds`); every
    piece is aligned to its own text."""
    cfg = config or StyleFitConfig()
    t0 = time.monotonic()
    ids = [reference_tokens(text, phonemize, vocab) for _, text in segments]
    references24 = [prepare_reference(audio, cfg) for audio, _ in segments]
    if progress:
        progress(0.02, "choosing the start voice")
    pack, synthetic, syn_durations = choose_start_pack(model, packs, ids[0], references24[0], seeds)
    if progress:
        progress(0.08, "aligning the reference to its text")
    fitters: list[StyleFitter] = []
    for i, (piece_ids, reference24) in enumerate(zip(ids, references24, strict=True)):
        if i > 0:  # the first piece's speech came with the start pack's choice
            synthetic, syn_durations = speak_tokens(
                model, piece_ids, packs[pack][len(piece_ids) - 1]
            )
        durations = align_durations(synthetic, syn_durations, reference24, cfg.mfcc)
        fitters.append(StyleFitter(model, piece_ids, durations, reference24, cfg))
    start_row = packs[pack][len(ids[0]) - 1].astype(np.float32)
    style, history = fit_fitters(fitters, start_row, seed, progress)
    first = fitters[0]
    return StyleFitResult(
        style=style,
        start_row=start_row,
        start_pack=pack,
        losses=history,
        alignment=Alignment(
            ids=ids[0], durations=first.durations.numpy().copy(), frames=first.frames
        ),
        seconds=time.monotonic() - t0,
        segments=len(segments),
    )


def style_table(packs: dict[str, np.ndarray], result: StyleFitResult) -> np.ndarray:
    """[510, 256] table: the start pack plus the fitted delta on every row."""
    delta = result.style - result.start_row
    return (packs[result.start_pack] + delta[None]).astype(np.float32)


def conditioning_from(packs: dict[str, np.ndarray], result: StyleFitResult) -> Conditioning:
    return Conditioning(
        engine="kokoro",
        arrays={"style": style_table(packs, result)},
        info={
            "method": "kokoro-style-fit",
            "quality": "standard",
            "best_pack": result.start_pack,
            "steps": len(result.losses),
            "loss_start": round(result.losses[0], 4) if result.losses else 0.0,
            "loss_end": round(result.losses[-1], 4) if result.losses else 0.0,
            "reference_frames": result.alignment.frames,
            "reference_segments": result.segments,
            "fit_seconds": round(result.seconds, 1),
        },
    )


# The guard's intelligibility check: Whisper on two sentences the fit never saw (the GE2E
# check's and another Harvard sentence, 31 words). Two, because one 13-word sentence missed a
# fit to a LibriSpeech dev speaker (LS2092) that garbled longer text: 7 % WER on it, 53 % on
# these two, 33-57 % on the evaluation's sentences. More than 3 words wrong beyond the start
# pack's drop the fit.
INTELLIGIBILITY_TEXT = (
    f"{HOLDOUT_SENTENCE} The boy was there when the sun rose, and a rod is used to catch "
    "pink salmon."
)
MAX_WER_RISE = 0.1


@dataclass(frozen=True)
class GuardVerdict:
    """What the guard heard on the held-out sentence: a score per style, GE2E cosine to the
    reference minus `pitch_weight` per semitone of median-pitch mismatch (as `fit.py` scores),
    and, when it could listen, Whisper's word error rate of each."""

    start_score: float
    fit_score: float
    margin: float = 0.0
    start_wer: float | None = None
    fit_wer: float | None = None
    max_wer_rise: float = MAX_WER_RISE

    @property
    def intelligible(self) -> bool:
        """The fit is not harder to understand than the start (unknown: assumed so)."""
        if self.start_wer is None or self.fit_wer is None:
            return True
        return self.fit_wer <= self.start_wer + self.max_wer_rise

    @property
    def keep_fit(self) -> bool:
        return self.intelligible and self.fit_score >= self.start_score - self.margin


def keep_the_closer(
    speak: Callable[[str, np.ndarray], np.ndarray],
    sample_rate: int,
    encoder: SpeakerEncoder,
    reference: Audio,
    start_table: np.ndarray,
    fitted_table: np.ndarray,
    sentence: str = HOLDOUT_SENTENCE,
    pitch_weight: float = 0.02,
    margin: float = 0.05,
    transcribe: Callable[[Audio], str] | None = None,
) -> GuardVerdict:
    """Compare the start pack and the fitted table on `sentence` (never seen by the fit); the
    fit is dropped if it scores more than `margin` below the start, or if `transcribe`
    (Whisper) hears it worse on `INTELLIGIBILITY_TEXT` than the start by over `MAX_WER_RISE`.

    `speak(sentence, table)` is the engine's synthesis (the fast int8 ONNX path). The pitch
    term matters: GE2E alone scored a female speaker 0.553 to her start pack and 0.543 to the
    male pack (tests/synthesizer/kokoro/test_reconstruct.py). The margin too: on the bundled
    LJ reference the guard scored the fit 0.527 against the start's 0.567 while the independent
    judge heard the fit far closer (normalised 0.648 vs 0.336); on 6 dev speakers the fit won
    by 0.05-0.27 and the judge agreed every time (benchmarks/style_fit_guard.md). The words:
    GE2E does not hear intelligibility; a fit to one LibriSpeech dev speaker (LS2092) spoke
    the evaluation's sentences at 70 % WER (Whisper-base) while GE2E scored it closer."""
    target = encoder.embed(reference.samples, reference.sample_rate)
    target_pitch = median_pitch(reference.samples, reference.sample_rate)
    clips = [speak(sentence, start_table), speak(sentence, fitted_table)]
    cosines = encoder.embed_batch(clips, sample_rate) @ target
    scores = []
    for clip, cos in zip(clips, cosines, strict=True):
        pitch = median_pitch(clip, sample_rate)
        miss = 12.0 if pitch is None or target_pitch is None else abs(pitch - target_pitch)
        scores.append(round(float(cos) - pitch_weight * (miss if target_pitch else 0.0), 4))
    wers: list[float | None] = [None, None]
    if transcribe is not None:
        from deepfake_studio.evaluation.asr import word_error_rate

        wers = [
            round(
                word_error_rate(
                    INTELLIGIBILITY_TEXT,
                    transcribe(Audio(speak(INTELLIGIBILITY_TEXT, table), sample_rate)),
                ),
                4,
            )
            for table in (start_table, fitted_table)
        ]
    return GuardVerdict(
        start_score=scores[0],
        fit_score=scores[1],
        margin=margin,
        start_wer=wers[0],
        fit_wer=wers[1],
    )


def guarded_conditioning(
    packs: dict[str, np.ndarray], result: StyleFitResult, verdict: GuardVerdict
) -> Conditioning:
    """The fitted conditioning, or the start pack's if the guard heard it closer."""
    fitted = conditioning_from(packs, result)
    fitted.info["guard"] = {
        "sentence": "held-out",
        "score_start": verdict.start_score,
        "score_fit": verdict.fit_score,
        "wer_start": verdict.start_wer,
        "wer_fit": verdict.fit_wer,
        "kept": "fit" if verdict.keep_fit else "start pack",
    }
    if not verdict.keep_fit:
        fitted.arrays["style"] = packs[result.start_pack].astype(np.float32)
    return fitted
