"""`Studio`: the one facade the CLI (and later the server and workers) call.

Data flows one way: reference audio → `audio` (decode, 16 kHz, trim, loudness) →
`encoder` (d-vector) → `synthesizer` engine conditioning (a `Voice`) → waveform.
Models load once per `Studio` and are reused for every call.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import platformdirs

from deepfake_studio import audio as audio_io
from deepfake_studio.audio import Audio
from deepfake_studio.errors import AudioError, EngineError, VoiceError
from deepfake_studio.synthesizer import (
    DEFAULT_ENGINE,
    ENGINES,
    Engine,
    EngineOptions,
    create_engine,
)
from deepfake_studio.synthesizer.base import ProgressCallback
from deepfake_studio.text import check_text, split_first_clause, split_sentences
from deepfake_studio.voices import Voice, VoiceLibrary, check_name, voice_id

if TYPE_CHECKING:
    from deepfake_studio.detector import DetectionResult, Detector
    from deepfake_studio.encoder import SpeakerEncoder
    from deepfake_studio.provenance import AudioWatermarker

REFERENCE_RATE = 16_000


def default_data_dir() -> Path:
    """`DEEPFAKE_STUDIO_HOME`, else the platform's user data directory."""
    env = os.environ.get("DEEPFAKE_STUDIO_HOME")
    return Path(env) if env else Path(platformdirs.user_data_dir("deepfake-studio"))


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
    first_chunk_chars: int = 60  # a longer first sentence is split at a clause to stream sooner
    min_speed: float = 0.5
    max_speed: float = 2.0
    engines: EngineOptions = field(default_factory=EngineOptions)
    watermark: bool = True  # every generated clip carries the studio's watermark by default


