"""Consent proven by the speaker's own voice (issue 22 item 3).

A typed consent sentence proves nothing: anyone can type it. Here the studio issues a
*challenge*: a consent sentence with the speaker's name that ends in four common words drawn at
random from a fixed list ("I, Ana, agree that Deepfake Studio may clone my voice. River
candle tiger garden."). The speaker records it, and the recording must pass three checks:

* **phrase**: Whisper-base hears the challenge words, in order, so an old recording of the
  speaker cannot be replayed (it would have to contain these random words);
* **speaker**: the GE2E embedding of the consent recording and of the reference are the same
  speaker (cosine at or above a threshold chosen on the shared corpus for a stated false-accept
  rate: `benchmarks/consent_voice.md`);
* **not synthetic**: the recording carries no studio watermark and the studio's detector does
  not call it synthetic (someone holding a victim's recording could otherwise clone the victim
  saying the phrase).

What was checked and measured is kept as `ConsentEvidence` in the voice and in every
provenance record made with it. Challenges are issued and remembered by a `ChallengeStore` in
the data directory: each is used once and expires.

Not covered (said plainly): a live human who sounds like the victim, audio spliced from the
victim's real recordings word by word (none of the three checks looks for splices), and
synthetic speech from generators the detector misses (`README`: unseen families).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from deepfake_studio import audio as audio_io
from deepfake_studio.audio import Audio
from deepfake_studio.errors import VoiceError
from deepfake_studio.voices import check_name

if TYPE_CHECKING:
    from deepfake_studio.detector import Detector
    from deepfake_studio.provenance import AudioWatermarker

METHOD = "voice-challenge-v1"
EMBED_RATE = 16_000
# Common, concrete English words: Whisper-base writes each as one word (no "Dr."-style
# abbreviation, no digits), none is a homophone of another English word or spelt differently
# in British and American English, and no two rhyme or differ by one sound (button/butter,
# pocket/rocket). Pruned once by benchmarks/consent_voice.py: words Whisper-base misheard in
# synthetic readings (cotton as "carton", tennis as "10 is", doctor as "Dr.") were dropped.
# 4 of 94, in order: 7.3e7 phrases.
# fmt: off
CHALLENGE_WORDS: tuple[str, ...] = (
    "apple", "anchor", "basket", "bottle", "bucket", "butter", "camel", "carpet", "castle",
    "cherry", "chicken", "circle", "coffee", "copper", "cousin", "dentist", "dinner", "dolphin",
    "dragon", "engine", "falcon", "farmer", "feather", "finger", "forest", "garden", "goblin",
    "guitar", "hammer", "helmet", "honey", "hotel", "insect", "island", "jacket", "jelly",
    "jungle", "kitchen", "ladder", "lemon", "lizard", "lobster", "magnet", "mango", "market",
    "melon", "mirror", "monkey", "mountain", "muffin", "music", "needle", "ocean", "office",
    "orange", "oyster", "pencil", "pepper", "pickle", "picnic", "pigeon", "pillow", "planet",
    "pumpkin", "puppet", "rabbit", "robot", "rocket", "saddle", "season", "signal", "silver",
    "sister", "spider", "sugar", "summer", "table", "thunder", "ticket", "tiger", "timber",
    "toaster", "tunnel", "turkey", "turtle", "velvet", "village", "violin", "window", "winter",
    "wizard", "yellow", "zebra", "zipper",
)
# fmt: on
SENTENCE = "I, {name}, agree that Deepfake Studio may clone my voice. {phrase}."


@dataclass(frozen=True)
class ConsentConfig:
    """How a consent recording is checked; defaults are the measured, documented ones."""

    words: int = 4  # challenge words per phrase
    # Of them Whisper-base must hear, in order. 3, not 4: one misheard word should not refuse
    # the speaker (synthetic readings: all 4 heard in 60 %, 3 or more in 87 %, before the word
    # list was pruned; 68 % / 93 % since), and no replayed recording reached even 2 (0 of
    # 3,150 random challenges on 63 held-out real recordings): benchmarks/consent_voice.md.
    words_needed: int = 3
    # GE2E cosine, consent recording vs reference: chosen on the train speakers of the shared
    # corpus for at most 0.5 % false accepts among same-corpus strangers (consent recordings
    # with at least `min_speech_s` of speech); held-out FAR and FRR in
    # benchmarks/consent_voice.md (benchmarks/consent_voice.py).
    speaker_threshold: float = 0.79
    challenge_ttl_s: float = 3600.0  # an issued phrase is valid this long, once
    # The consent sentence ("I, NAME, agree that ... Bright river seven lamps.") takes about
    # 5 s to say, so a recording with less than 4 s of speech cannot hold it; and the speaker
    # check misses far more on short recordings (session 11, held-out: 20 of 67 pairs with
    # under 4 s of consent or 5 s of reference refused, 1 of 65 longer ones).
    min_speech_s: float = 4.0
    max_recording_s: float = 60.0
    # The detector's probability at or above which a consent recording counts as synthetic.
    # Higher than the detector's own threshold (0.757, at most 2 % of real dev clips flagged):
    # chosen on the train speakers' real consent-like recordings for at most 1 % refused
    # (benchmarks/consent_voice.py), because every refused real speaker is a false reject.
    # The studio's own output is refused by its watermark whatever this is; another
    # generator's passes more easily than at the detector's own threshold.
    detector_threshold: float = 0.86


class ConsentError(VoiceError):
    """A consent recording that does not prove consent, or a challenge that is not valid."""


@dataclass(frozen=True)
class Challenge:
    """A consent sentence issued for one speaker name: valid once, until `expires`."""

    id: str
    name: str
    words: tuple[str, ...]
    issued: str  # ISO 8601, UTC
    expires: str

    @property
    def phrase(self) -> str:
        return " ".join(self.words).capitalize()

    @property
    def sentence(self) -> str:
        """What the speaker reads aloud."""
        return SENTENCE.format(name=self.name, phrase=self.phrase)

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= datetime.fromisoformat(self.expires)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "words": list(self.words), "sentence": self.sentence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Challenge:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            words=tuple(str(w) for w in data["words"]),
            issued=str(data["issued"]),
            expires=str(data["expires"]),
        )


def new_challenge(name: str, config: ConsentConfig | None = None) -> Challenge:
    """A fresh challenge for `name`: words drawn without repeats by the OS's secure generator."""
    config = config or ConsentConfig()
    name = check_name(name)
    pool = list(CHALLENGE_WORDS)
    words = tuple(pool.pop(secrets.randbelow(len(pool))) for _ in range(config.words))
    now = datetime.now(UTC)  # to the microsecond: "the newest" must be one challenge
    return Challenge(
        id=uuid.uuid4().hex,
        name=name,
        words=words,
        issued=now.isoformat(),
        expires=(now + timedelta(seconds=config.challenge_ttl_s)).isoformat(),
    )


