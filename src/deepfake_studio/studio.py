"""`Studio`: the one facade the CLI (and later the server and workers) call.

Data flows one way: reference audio → `audio` (decode, 16 kHz, trim, loudness) →
`encoder` (d-vector) → `synthesizer` engine conditioning (a `Voice`) → waveform.
Models load once per `Studio` and are reused for every call.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepfake_studio import audio as audio_io
from deepfake_studio.audio import Audio
from deepfake_studio.consent import (
    Challenge,
    ChallengeStore,
    ConsentChecker,
    ConsentConfig,
    ConsentError,
    ConsentEvidence,
)
from deepfake_studio.errors import AudioError, EngineError, MediaError, StudioError, VoiceError
from deepfake_studio.faceswap.config import IMAGE_SUFFIXES, VIDEO_SUFFIXES, FaceSwapConfig
from deepfake_studio.paths import default_data_dir
from deepfake_studio.synthesizer import (
    DEFAULT_ENGINE,
    ENGINES,
    Engine,
    EngineOptions,
    create_engine,
)
from deepfake_studio.synthesizer.base import Conditioning, ProgressCallback
from deepfake_studio.synthesizer.emotion import check_emotion, with_emotion
from deepfake_studio.synthesizer.kokoro.emotion import sentence_pause_scale
from deepfake_studio.synthesizer.kokoro.engine import QUALITIES as KOKORO_QUALITIES
from deepfake_studio.synthesizer.kokoro.engine import KokoroEngine
from deepfake_studio.synthesizer.kokoro.reconstruct import TranscriberHolder
from deepfake_studio.synthesizer.languages import (
    DEFAULT_LANGUAGE,
    check_engine_language,
    check_language,
)
from deepfake_studio.synthesizer.languages import split_sentences as split_language_sentences
from deepfake_studio.text import Sentence, check_text, split_first_clause
from deepfake_studio.voices import Voice, VoiceLibrary, check_name, voice_id

if TYPE_CHECKING:
    from deepfake_studio.detector import DetectionResult, Detector
    from deepfake_studio.encoder import SpeakerEncoder
    from deepfake_studio.evaluation.asr import Transcriber
    from deepfake_studio.faceswap.landmarks import FaceModels
    from deepfake_studio.provenance import AudioWatermarker
    from deepfake_studio.provenance.image_watermark import ImageWatermarker
    from deepfake_studio.synthesizer.kokoro.streaming import KokoroStreamer

REFERENCE_RATE = 16_000
# Spoken once by `warm_streaming(speak=True)`: about 3 s, so several windows are decoded.
WARM_UP_TEXT = "This sentence warms up the streaming voice before anyone is waiting for it."
# Kokoro enrollment qualities, cheapest first (KokoroConfig.quality is the default): "quick" =
# the black-box style search (kokoro/fit.py), "standard" = the gradient style fit
# (kokoro/reconstruct.py), "best" = standard plus decoder adaptation (kokoro/adapt.py).
ENROLL_QUALITIES = KOKORO_QUALITIES
# Voices stored before the fit recorded its quality: known from the fit's method.
_QUALITY_OF_METHOD = {"kokoro-fit-es": "quick", "kokoro-style-fit": "standard"}


@dataclass(frozen=True)
class StudioConfig:
    """Settings of a Studio; every field has a documented default."""

    data_dir: Path | None = None  # None → default_data_dir()
    default_engine: str = DEFAULT_ENGINE
    min_reference_speech_s: float = 2.0  # below this a d-vector is unreliable
    max_reference_s: float = 60.0  # longer references are cut: more adds time, not likeness
    output_lufs: float = -20.0
    sentence_pause_s: float = 0.3
    paragraph_pause_s: float = 0.7
    # A non-kokoro stream splits a longer first sentence at a clause, to start sooner (kokoro
    # streams inside sentences; whole clips never split one).
    first_chunk_chars: int = 60
    min_speed: float = 0.5
    max_speed: float = 2.0
    engines: EngineOptions = field(default_factory=EngineOptions)
    watermark: bool = True  # every generated clip carries the studio's watermark by default
    faceswap: FaceSwapConfig = field(default_factory=FaceSwapConfig)
    consent: ConsentConfig = field(default_factory=ConsentConfig)  # consent proven by voice
    streams_kept: int = 100  # streamed clips kept in DATA/streams/ (the newest; with records)


@dataclass(frozen=True, eq=False)
class GeneratedAudio(Audio):
    """A clip the studio generated, carrying what its signed provenance record needs.

    `Studio.save(clip, path)` and `save_audio(clip, path)` both write the file and its record
    (signed with the key in `key_dir`). Editing the samples (`with_samples`) gives plain
    `Audio`: the studio no longer vouches for it.
    """

    text: str = ""
    voice: Voice | None = None
    engine: str = ""
    watermarked: bool = False
    watermark_layers: tuple[str, ...] = ()  # the watermarker's `methods` when watermarked
    parameters: Mapping[str, object] = field(default_factory=dict)
    key_dir: Path | None = None

    def sign_file(self, path: Path) -> Path | None:
        if self.key_dir is None:
            return None
        return sign_audio_file(
            path,
            key_dir=self.key_dir,
            text=self.text,
            voice=self.voice,
            engine=self.engine,
            watermarked=self.watermarked,
            watermark_layers=self.watermark_layers,
            parameters=self.parameters,
        )


def sign_audio_file(
    path: Path,
    *,
    key_dir: Path,
    text: str,
    voice: Voice | None,
    engine: str,
    watermarked: bool,
    watermark_layers: Sequence[str] = (),
    parameters: Mapping[str, object] | None = None,
) -> Path:
    """Write the signed provenance record of the audio file `path` (sidecar, and inside FLAC);
    `watermark_layers`: the layers embedded (the watermarker's `methods`)."""
    from deepfake_studio import provenance

    key = provenance.load_or_create_key(key_dir)
    record = provenance.make_record(
        path,
        key=key,
        text=text,
        engine=engine,
        voice=voice,
        watermarked=watermarked,
        parameters=dict(parameters or {}),
        watermark_layers=list(watermark_layers),
    )
    if path.suffix.lower() == ".flac":
        provenance.embed_in_flac(path, record)
    return provenance.write_sidecar(path, record)


@dataclass(frozen=True)
class _SpeechRequest:
    """A checked request to speak (`Studio._speech_request`)."""

    watermark: bool
    language: str
    conditioning: Conditioning  # the voice's, with the emotion applied
    pause_scale: float  # the emotion's scale of the pauses between sentences
    sentences: list[Sentence]
    parameters: dict[str, object]  # for the provenance record


@dataclass(frozen=True)
class FaceSwapOutput:
    """What `Studio.faceswap` wrote and found."""

    path: Path
    record: Path
    media: str  # "image" or "video"
    source_faces: int  # faces in the source image (the largest is used)
    faces_found: int  # faces in the target image, or face tracks in the video
    faces_swapped: int  # faces swapped in the image, or frames with a swapped face
    watermarked: bool
    frames: int | None = None
    fps: str | None = None
    audio: str | None = None  # video soundtrack: "original", "cloned", "file" or "none"
    audio_cut_s: float = 0.0  # seconds of a new soundtrack cut because the video ended first
    extended_s: float = 0.0  # seconds the last frame was held for a longer soundtrack


class Studio:
    """Enroll voices, clone speech from a reference or an enrolled voice."""

    def __init__(self, config: StudioConfig | None = None) -> None:
        self.config = config or StudioConfig()
        self.data_dir = Path(self.config.data_dir or default_data_dir())
        self.library = VoiceLibrary(self.data_dir)
        self._encoder: SpeakerEncoder | None = None
        self._engines: dict[str, Engine] = {}
        self._watermarker: AudioWatermarker | None = None
        self._load_lock = threading.RLock()
        self._face_models: FaceModels | None = None
        self._image_watermarker: ImageWatermarker | None = None
        self._detector: Detector | None = None
        self._whisper = TranscriberHolder()
        self._kokoro_streamer: KokoroStreamer | None = None
        self._streaming_warm = False  # warm_streaming(speak=True) has run
        self.challenges = ChallengeStore(self.data_dir, self.config.consent)

    # -- models, loaded once ----------------------------------------------------------------
    # Loading happens on first use, under a lock: a server's worker threads (and the UI) may
    # ask for the same model at once, and it must load once.
    @property
    def encoder(self) -> SpeakerEncoder:
        if self._encoder is None:
            with self._load_lock:
                if self._encoder is None:
                    from deepfake_studio.encoder import SpeakerEncoder

                    self._encoder = SpeakerEncoder()
        return self._encoder

    @property
    def watermarker(self) -> AudioWatermarker:
        if self._watermarker is None:
            with self._load_lock:
                if self._watermarker is None:
                    from deepfake_studio.provenance import AudioWatermarker, load_or_create_key
                    from deepfake_studio.provenance.spread_watermark import layer_key

                    # Both layers: PerthNet, and the spread-spectrum layer keyed from this
                    # studio's signing key (the key that also signs its provenance records).
                    key = layer_key(load_or_create_key(self.data_dir))
                    self._watermarker = AudioWatermarker(key=key)
        return self._watermarker

    @property
    def watermark_methods(self) -> tuple[str, ...]:
        """The layers `watermarker` embeds, known without building it (it is always keyed)."""
        if self._watermarker is not None:
            return self._watermarker.methods
        from deepfake_studio.provenance.watermark import layer_methods

        return layer_methods(keyed=True)

    @property
    def detector(self) -> Detector:
        """The synthetic-speech detector (the ONNX model shipped in the package)."""
        if self._detector is None:
            with self._load_lock:
                if self._detector is None:
                    from deepfake_studio.detector import Detector

                    self._detector = Detector()
        return self._detector

    @property
    def transcriber(self) -> Transcriber:
        """Whisper-base (consent phrases, and the Kokoro engine's enrollments: one model for
        both; loaded on first use)."""
        return self._whisper.model

    def detect(self, audio: str | Path | Audio) -> DetectionResult:
        """How likely a file or clip is synthetic speech (any length; AudioError if unreadable)."""
        return self.detector.detect(audio)

    @property
    def face_models(self) -> FaceModels:
        """dlib's face detector and 68-point predictor (loaded on first use)."""
        if self._face_models is None:
            with self._load_lock:
                if self._face_models is None:
                    from deepfake_studio.faceswap.landmarks import FaceModels

                    self._face_models = FaceModels(self.config.faceswap)
        return self._face_models

    @property
    def image_watermarker(self) -> ImageWatermarker:
        if self._image_watermarker is None:
            with self._load_lock:
                if self._image_watermarker is None:
                    from deepfake_studio.provenance.image_watermark import ImageWatermarker

                    self._image_watermarker = ImageWatermarker()
        return self._image_watermarker

    def engine(self, name: str | None = None) -> Engine:
        name = name or self.config.default_engine
        if name not in ENGINES:
            raise EngineError(f"unknown engine {name!r} (available: {', '.join(ENGINES)})")
        if name not in self._engines:
            with self._load_lock:
                if name not in self._engines:
                    engine = create_engine(name, self.config.engines)
                    if isinstance(engine, KokoroEngine):
                        engine.transcriber = self._whisper  # one Whisper per studio
                    self._engines[name] = engine
        return self._engines[name]

    def loaded_models(self) -> list[str]:
        """Names of the models already in memory (the rest load on first use)."""
        loaded = ["encoder"] if self._encoder is not None else []
        loaded += ["watermark"] if self._watermarker is not None else []
        loaded += ["detector"] if self._detector is not None else []
        loaded += ["whisper"] if self._whisper.loaded else []
        loaded += ["faces"] if self._face_models is not None else []
        loaded += ["kokoro-streaming"] if self._streaming_warm else []
        return loaded + sorted(self._engines)

    def has_voice(self, name: str) -> bool:
        """Whether the library has a voice folder for `name` (it may still fail to load)."""
        return bool(voice_id(name)) and voice_id(name) in self.library.names()

    # -- references and voices ---------------------------------------------------------------
    def load_reference(self, reference: str | Path | Audio) -> tuple[Audio, str, str]:
        """Decode and clean a reference: (16 kHz trimmed audio, sha256 of the source, name)."""
        if isinstance(reference, Audio):
            source_hash = hashlib.sha256(reference.samples.tobytes()).hexdigest()
            raw, name = reference, "<audio>"
        else:
            path = Path(reference)
            raw = audio_io.load_audio(path)
            source_hash = _file_sha256(path)
            name = path.name
        clip = audio_io.resample(raw, REFERENCE_RATE)
        speech = audio_io.speech_seconds(clip)
        minimum = self.config.min_reference_speech_s
        if speech < 0.1:
            raise AudioError(f"the reference {name} contains no speech (only silence or noise)")
        if speech < minimum:
            raise AudioError(
                f"the reference {name} has {speech:.1f} s of speech; "
                f"at least {minimum:.0f} s is needed"
            )
        clip = audio_io.remove_long_pauses(audio_io.trim_silence(clip))
        max_samples = int(self.config.max_reference_s * REFERENCE_RATE)
        if len(clip.samples) > max_samples:
            clip = clip.with_samples(clip.samples[:max_samples])
        return audio_io.normalize_loudness(clip, self.config.output_lufs), source_hash, name

    def create_voice(
        self,
        reference: str | Path | Audio,
        *,
        name: str = "reference",
        consent: str = "",
        engine: str | None = None,
        seed: int = 0,
        progress: ProgressCallback | None = None,
        quality: str | None = None,
        reference_text: str | None = None,
        consent_evidence: Mapping[str, object] | None = None,
    ) -> Voice:
        """Analyse a reference into a Voice (not stored). `quality` (one of
        ENROLL_QUALITIES; None = the engine's default) and `reference_text` (the words spoken,
        else transcribed) are kokoro's. `consent_evidence`: what `verify_consent` saw, kept
        in the voice (it must have been checked against this same reference)."""
        self.check_enroll_options(engine, quality, reference_text)
        clip, source_hash, source_name = self.load_reference(reference)
        chosen = self.engine(engine)
        embedding = self.encoder.embed(clip.samples, clip.sample_rate)
        options: dict[str, str | None] = {}
        if quality is not None or reference_text is not None:  # only kokoro takes them
            options = {"quality": quality, "reference_text": reference_text}
        conditioning = chosen.condition(
            clip,
            self.encoder,
            seed=seed,
            progress=progress,
            **options,  # type: ignore[arg-type]
        )
        return Voice(
            name=name,
            embedding=np.asarray(embedding, np.float32),
            conditioning=conditioning,
            consent=consent,
            source_sha256=source_hash,
            source_name=source_name,
            reference_seconds=round(clip.duration, 2),
            consent_evidence=_evidence_for(consent_evidence, source_hash),
        )

    def check_enroll_options(
        self,
        engine: str | None,
        quality: str | None,
        reference_text: str | None,
        field: str = "quality",
    ) -> None:
        """One-line errors, before any slow work, for the enrollment options of a voice made
        from a recording: an unknown quality (named as `field`), either option with an engine
        other than kokoro, or a reference text for the quick quality (it reads none)."""
        check_quality(quality, field)
        if quality is None and reference_text is None:
            return
        chosen = engine or self.config.default_engine
        if chosen not in ENGINES:
            raise EngineError(f"unknown engine {chosen!r} (available: {', '.join(ENGINES)})")
        if chosen != "kokoro":
            raise EngineError(
                f"a quality and a reference text go with the kokoro engine, not {chosen}"
            )
        effective = quality or self.config.engines.kokoro.quality
        if reference_text is not None and effective == "quick":
            raise EngineError("a reference text is only used by the standard and best qualities")

    def enroll(
        self,
        reference: str | Path | Audio,
        name: str,
        consent: str = "",
        *,
        engine: str | None = None,
        seed: int = 0,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        quality: str | None = None,
        reference_text: str | None = None,
        consent_audio: str | Path | Audio | None = None,
        challenge: Challenge | str | None = None,
    ) -> Voice:
        """Analyse a reference once and store it in the voice library under `name`.

        With `consent_audio` (the speaker reading the sentence of a challenge from
        `consent_phrase`), consent is proven by voice before any slow work: `challenge` is that
        Challenge or its id (None: the newest open one for `name`), used up here. A recording
        that fails a check raises a one-line ConsentError; the evidence is kept in the voice.
        The challenge's sentence is the consent statement unless `consent` is given.
        """
        check_name(name)
        if not overwrite and voice_id(name) in self.library.names():
            raise VoiceError(
                f"a voice named {name!r} already exists "
                "(replace it with overwrite=True, or --overwrite on the command line)"
            )
        evidence = None
        if consent_audio is not None:
            if not isinstance(challenge, Challenge):
                challenge = self.challenges.take(challenge, name)
            elif challenge.name.casefold() != name.strip().casefold():
                raise ConsentError(f"the consent challenge was issued for {challenge.name!r}")
            elif challenge.expired():
                raise ConsentError(f"consent challenge {challenge.id} expired; get a new phrase")
            evidence = self.verify_consent(challenge, consent_audio, reference)
            consent = (consent or "").strip() or challenge.sentence
        elif challenge is not None:
            raise ConsentError("a consent challenge goes with a consent recording")
        consent = check_consent(consent, "enrolling a voice")
        voice = self.create_voice(
            reference,
            name=name,
            consent=consent.strip(),
            engine=engine,
            seed=seed,
            progress=progress,
            quality=quality,
            reference_text=reference_text,
            consent_evidence=evidence.as_dict() if evidence else None,
        )
        self.library.save(voice, overwrite=overwrite)
        return voice

    def consent_phrase(self, name: str) -> Challenge:
        """Issue a consent challenge for the speaker `name`: the speaker reads its `sentence`
        aloud, and that recording is `enroll`'s `consent_audio` (valid once, for an hour)."""
        return self.challenges.issue(name)

    def verify_consent(
        self,
        challenge: Challenge,
        recording: str | Path | Audio,
        reference: str | Path | Audio,
    ) -> ConsentEvidence:
        """Check a consent recording against its challenge and the reference (phrase heard,
        same speaker, not synthetic); a one-line ConsentError names each failed check."""
        checker = ConsentChecker(
            transcriber=self.transcriber,
            encoder=self.encoder,
            detector=self.detector,
            watermarker=self.watermarker,
            config=self.config.consent,
        )
        return checker.verify(challenge, recording, reference)

    def voice(self, name: str) -> Voice:
        return self.library.load(name)

    def voices(self) -> list[Voice | VoiceError]:
        return self.library.scan()

    def delete_voice(self, name: str) -> None:
        self.library.delete(name)

    # -- cloning -----------------------------------------------------------------------------
    def resolve_voice(
        self,
        voice: str | Voice | None = None,
        reference: str | Path | Audio | None = None,
        engine: str | None = None,
        seed: int = 0,
        progress: ProgressCallback | None = None,
        consent: str | None = None,
        quality: str | None = None,
        reference_text: str | None = None,
    ) -> Voice:
        """The voice to speak with: an enrolled one, or one analysed from a reference now.

        A reference needs the speaker's `consent` statement, as enrolling does; it is kept in
        the voice and so in the provenance record of what is generated with it. `quality` and
        `reference_text` are those of `create_voice` (a reference only).
        """
        if (voice is None) == (reference is None):
            raise VoiceError("give exactly one of a voice or a reference recording")
        if engine is not None and engine not in ENGINES:
            raise EngineError(f"unknown engine {engine!r} (available: {', '.join(ENGINES)})")
        if reference is not None:
            statement = check_consent(consent, "cloning from a recording")
            return self.create_voice(
                reference,
                consent=statement,
                engine=engine,
                seed=seed,
                progress=progress,
                quality=quality,
                reference_text=reference_text,
            )
        if quality is not None or reference_text is not None:
            raise VoiceError(
                "a quality and a reference text go with a reference recording "
                "(an enrolled voice is already fitted)"
            )
        chosen = self.voice(voice) if isinstance(voice, str) else voice
        if engine and engine != chosen.engine:
            raise EngineError(
                f"voice {chosen.name!r} was enrolled for the {chosen.engine} engine, not {engine}; "
                f"enroll it again with --engine {engine}"
            )
        return chosen

    def speak(
        self,
        text: str,
        voice: Voice,
        *,
        speed: float = 1.0,
        watermark: bool | None = None,
        progress: ProgressCallback | None = None,
        language: str | None = None,
        emotion: str | None = None,
        emotion_strength: float | None = None,
    ) -> Iterator[Audio]:
        """Synthesise `text` sentence by sentence; each piece ends with its pause.
        `language` (default en-us) is one of `synthesizer.languages.LANGUAGES` (kokoro).
        `emotion` (one of `synthesizer.emotion.EMOTIONS`, default neutral) at
        `emotion_strength` 0..1 (default 1; 0 is exactly the neutral speech): kokoro and
        transformer voices.

        Each piece is watermarked on its own (unless `watermark` is False, or None and the
        config says so), so a streamed clip is marked wherever it is cut.
        """
        r = self._speech_request(text, voice, speed, watermark, language, emotion, emotion_strength)
        yield from self._speak_sentences(r, voice, r.sentences, speed, progress)

    def _speak_sentences(
        self,
        r: _SpeechRequest,
        voice: Voice,
        sentences: list[Sentence],
        speed: float,
        progress: ProgressCallback | None,
    ) -> Iterator[GeneratedAudio]:
        """`speak`'s loop: each of `sentences` synthesised whole, levelled, marked, paused."""
        engine = self.engine(voice.engine)
        # Only non-default languages pass the argument: English-only engines do not take it.
        in_language = {"language": r.language} if r.language != DEFAULT_LANGUAGE else {}
        for i, sentence in enumerate(sentences):
            samples = engine.synthesize(sentence.text, r.conditioning, speed, **in_language)
            piece = audio_io.normalize_loudness(
                Audio(samples, engine.sample_rate), self.config.output_lufs
            )
            if r.watermark:
                piece = self.watermarker.embed(piece)
            pause = np.zeros(
                int(sentence.pause_after * r.pause_scale * engine.sample_rate), np.float32
            )
            if progress:
                progress((i + 1) / len(sentences), f"sentence {i + 1}/{len(sentences)}")
            yield self._generated(
                np.concatenate([piece.samples, pause]),
                engine.sample_rate,
                sentence.text,
                voice,
                r.watermark,
                r.parameters,
            )

    def speak_stream(
        self,
        text: str,
        voice: Voice,
        *,
        speed: float = 1.0,
        watermark: bool | None = None,
        language: str | None = None,
        emotion: str | None = None,
        emotion_strength: float | None = None,
    ) -> Iterator[GeneratedAudio]:
        """`speak` in pieces shorter than a sentence, each yielded as soon as it is decoded
        (kokoro voices: the first about 0.4 s of speech, then windows 1.5 × as long each,
        `synthesizer/kokoro/streaming.py`; other engines: sentence by sentence, a first sentence
        over `first_chunk_chars` cut at a clause to start sooner).
        Arguments and checks are those of `speak`. Joined (`join_stream`), the pieces are the
        utterance; save that to get its provenance record.

        Each piece is watermarked on its own (unless `watermark` is False, or None and the
        config says so); one loudness gain, measured on the first piece, serves the whole
        stream (a piece is too short to normalise on its own without level steps).
        """
        r = self._speech_request(text, voice, speed, watermark, language, emotion, emotion_strength)
        if voice.engine != "kokoro":
            # Sentence by sentence, with a long first sentence cut at a clause so that the
            # first piece comes sooner. Only here: the cut costs the sentence its prosody (a
            # pause mid-sentence), which a whole clip (`speak`, `clone`) never pays.
            sentences = split_first_clause(r.sentences, self.config.first_chunk_chars)
            yield from self._speak_sentences(r, voice, sentences, speed, None)
            return
        parameters = {**r.parameters, "streamed": True}
        streamer = self.kokoro_streamer
        rate = streamer.engine.sample_rate
        gain: float | None = None
        sent = 0.0  # seconds of audio yielded so far: later sentences take longer windows
        for sentence in r.sentences:
            pieces = streamer.stream(sentence.text, r.conditioning, speed, r.language, sent)
            for samples in pieces:
                sent += len(samples) / rate
                if gain is None:
                    gain = _loudness_gain(samples, rate, self.config.output_lufs)
                piece = Audio(np.clip(samples * gain, -0.99, 0.99).astype(np.float32), rate)
                if r.watermark and piece.samples.any():
                    piece = self.watermarker.embed(piece)
                yield self._generated(
                    piece.samples, rate, sentence.text, voice, r.watermark, parameters
                )
            pause = int(sentence.pause_after * r.pause_scale * rate)
            if pause:
                sent += pause / rate
                silence = np.zeros(pause, np.float32)
                yield self._generated(silence, rate, sentence.text, voice, r.watermark, parameters)

    def _speech_request(
        self,
        text: str,
        voice: Voice,
        speed: float,
        watermark: bool | None,
        language: str | None,
        emotion: str | None,
        emotion_strength: float | None,
    ) -> _SpeechRequest:
        """The checks `speak` and `speak_stream` share (text, speed, language, emotion), with
        the voice's conditioning for the emotion and the text cut into sentences."""
        text = check_text(text)
        if not (self.config.min_speed <= speed <= self.config.max_speed):
            raise EngineError(
                f"speed {speed} is out of range ({self.config.min_speed}-{self.config.max_speed})"
            )
        language = check_engine_language(voice.engine, language)
        emotion, emotion_strength = check_emotion(emotion, emotion_strength)
        conditioning = with_emotion(voice.conditioning, voice.engine, emotion, emotion_strength)
        return _SpeechRequest(
            watermark=self.config.watermark if watermark is None else watermark,
            language=language,
            conditioning=conditioning,
            pause_scale=sentence_pause_scale(conditioning, voice.engine),
            sentences=split_language_sentences(
                text, language, self.config.sentence_pause_s, self.config.paragraph_pause_s
            ),
            parameters={
                "speed": speed,
                "language": language,
                "emotion": emotion,
                "emotion_strength": emotion_strength,
            },
        )

    @property
    def kokoro_streamer(self) -> KokoroStreamer:
        """The Kokoro engine's streamer (the PyTorch model loads on its first stream)."""
        from deepfake_studio.synthesizer.kokoro.streaming import KokoroStreamer

        engine = self.engine("kokoro")
        with self._load_lock:
            if self._kokoro_streamer is None:
                self._kokoro_streamer = KokoroStreamer(engine)  # type: ignore[arg-type]
        return self._kokoro_streamer

    def warm_streaming(self, speak: bool = False) -> None:
        """Load what the first stream needs (the float Kokoro) before a user is waiting. With
        `speak`, also stream a sentence (longer than the first window) through the bundled
        voice and the watermark, so the first request pays none of the one-off set-up of
        kernels and models either (`serve` does this in the background at start)."""
        streamer = self.kokoro_streamer
        _ = streamer.engine.torch_path.model
        if speak:
            throwaway = Voice(
                name="Warm Up",
                embedding=np.full(256, 1 / 16, np.float32),
                conditioning=streamer.engine.default_conditioning(),
                consent="None needed: the bundled voice, never saved.",
                source_sha256="0" * 64,
            )
            for _piece in self.speak_stream(WARM_UP_TEXT, throwaway):
                pass
            self._streaming_warm = True

    def join_stream(self, pieces: list[GeneratedAudio], text: str) -> GeneratedAudio:
        """The pieces of one `speak_stream` as one clip (for `save`): the trailing pause
        after the last sentence is dropped, as `clone` does."""
        if not pieces:
            raise StudioError("the stream produced no audio")
        samples = np.concatenate([p.samples for p in pieces])
        end = len(samples)
        while end > 1 and samples[end - 1] == 0.0:
            end -= 1
        first = pieces[0]
        return self._generated(
            samples[:end],
            first.sample_rate,
            text,
            first.voice,  # type: ignore[arg-type]  # pieces of speak_stream carry it
            first.watermarked,
            first.parameters,
        )

    def keep_stream(self, clip: GeneratedAudio, stream_id: str | None = None) -> tuple[Path, Path]:
        """Save a streamed clip (`join_stream`) as DATA/streams/ID.wav with its signed record,
        so speech that went to a speaker, a pipe or an HTTP client has a record too. Only the
        newest `config.streams_kept` streams are kept: older ones go with their records."""
        from deepfake_studio.provenance import sidecar_path

        folder = self.data_dir / "streams"
        path, record = self.save(clip, folder / f"{stream_id or uuid.uuid4().hex}.wav")
        streams = sorted(folder.glob("*.wav"), key=lambda f: f.stat().st_mtime, reverse=True)
        for old in streams[max(1, self.config.streams_kept) :]:
            old.unlink(missing_ok=True)
            sidecar_path(old).unlink(missing_ok=True)
        return path, record

    def _generated(
        self,
        samples: np.ndarray,
        sample_rate: int,
        text: str,
        voice: Voice,
        watermarked: bool,
        parameters: Mapping[str, object],
    ) -> GeneratedAudio:
        return GeneratedAudio(
            samples,
            sample_rate,
            text=text,
            voice=voice,
            engine=voice.engine,
            watermarked=watermarked,
            watermark_layers=self.watermarker.methods if watermarked else (),
            parameters=dict(parameters),
            key_dir=self.data_dir,
        )

    def clone(
        self,
        text: str,
        *,
        voice: str | Voice | None = None,
        reference: str | Path | Audio | None = None,
        engine: str | None = None,
        speed: float = 1.0,
        seed: int = 0,
        watermark: bool | None = None,
        progress: ProgressCallback | None = None,
        consent: str | None = None,
        language: str | None = None,
        quality: str | None = None,
        reference_text: str | None = None,
        emotion: str | None = None,
        emotion_strength: float | None = None,
    ) -> GeneratedAudio:
        """Speak `text` in an enrolled voice or in the voice of a reference recording (which
        needs the speaker's `consent` statement; `quality` and `reference_text` as for
        `create_voice`), in `language` (default en-us; the kokoro engine speaks all of
        `synthesizer.languages.LANGUAGES`), with `emotion` at `emotion_strength` (as for
        `speak`). Save it with `studio.save(clip, path)`: that writes the file and its signed
        provenance record."""
        text = check_text(text)  # fail on bad text before any slow analysis
        language = check_language(language)
        emotion, emotion_strength = check_emotion(emotion, emotion_strength)
        chosen = self.resolve_voice(
            voice,
            reference,
            engine,
            seed,
            consent=consent,
            quality=quality,
            reference_text=reference_text,
        )
        mark = self.config.watermark if watermark is None else watermark
        pieces = list(
            self.speak(
                text,
                chosen,
                speed=speed,
                watermark=mark,
                progress=progress,
                language=language,
                emotion=emotion,
                emotion_strength=emotion_strength,
            )
        )
        samples = np.concatenate([p.samples for p in pieces])
        # The last sentence ends a paragraph; a whole clip does not need that trailing pause
        # (as long as the emotion made it).
        felt = with_emotion(chosen.conditioning, chosen.engine, emotion, emotion_strength)
        pause = self.config.paragraph_pause_s * sentence_pause_scale(felt, chosen.engine)
        trailing = int(pieces[-1].sample_rate * pause)
        parameters = {
            "speed": speed,
            "seed": seed,
            "language": language,
            "emotion": emotion,
            "emotion_strength": emotion_strength,
        }
        return self._generated(
            samples[: max(1, len(samples) - trailing)],
            pieces[0].sample_rate,
            text,
            chosen,
            mark,
            parameters,
        )

    # -- face swap ---------------------------------------------------------------------------
    def faceswap(
        self,
        source: str | Path,
        target: str | Path,
        out: str | Path,
        *,
        face: int | None = None,
        text: str | None = None,
        voice: str | Voice | None = None,
        reference: str | Path | None = None,
        audio: str | Path | None = None,
        watermark: bool | None = None,
        progress: ProgressCallback | None = None,
        consent: str | None = None,
        extend: bool = False,
        quality: str | None = None,
        reference_text: str | None = None,
    ) -> FaceSwapOutput:
        """Put the (largest) face of the `source` image onto the faces of `target`, an image
        or a video (by its suffix); `face` picks one target face (left to right, from 0).

        Video only: `text` with `voice` or `reference` replaces the soundtrack with cloned
        speech (watermarked; `quality` and `reference_text` as for `create_voice`); `audio`
        replaces it with a file as it is. Every output image or frame is watermarked (unless
        `watermark` is False) and gets a signed record.
        """
        suffix = Path(target).suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return self.faceswap_video(
                source,
                target,
                out,
                face=face,
                text=text,
                voice=voice,
                reference=reference,
                audio=audio,
                watermark=watermark,
                progress=progress,
                consent=consent,
                extend=extend,
                quality=quality,
                reference_text=reference_text,
            )
        if suffix not in IMAGE_SUFFIXES:
            raise MediaError(
                f"the target {Path(target).name} is neither an image "
                f"({', '.join(IMAGE_SUFFIXES)}) nor a video ({', '.join(VIDEO_SUFFIXES)})"
            )
        soundtrack = (text, voice, reference, audio, quality, reference_text)
        if any(option is not None for option in soundtrack):
            raise MediaError("a new soundtrack (--voice, --text, --audio) needs a video target")
        return self.faceswap_image(source, target, out, face=face, watermark=watermark)

    def faceswap_image(
        self,
        source: str | Path,
        target: str | Path,
        out: str | Path,
        *,
        face: int | None = None,
        watermark: bool | None = None,
    ) -> FaceSwapOutput:
        """Swap faces in one image; writes `out` atomically plus its signed record."""
        from deepfake_studio.faceswap import image as fs_image
        from deepfake_studio.provenance import image_watermark

        cfg = self.config.faceswap
        mark = self.config.watermark if watermark is None else watermark
        out = Path(out)
        _check_output(out, fs_image.IMAGE_OUTPUT_SUFFIXES, "image")
        src = fs_image.prepare_source(
            fs_image.read_image(source, cfg, "source"), self.face_models, "source"
        )
        tgt = fs_image.read_image(target, cfg, "target")
        if mark and not image_watermark.ImageWatermarker.can_mark(tgt):
            raise MediaError(
                f"the target {Path(target).name} is {tgt.shape[1]}x{tgt.shape[0]} pixels: "
                "too small to carry the watermark (at least 256x256 pixels are needed)"
            )
        result = fs_image.swap_faces(tgt, src, self.face_models, cfg, face)
        pixels = self.image_watermarker.embed(result.image) if mark else result.image
        path = fs_image.write_image(pixels, out, cfg)
        details = {"width": int(tgt.shape[1]), "height": int(tgt.shape[0])}
        record = self._media_record(
            path,
            "image",
            details,
            mark,
            inputs={"source": _describe(source), "target": _describe(target)},
            parameters={"face": face, "faces_swapped": result.swapped, "kept": result.kept},
        )
        return FaceSwapOutput(
            path=path,
            record=record,
            media="image",
            source_faces=src.faces_found,
            faces_found=result.faces_found,
            faces_swapped=len(result.swapped),
            watermarked=mark,
        )

    def faceswap_video(
        self,
        source: str | Path,
        target: str | Path,
        out: str | Path,
        *,
        face: int | None = None,
        text: str | None = None,
        voice: str | Voice | None = None,
        reference: str | Path | None = None,
        audio: str | Path | None = None,
        watermark: bool | None = None,
        progress: ProgressCallback | None = None,
        consent: str | None = None,
        extend: bool = False,
        quality: str | None = None,
        reference_text: str | None = None,
    ) -> FaceSwapOutput:
        """Swap faces in a video, streamed frame by frame; see `faceswap` for the soundtrack
        (a `reference` needs the speaker's `consent` statement). A new soundtrack longer than
        the video is cut at its end (`audio_cut_s` says how much) unless `extend` holds the
        last frame until the soundtrack ends."""
        import tempfile

        from deepfake_studio.faceswap import image as fs_image
        from deepfake_studio.faceswap import video as fs_video
        from deepfake_studio.faceswap.config import VIDEO_OUTPUT_SUFFIXES

        cfg = self.config.faceswap
        mark = self.config.watermark if watermark is None else watermark
        out = Path(out)
        _check_output(out, VIDEO_OUTPUT_SUFFIXES, "video")
        cloning = voice is not None or reference is not None
        if cloning and not text:
            raise VoiceError("a cloned soundtrack needs --text")
        if text is not None and not cloning:
            raise VoiceError("give --voice or --reference to speak --text")
        if cloning and audio is not None:
            raise VoiceError("give a cloned soundtrack (--voice, --text) or --audio, not both")
        text = check_text(text) if text is not None else None
        if reference is not None:
            check_consent(consent, "cloning from a recording")
            self.check_enroll_options(None, quality, reference_text)
        elif quality is not None or reference_text is not None:
            raise VoiceError("--quality and --reference-text go with --reference")
        src = fs_image.prepare_source(
            fs_image.read_image(source, cfg, "source"), self.face_models, "source"
        )
        info = fs_video.probe(target, cfg)
        if mark and info.width * info.height < 256 * 256:
            raise MediaError(
                f"the video {Path(target).name} is {info.width}x{info.height}: too small to "
                "carry the watermark (frames of at least 256x256 pixels are needed)"
            )
        chosen: Voice | None = None
        soundtrack: Path | None = None
        soundtrack_s: float | None = None
        audio_kind = "original" if info.has_audio else "none"
        with tempfile.TemporaryDirectory(prefix="faceswap-") as tmp:
            if cloning:
                assert text is not None
                chosen = self.resolve_voice(
                    voice,
                    reference,
                    consent=consent,
                    quality=quality,
                    reference_text=reference_text,
                )
                speech = self.clone(text, voice=chosen, watermark=mark)
                # A temporary track inside the video: the video's record covers it.
                soundtrack = audio_io.write_audio(speech, Path(tmp) / "speech.wav")
                soundtrack_s, audio_kind = speech.duration, "cloned"
            elif audio is not None:
                # Decoded now: a clear AudioError here, not an ffmpeg failure later.
                soundtrack_s = audio_io.load_audio(audio).duration
                soundtrack, audio_kind = Path(audio), "file"
            frame_filter = self.image_watermarker.embed if mark else None
            stats = fs_video.swap_video(
                src,
                target,
                out,
                self.face_models,
                cfg,
                face_index=face,
                audio=soundtrack,
                frame_filter=frame_filter,
                progress=progress,
                audio_seconds=soundtrack_s,
                extend=extend,
            )
        details = {
            "width": stats.width,
            "height": stats.height,
            "frames": stats.frames,
            "fps": stats.fps,
            "audio": audio_kind,
            "audio_cut_s": stats.audio_cut_s,
            "extended_s": stats.extended_s,
        }
        inputs = {"source": _describe(source), "target": _describe(target)}
        if audio is not None:
            inputs["audio"] = _describe(audio)
        if reference is not None:
            inputs["reference"] = _describe(reference)
        record = self._media_record(
            out,
            "video",
            details,
            mark,
            inputs=inputs,
            parameters={"face": face, "frames_swapped": stats.frames_swapped},
            voice=chosen,
            text=text,
            cloned_audio=audio_kind == "cloned",
        )
        return FaceSwapOutput(
            path=out,
            record=record,
            media="video",
            source_faces=src.faces_found,
            faces_found=stats.faces_found,
            faces_swapped=stats.frames_swapped,
            watermarked=mark,
            frames=stats.frames,
            fps=stats.fps,
            audio=audio_kind,
            audio_cut_s=stats.audio_cut_s,
            extended_s=stats.extended_s,
        )

    def _media_record(
        self,
        path: Path,
        media: str,
        details: dict[str, object],
        mark: bool,
        *,
        inputs: dict[str, object],
        parameters: dict[str, object],
        voice: Voice | None = None,
        text: str | None = None,
        cloned_audio: bool = False,
    ) -> Path:
        from deepfake_studio import provenance
        from deepfake_studio.provenance import image_watermark, watermark

        marks: dict[str, object] = {
            "applied": mark,
            "method": image_watermark.METHOD if mark else None,
            "model": image_watermark.model_version() if mark else None,
            "payload": image_watermark.PAYLOAD.decode() if mark else None,
        }
        if cloned_audio:
            marks["audio"] = {
                "applied": mark,
                "method": watermark.METHOD if mark else None,
                "model": watermark.model_version() if mark else None,
                "layers": list(self.watermarker.methods) if mark else [],
            }
        key = provenance.load_or_create_key(self.data_dir)
        record = provenance.make_media_record(
            path,
            media=media,
            key=key,
            engine="faceswap-dlib68",
            details=details,
            watermark=marks,
            inputs=inputs,
            voice=voice,
            text=text,
            parameters=parameters,
        )
        return provenance.write_sidecar(path, record)

    # -- writing outputs ---------------------------------------------------------------------
    def save(
        self,
        audio: Audio,
        path: str | Path,
        *,
        text: str | None = None,
        voice: Voice | None = None,
        engine: str | None = None,
        watermarked: bool | None = None,
        parameters: Mapping[str, object] | None = None,
    ) -> tuple[Path, Path]:
        """Write a clip and its signed provenance record: (audio path, record path).

        A clip from `clone` or `speak` knows its text, voice, engine and watermark: just
        `studio.save(clip, "out.wav")`. Other audio needs `text` and `engine`; it is
        watermarked here (unless the config turns the watermark off or `watermarked=True`
        says it already is). The record (sidecar `OUT.provenance.json`, and inside FLAC files)
        hashes the samples as written, names the engine, voice and consent, and is signed with
        the studio's key; it replaces any earlier record of that path.
        """
        layers: tuple[str, ...] = ()  # the layers the clip was marked with, when known
        if isinstance(audio, GeneratedAudio):
            layers = audio.watermark_layers
            text = audio.text if text is None else text
            voice = audio.voice if voice is None else voice
            engine = audio.engine if engine is None else engine
            watermarked = audio.watermarked if watermarked is None else watermarked
            parameters = {**audio.parameters, **(parameters or {})}
        if text is None or engine is None:
            raise StudioError(
                "studio.save needs the text and engine of audio the studio did not generate "
                "(a clip from studio.clone or studio.speak carries them)"
            )
        if watermarked is None:
            watermarked = self.config.watermark
            if watermarked:
                audio = self.watermarker.embed(audio)
                layers = self.watermarker.methods
        out = audio_io.write_audio(audio, path)
        record = sign_audio_file(
            out,
            key_dir=self.data_dir,
            text=text,
            voice=voice,
            engine=engine,
            watermarked=watermarked,
            watermark_layers=(layers or self.watermark_methods) if watermarked else (),
            parameters=parameters,
        )
        return out, record


def _loudness_gain(samples: np.ndarray, sample_rate: int, target_lufs: float) -> float:
    """The gain `normalize_loudness` would apply to these samples (1 for silence)."""
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak == 0.0:
        return 1.0
    normalized = audio_io.normalize_loudness(Audio(samples, sample_rate), target_lufs)
    return float(np.abs(normalized.samples).max()) / peak


def check_quality(quality: str | None, field: str = "quality") -> str | None:
    """`quality` if it is one of ENROLL_QUALITIES or None (the engine's default); else an
    EngineError naming the option as the user wrote it (`field`: --quality, quality, ...)."""
    if quality is not None and quality not in ENROLL_QUALITIES:
        *first, last = ENROLL_QUALITIES
        choices = f"{', '.join(first)} or {last}" if first else last
        raise EngineError(f"{field} must be {choices}, not {quality!r}")
    return quality


def enrollment_quality(voice: Voice) -> str | None:
    """The quality a kokoro voice was enrolled with (None for other engines, or a fit whose
    record names no known method)."""
    info = voice.conditioning.info
    quality = info.get("quality") or _QUALITY_OF_METHOD.get(str(info.get("method", "")))
    return str(quality) if quality else None


def _evidence_for(
    evidence: Mapping[str, object] | None, reference_sha256: str
) -> dict[str, object] | None:
    """Consent evidence to keep in a voice, refused if it was taken for another reference."""
    if evidence is None:
        return None
    if evidence.get("reference_sha256") != reference_sha256:
        raise ConsentError("the consent recording was checked against a different reference")
    return dict(evidence)


def check_consent(consent: str | None, action: str) -> str:
    """The stripped consent statement, or a VoiceError saying `action` needs one."""
    statement = (consent or "").strip()
    if not statement:
        raise VoiceError(f'{action} needs the speaker\'s consent statement (--consent "...")')
    return statement


def _check_output(out: Path, suffixes: tuple[str, ...], kind: str) -> None:
    if out.suffix.lower() not in suffixes:
        raise MediaError(
            f"cannot write {out.suffix or 'files without a suffix'} for a {kind} output: "
            f"use {', '.join(suffixes)}"
        )
    if not out.parent.is_dir():
        raise MediaError(f"the output folder {str(out.parent)!r} does not exist")


def _describe(path: str | Path) -> dict[str, str]:
    """Name and SHA-256 of an input file, for provenance records."""
    return {"name": Path(path).name, "sha256": _file_sha256(Path(path))}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