class Studio:
    """Enroll voices, clone speech from a reference or an enrolled voice."""

    def __init__(self, config: StudioConfig | None = None) -> None:
        self.config = config or StudioConfig()
        self.data_dir = Path(self.config.data_dir or default_data_dir())
        self.library = VoiceLibrary(self.data_dir)
        self._encoder: SpeakerEncoder | None = None
        self._engines: dict[str, Engine] = {}
        self._watermarker: AudioWatermarker | None = None
        self._detector: Detector | None = None

    # -- models, loaded once ----------------------------------------------------------------
    @property
    def encoder(self) -> SpeakerEncoder:
        if self._encoder is None:
            from deepfake_studio.encoder import SpeakerEncoder

            self._encoder = SpeakerEncoder()
        return self._encoder

    @property
    def watermarker(self) -> AudioWatermarker:
        if self._watermarker is None:
            from deepfake_studio.provenance import AudioWatermarker

            self._watermarker = AudioWatermarker()
        return self._watermarker

    @property
    def detector(self) -> Detector:
        """The synthetic-speech detector (the ONNX model shipped in the package)."""
        if self._detector is None:
            from deepfake_studio.detector import Detector

            self._detector = Detector()
        return self._detector

    def detect(self, audio: str | Path | Audio) -> DetectionResult:
        """How likely a file or clip is synthetic speech (any length; AudioError if unreadable)."""
        return self.detector.detect(audio)

    def engine(self, name: str | None = None) -> Engine:
        name = name or self.config.default_engine
        if name not in ENGINES:
            raise EngineError(f"unknown engine {name!r} (available: {', '.join(ENGINES)})")
        if name not in self._engines:
            self._engines[name] = create_engine(name, self.config.engines)
        return self._engines[name]

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
    ) -> Voice:
        """Analyse a reference into a Voice (not stored)."""
        clip, source_hash, source_name = self.load_reference(reference)
        chosen = self.engine(engine)
        embedding = self.encoder.embed(clip.samples, clip.sample_rate)
        conditioning = chosen.condition(clip, self.encoder, seed=seed, progress=progress)
        return Voice(
            name=name,
            embedding=np.asarray(embedding, np.float32),
            conditioning=conditioning,
            consent=consent,
            source_sha256=source_hash,
            source_name=source_name,
            reference_seconds=round(clip.duration, 2),
        )

    def enroll(
        self,
        reference: str | Path | Audio,
        name: str,
        consent: str,
        *,
        engine: str | None = None,
        seed: int = 0,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Voice:
        """Analyse a reference once and store it in the voice library under `name`."""
        check_name(name)
        if not consent.strip():
            raise VoiceError('enrolling a voice needs a consent statement (--consent "...")')
        if not overwrite and voice_id(name) in self.library.names():
            raise VoiceError(f"a voice named {name!r} already exists (use --overwrite)")
        voice = self.create_voice(
            reference,
            name=name,
            consent=consent.strip(),
            engine=engine,
            seed=seed,
            progress=progress,
        )
        self.library.save(voice, overwrite=overwrite)
        return voice

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
    ) -> Voice:
        """The voice to speak with: an enrolled one, or one analysed from a reference now."""
        if (voice is None) == (reference is None):
            raise VoiceError("give exactly one of a voice or a reference recording")
        if engine is not None and engine not in ENGINES:
            raise EngineError(f"unknown engine {engine!r} (available: {', '.join(ENGINES)})")
        if reference is not None:
            return self.create_voice(reference, engine=engine, seed=seed, progress=progress)
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
    ) -> Iterator[Audio]:
        """Synthesise `text` sentence by sentence; each piece ends with its pause.

        Each piece is watermarked on its own (unless `watermark` is False, or None and the
        config says so), so a streamed clip is marked wherever it is cut.
        """
        mark = self.config.watermark if watermark is None else watermark
        text = check_text(text)
        if not (self.config.min_speed <= speed <= self.config.max_speed):
            raise EngineError(
                f"speed {speed} is out of range ({self.config.min_speed}-{self.config.max_speed})"
            )
        engine = self.engine(voice.engine)
        sentences = split_sentences(
            text, self.config.sentence_pause_s, self.config.paragraph_pause_s
        )
        sentences = split_first_clause(sentences, self.config.first_chunk_chars)
        for i, sentence in enumerate(sentences):
            samples = engine.synthesize(sentence.text, voice.conditioning, speed)
            piece = audio_io.normalize_loudness(
                Audio(samples, engine.sample_rate), self.config.output_lufs
            )
            if mark:
                piece = self.watermarker.embed(piece)
            pause = np.zeros(int(sentence.pause_after * engine.sample_rate), np.float32)
            if progress:
                progress((i + 1) / len(sentences), f"sentence {i + 1}/{len(sentences)}")
            yield piece.with_samples(np.concatenate([piece.samples, pause]))

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
    ) -> Audio:
        """Speak `text` in an enrolled voice or in the voice of a reference recording."""
        text = check_text(text)  # fail on bad text before any slow analysis
        chosen = self.resolve_voice(voice, reference, engine, seed)
        pieces = list(self.speak(text, chosen, speed=speed, watermark=watermark, progress=progress))
        samples = np.concatenate([p.samples for p in pieces])
        # The last sentence ends a paragraph; a whole clip does not need that trailing pause.
        trailing = int(pieces[-1].sample_rate * self.config.paragraph_pause_s)
        return Audio(samples[: max(1, len(samples) - trailing)], pieces[0].sample_rate)

    # -- writing outputs ---------------------------------------------------------------------
    def save(
        self,
        audio: Audio,
        path: str | Path,
        *,
        text: str,
        voice: Voice | None,
        engine: str,
        watermarked: bool,
        parameters: dict[str, object] | None = None,
    ) -> tuple[Path, Path]:
        """Write a generated clip and its signed provenance record: (audio path, record path).

        The record (sidecar `OUT.provenance.json`, and inside FLAC files) hashes the samples as
        written, names the engine, voice and consent, and is signed with the studio's key.
        """
        from deepfake_studio import provenance

        out = audio_io.save_audio(audio, path)
        key = provenance.load_or_create_key(self.data_dir)
        record = provenance.make_record(
            out,
            key=key,
            text=text,
            engine=engine,
            voice=voice,
            watermarked=watermarked,
            parameters=parameters,
        )
        if out.suffix.lower() == ".flac":
            provenance.embed_in_flac(out, record)
        return out, provenance.write_sidecar(out, record)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