class ChallengeStore:
    """Issued challenges under `DATA_DIR/consent/challenges/`, one JSON file each.

    Taking a challenge deletes its file, and only one process can delete a file: a phrase is
    used at most once, however many requests race for it.
    """

    def __init__(self, data_dir: Path, config: ConsentConfig | None = None) -> None:
        self.folder = Path(data_dir) / "consent" / "challenges"
        self.config = config or ConsentConfig()

    def issue(self, name: str) -> Challenge:
        """A fresh random challenge for `name`, remembered until it is taken or expires."""
        return self.add(new_challenge(name, self.config))

    def add(self, challenge: Challenge) -> Challenge:
        """Remember a challenge made elsewhere (e.g. with words a test recording contains)."""
        if not re.fullmatch(r"[0-9a-f]{32}", challenge.id):
            raise ConsentError(f"a challenge id is 32 hex digits, not {challenge.id!r}")
        self._drop_expired()
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{challenge.id}.tmp"
        tmp.write_text(json.dumps(challenge.as_dict()), encoding="utf-8")
        os.replace(tmp, self.folder / f"{challenge.id}.json")
        return challenge

    def take(self, challenge_id: str | None, name: str) -> Challenge:
        """Use up the challenge `challenge_id` (None: the newest open one for `name`); a
        ConsentError if it is unknown, used, expired or issued for another name."""
        if challenge_id is None:
            challenge_id = self._newest_for(name)
        if not re.fullmatch(r"[0-9a-f]{32}", challenge_id or ""):
            raise ConsentError(f"unknown consent challenge {challenge_id!r}")
        path = self.folder / f"{challenge_id}.json"
        claimed = path.with_name(f".{challenge_id}.{uuid.uuid4().hex}.taken")
        try:
            os.rename(path, claimed)  # atomic: exactly one taker wins
        except FileNotFoundError:
            raise ConsentError(
                f"consent challenge {challenge_id} is unknown or was already used; "
                "ask for a new phrase"
            ) from None
        try:
            challenge = Challenge.from_dict(json.loads(claimed.read_text(encoding="utf-8")))
        finally:
            claimed.unlink(missing_ok=True)
        if challenge.expired():
            raise ConsentError(f"consent challenge {challenge_id} expired; ask for a new phrase")
        if challenge.name.casefold() != check_name(name).casefold():
            raise ConsentError(
                f"consent challenge {challenge_id} was issued for {challenge.name!r}, not {name!r}"
            )
        return challenge

    def _open(self) -> list[Challenge]:
        found = []
        for path in self.folder.glob("*.json") if self.folder.is_dir() else []:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                found.append(Challenge.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        return found

    def _newest_for(self, name: str) -> str:
        mine = [
            c
            for c in self._open()
            if c.name.casefold() == name.strip().casefold() and not c.expired()
        ]
        if not mine:
            raise ConsentError(
                f"no open consent phrase for {name!r}: get one with "
                f"`deepfake-studio consent phrase --name {name!r}` and record it"
            )
        return max(mine, key=lambda c: c.issued).id

    def _drop_expired(self) -> None:
        for challenge in self._open():
            if challenge.expired():
                (self.folder / f"{challenge.id}.json").unlink(missing_ok=True)


class Transcribes(Protocol):
    def transcribe(self, samples: np.ndarray, sample_rate: int, language: str = "en") -> str: ...


class Embeds(Protocol):
    def embed(
        self, samples: Any, sample_rate: int | None = None, *, preprocess: bool = True
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class ConsentEvidence:
    """What the checks saw: kept in the voice and in every provenance record made with it."""

    method: str
    challenge: dict[str, Any]  # id, name, words, sentence, issued, expires
    recording_sha256: str
    recording_seconds: float
    reference_sha256: str
    transcript: str
    words_heard: int
    words_needed: int
    speaker_similarity: float
    speaker_threshold: float
    watermark_score: float
    watermark_threshold: float
    detector_probability: float
    detector_threshold: float
    checks: dict[str, bool]  # phrase, speaker, not_synthetic
    accepted: bool
    checked: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    watermark_found_by: list[str] = field(default_factory=list)  # the audio layers that did

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def failure(self) -> str:
        """One line naming each failed check and what it measured ('' if accepted)."""
        reasons = []
        if not self.checks["phrase"]:
            reasons.append(
                f"phrase check failed: heard {self.words_heard} of the "
                f"{len(self.challenge['words'])} challenge words in order "
                f"({self.words_needed} needed; Whisper heard {self.transcript[:80]!r})"
            )
        if not self.checks["speaker"]:
            reasons.append(
                f"speaker check failed: the consent recording and the reference sound like "
                f"different speakers (GE2E similarity {self.speaker_similarity:.3f} < "
                f"{self.speaker_threshold:.2f})"
            )
        if not self.checks["not_synthetic"]:
            why = []
            if self.watermark_found_by or self.watermark_score >= self.watermark_threshold:
                layers = " and ".join(self.watermark_found_by) or "perthnet"
                why.append(
                    f"it carries the studio watermark (found by {layers}; PerthNet score "
                    f"{self.watermark_score:.2f})"
                )
            if self.detector_probability >= self.detector_threshold:
                why.append(
                    f"the detector calls it synthetic (probability "
                    f"{self.detector_probability:.2f} >= {self.detector_threshold:.2f})"
                )
            reasons.append("synthetic-speech check failed: " + " and ".join(why))
        return "consent recording refused: " + "; ".join(reasons) if reasons else ""


def words_heard_in_order(wanted: Sequence[str], transcript: str) -> int:
    """How many of `wanted` the transcript contains in order (a plural counts as the word)."""
    from deepfake_studio.evaluation.asr import normalize_words

    heard = [_singular(w) for w in normalize_words(transcript.replace("-", " "))]
    found, start = 0, 0
    for word in wanted:
        target = _singular(word.lower())
        for i in range(start, len(heard)):
            if heard[i] == target:
                found, start = found + 1, i + 1
                break
    return found


def _singular(word: str) -> str:
    """'tigers', "tiger's", "tigers'" → 'tiger' (Whisper writes what it hears, possessives too)."""
    word = word.strip("'").removesuffix("'s")
    return word[:-1] if word.endswith("s") and len(word) > 3 else word


def embedding_clip(audio: Audio) -> Audio:
    """A recording as the speaker check embeds it: 16 kHz, silence trimmed, long pauses cut,
    loudness levelled (what `Studio.load_reference` does to a reference)."""
    clip = audio_io.resample(audio, EMBED_RATE)
    clip = audio_io.remove_long_pauses(audio_io.trim_silence(clip))
    return audio_io.normalize_loudness(clip, -20.0)


def speaker_similarity(encoder: Embeds, consent: Audio, reference: Audio) -> float:
    """GE2E cosine between two recordings, each prepared by `embedding_clip`."""
    a = encoder.embed(embedding_clip(consent).samples, EMBED_RATE)
    b = encoder.embed(embedding_clip(reference).samples, EMBED_RATE)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


@dataclass
class ConsentChecker:
    """The three checks over models the caller already holds (loaded once per process)."""

    transcriber: Transcribes
    encoder: Embeds
    detector: Detector
    watermarker: AudioWatermarker
    config: ConsentConfig = field(default_factory=ConsentConfig)

    def check(
        self,
        challenge: Challenge,
        recording: str | Path | Audio,
        reference: str | Path | Audio,
    ) -> ConsentEvidence:
        """Run every check (none stops the others) and return the evidence; raising is the
        caller's choice (`verify`)."""
        consent_audio, recording_sha = _load(recording)
        reference_audio, reference_sha = _load(reference)
        speech = audio_io.speech_seconds(audio_io.resample(consent_audio, EMBED_RATE))
        if speech < self.config.min_speech_s:
            raise ConsentError(
                f"the consent recording has {speech:.1f} s of speech; read the whole consent "
                "sentence aloud"
            )
        if consent_audio.duration > self.config.max_recording_s:
            raise ConsentError(
                f"the consent recording is {consent_audio.duration:.0f} s long; "
                f"at most {self.config.max_recording_s:.0f} s"
            )
        whisper_in = audio_io.resample(consent_audio, EMBED_RATE)
        transcript = self.transcriber.transcribe(whisper_in.samples, EMBED_RATE)
        heard = words_heard_in_order(challenge.words, transcript)
        similarity = speaker_similarity(self.encoder, consent_audio, reference_audio)
        mark = self.watermarker.detect(consent_audio)
        detection = self.detector.detect(consent_audio)
        checks = {
            "phrase": heard >= self.config.words_needed,
            "speaker": similarity >= self.config.speaker_threshold,
            "not_synthetic": not mark.present
            and detection.probability < self.config.detector_threshold,
        }
        return ConsentEvidence(
            method=METHOD,
            challenge=challenge.as_dict(),
            recording_sha256=recording_sha,
            recording_seconds=round(consent_audio.duration, 2),
            reference_sha256=reference_sha,
            transcript=transcript,
            words_heard=heard,
            words_needed=self.config.words_needed,
            speaker_similarity=round(similarity, 4),
            speaker_threshold=self.config.speaker_threshold,
            watermark_score=round(float(mark.score), 4),
            watermark_threshold=float(mark.threshold),
            watermark_found_by=list(mark.found_by),
            detector_probability=round(float(detection.probability), 4),
            detector_threshold=self.config.detector_threshold,
            checks=checks,
            accepted=all(checks.values()),
        )

    def verify(
        self,
        challenge: Challenge,
        recording: str | Path | Audio,
        reference: str | Path | Audio,
    ) -> ConsentEvidence:
        """`check`, raising a one-line ConsentError naming each failed check."""
        evidence = self.check(challenge, recording, reference)
        if not evidence.accepted:
            raise ConsentError(evidence.failure())
        return evidence


def _load(source: str | Path | Audio) -> tuple[Audio, str]:
    """Decoded audio and the SHA-256 of the file (of the samples for in-memory audio)."""
    if isinstance(source, Audio):
        return source, hashlib.sha256(source.samples.tobytes()).hexdigest()
    path = Path(source)
    clip = audio_io.load_audio(path)  # an AudioError names the file
    return clip, hashlib.sha256(path.read_bytes()).hexdigest()
