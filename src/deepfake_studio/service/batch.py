"""`deepfake-studio batch`: many clone jobs from a CSV file, in this process or on workers.

CSV columns (a header row is required; UTF-8, an Excel BOM is fine):

    text       the text to speak                                   (required)
    out        output file name in the output folder: .wav/.flac/.mp3  (required)
    voice      an enrolled voice id or name   } exactly one of the two per row
    reference  a recording to clone, relative to the CSV's folder  }
    consent    the speaker's consent statement        (required with a reference)
    engine, speed, seed                                             (optional)
    language   en-us (default), en-gb, es, fr, it, pt-br, hi, ja, zh    (optional, kokoro)
    quality    with a reference: quick, standard or best (default: the engine's)  (optional, kokoro)
    emotion    neutral (default), happy, sad, angry, fearful, surprised   (optional)
    emotion_strength  0-1 (default 1; 0 is the neutral speech)       (optional)
    reference_text  with a reference: the words spoken in it (standard, best; else transcribed)

Every row is checked before anything runs, so a typo fails in one line, not after an hour.
Resumable: an output whose audio and signed record both exist is finished and skipped; both
are written atomically (temp file, then rename), so a half-written file never counts. With a
broker, each row's task id is derived from its content, so a re-run finds results that
workers finished while the batch was not running instead of sending the rows again.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfake_studio import audio as audio_io
from deepfake_studio.errors import StudioError
from deepfake_studio.provenance import sidecar_path, text_sha256
from deepfake_studio.service.runner import INTERNAL_ERROR, compute_clone, save_clone
from deepfake_studio.studio import Studio
from deepfake_studio.synthesizer import ENGINES
from deepfake_studio.synthesizer.emotion import (
    DEFAULT_EMOTION,
    check_emotion,
    check_engine_emotion,
    emotion_fields,
)
from deepfake_studio.synthesizer.languages import DEFAULT_LANGUAGE, check_language
from deepfake_studio.text import check_text
from deepfake_studio.voices import Voice, voice_id

COLUMNS = (
    "text",
    "out",
    "voice",
    "reference",
    "consent",
    "engine",
    "speed",
    "seed",
    "language",
    "quality",
    "reference_text",
    "emotion",
    "emotion_strength",
)
REQUIRED = ("text", "out")
_NAMESPACE = uuid.UUID("8f0b3f44-8a5e-4c1f-9a53-2a4b4d1d5e61")  # batch task ids (uuid5)


class BatchError(StudioError):
    """A jobs file that cannot be used as it is."""


@dataclass(frozen=True)
class BatchRow:
    """One checked row of the jobs file."""

    line: int  # line number in the CSV, for messages
    text: str
    out: Path
    voice: str | None
    reference: Path | None
    engine: str | None
    speed: float
    seed: int
    consent: str | None = None  # with a reference: the speaker's consent statement
    language: str = DEFAULT_LANGUAGE
    quality: str | None = None  # with a reference: kokoro's enrollment quality (None: default)
    reference_text: str | None = None  # with a reference: the words spoken in it
    emotion: str = DEFAULT_EMOTION
    emotion_strength: float = 1.0

    def request(self) -> dict[str, Any]:
        """The same request a server clone job carries."""
        return {
            "text": self.text,
            "voice": self.voice,
            "reference": self.reference.name if self.reference else None,
            "engine": self.engine,
            "speed": self.speed,
            "seed": self.seed,
            "format": self.out.suffix.lstrip(".").lower(),
            **({"consent": self.consent} if self.reference else {}),
            # Only a non-default language joins the request: the task ids of rows written
            # before the column existed stay the same, so their batches still resume.
            **({"language": self.language} if self.language != DEFAULT_LANGUAGE else {}),
            # Likewise only when given (and a row with another quality is another job).
            **({"quality": self.quality} if self.quality is not None else {}),
            **({"reference_text": self.reference_text} if self.reference_text is not None else {}),
            **emotion_fields(self.emotion, self.emotion_strength),
        }

    def task_id(self) -> str:
        """Derived from everything that decides the output, so a re-run maps to the same job."""
        reference = _sha256(self.reference) if self.reference else None
        key = json.dumps([str(self.out.resolve()), self.request(), reference], sort_keys=True)
        return str(uuid.uuid5(_NAMESPACE, key))


@dataclass
class BatchReport:
    done: list[BatchRow] = field(default_factory=list)
    skipped: list[BatchRow] = field(default_factory=list)
    failed: list[tuple[BatchRow, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.done)} done, {len(self.skipped)} skipped (already there), "
            f"{len(self.failed)} failed"
        )


def finished(row: BatchRow) -> bool:
    """An output counts only when its audio and its signed record are both in place, and the
    record is for this row's text (an edited row is made again)."""
    record = sidecar_path(row.out)
    if not (row.out.is_file() and record.is_file()):
        return False
    try:
        return json.loads(record.read_text(encoding="utf-8")).get("text_sha256") == text_sha256(
            row.text
        )
    except (OSError, ValueError, AttributeError):
        return False


def read_jobs(csv_path: Path, out_dir: Path, studio: Studio) -> list[BatchRow]:
    """Parse and check the jobs file; BatchError (one line naming the line) on any problem."""
    label = csv_path.name
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BatchError(f"jobs file not found: {csv_path}") from None
    except UnicodeDecodeError:
        raise BatchError(f"{label} is not UTF-8 text") from None
    except OSError as e:
        raise BatchError(f"cannot read {label}: {e.strerror or type(e).__name__}") from None
    try:
        reader = csv.DictReader(text.splitlines(), strict=True)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if not any(header):
            raise BatchError(f"{label} is empty: it needs a header row ({', '.join(COLUMNS)})")
        unknown = [h for h in header if h not in COLUMNS]
        if unknown:
            raise BatchError(
                f"{label}: unknown column {unknown[0]!r} (columns: {', '.join(COLUMNS)})"
            )
        missing = [c for c in REQUIRED if c not in header]
        if missing or ("voice" not in header and "reference" not in header):
            need = missing or ["voice or reference"]
            raise BatchError(f"{label}: missing column {need[0]!r}")
        reader.fieldnames = header
        rows = []
        seen: dict[Path, int] = {}
        for raw in reader:
            line = reader.line_num
            if None in raw:
                raise BatchError(f"{label} line {line}: more cells than columns")
            if not any((v or "").strip() for v in raw.values()):
                continue  # blank line
            row = _check_row(raw, line, csv_path.parent, out_dir, studio, label)
            if row.out in seen:
                raise BatchError(
                    f"{label} line {line}: output {row.out.name!r} is already "
                    f"written by line {seen[row.out]}"
                )
            seen[row.out] = line
            rows.append(row)
    except csv.Error as e:
        raise BatchError(f"{label} line {reader.line_num}: not valid CSV ({e})") from None
    if not rows:
        raise BatchError(f"{label} has no jobs (only a header)")
    return rows


def _check_row(
    raw: Mapping[str, str | None],
    line: int,
    base: Path,
    out_dir: Path,
    studio: Studio,
    label: str,
) -> BatchRow:
    def cell(name: str) -> str:
        return (raw.get(name) or "").strip()

    def fail(reason: str) -> BatchError:
        return BatchError(f"{label} line {line}: {reason}")

    try:
        text = check_text(raw.get("text") or "")
    except StudioError as e:
        raise fail(str(e)) from None
    out = cell("out")
    if not out or Path(out).name != out or out.startswith("."):
        raise fail(f"out must be a plain file name like clip1.wav, not {out!r}")
    suffix = Path(out).suffix.lower()
    if suffix not in audio_io.SUPPORTED_OUTPUT:
        raise fail(f"out {out!r} must end in .wav, .flac or .mp3")
    if suffix == ".mp3" and audio_io.ffmpeg_path() is None:
        raise fail("mp3 output needs ffmpeg; use .wav or .flac")
    voice, reference = cell("voice") or None, cell("reference") or None
    if (voice is None) == (reference is None):
        raise fail("give exactly one of voice or reference")
    if voice is not None and voice_id(voice) not in studio.library.names():
        known = ", ".join(studio.library.names()) or "none enrolled yet"
        raise fail(f"unknown voice {voice!r} (known: {known})")
    ref_path, consent = None, None
    if reference is not None:
        ref_path = (base / reference).resolve()
        if not ref_path.is_file():
            raise fail(f"reference file not found: {reference}")
        consent = cell("consent")
        if not consent:
            raise fail("a reference needs the speaker's consent statement (a consent column)")
    engine = cell("engine") or None
    if engine is not None and engine not in ENGINES:
        raise fail(f"unknown engine {engine!r} (available: {', '.join(ENGINES)})")
    try:
        speed = float(cell("speed") or 1.0)
        seed = int(cell("seed") or 0)
    except ValueError:
        raise fail("speed must be a number and seed a whole number") from None
    low, high = studio.config.min_speed, studio.config.max_speed
    if not low <= speed <= high:
        raise fail(f"speed {speed} is out of range ({low}-{high})")
    try:
        language = check_language(cell("language") or None)
    except StudioError as e:
        raise fail(str(e)) from None
    quality, reference_text = cell("quality") or None, cell("reference_text") or None
    if reference is None and (quality is not None or reference_text is not None):
        raise fail("quality and reference_text go with a reference (a voice is already fitted)")
    try:
        studio.check_enroll_options(engine, quality, reference_text)
        emotion, strength = check_emotion(cell("emotion") or None, cell("emotion_strength") or None)
        if reference is not None:  # a voice row's engine is checked when the voice is loaded
            check_engine_emotion(engine or studio.config.default_engine, emotion, strength)
    except StudioError as e:
        raise fail(str(e)) from None
    return BatchRow(
        line,
        text,
        out_dir / out,
        voice,
        ref_path,
        engine,
        speed,
        seed,
        consent,
        language,
        quality,
        reference_text,
        emotion,
        strength,
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _failure(row: BatchRow, error: BaseException) -> str:
    if isinstance(error, StudioError):
        return str(error)
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{INTERNAL_ERROR.split(' (')[0]} ({type(error).__name__}: {first})"


# -- running ----------------------------------------------------------------------------------
OnDone = Callable[[BatchRow, str | None], None]  # (row, error or None) after each finished row


def run_local(studio: Studio, rows: list[BatchRow], on_done: OnDone) -> BatchReport:
    """Run the pending rows one after another in this process (models load once)."""
    report = BatchReport()
    voices: dict[str, Voice] = {}
    for row in rows:
        if finished(row):
            report.skipped.append(row)
            continue
        try:
            voice = None
            if row.voice is not None:
                voice = voices.get(row.voice) or voices.setdefault(
                    row.voice, studio.voice(row.voice)
                )
            request = row.request()
            output = compute_clone(studio, request, row.reference, voice, lambda p, t: None)
            save_clone(studio, output, row.out, request)
        except Exception as e:
            report.failed.append((row, _failure(row, e)))
            on_done(row, report.failed[-1][1])
        else:
            report.done.append(row)
            on_done(row, None)
    return report


def run_distributed(
    studio: Studio,
    rows: list[BatchRow],
    dispatcher: Any,
    on_done: OnDone,
    *,
    on_idle: Callable[[float], None] | None = None,
) -> BatchReport:
    """Send the pending rows to workers and write each result as it arrives.

    `dispatcher` is a `distributed.Dispatcher`. Outputs are written and signed here, with
    this machine's key. `on_idle(seconds)` is called while nothing has finished for a while
    (the caller can check that workers are running).
    """
    from deepfake_studio.service.distributed import clone_output, clone_payload, failure_line

    report = BatchReport()
    pending: dict[str, BatchRow] = {}
    for row in rows:
        if finished(row):
            report.skipped.append(row)
        else:
            pending[row.task_id()] = row
    if not pending:
        return report
    # Rows already in the queue or with a result (a previous run was interrupted) are not
    # sent again: that would run them twice.
    queued = dispatcher.queued_ids()  # before the states: see CeleryRunner._recover
    states = dispatcher.states(pending)
    voices: dict[str, Voice] = {}
    for task_id, row in list(pending.items()):
        if states[task_id]["status"] != "PENDING" or task_id in queued:
            continue
        try:
            voice = None
            if row.voice is not None:
                voice = voices.get(row.voice) or voices.setdefault(
                    row.voice, studio.voice(row.voice)
                )
            payload = clone_payload(row.request(), row.reference, voice)
        except (StudioError, OSError) as e:  # e.g. a voice deleted or corrupt since the check
            del pending[task_id]
            report.failed.append((row, _failure(row, e)))
            on_done(row, report.failed[-1][1])
            continue
        dispatcher.send("clone", task_id, payload)
    last_change = time.monotonic()
    while pending:
        time.sleep(dispatcher.config.poll_interval_s)
        for task_id, meta in dispatcher.states(pending).items():
            status = meta.get("status")
            if status not in ("SUCCESS", "FAILURE", "REVOKED"):
                continue
            row = pending.pop(task_id)
            last_change = time.monotonic()
            result = meta.get("result")
            error: str | None = None
            try:
                if status != "SUCCESS" or not isinstance(result, dict):
                    error = f"{INTERNAL_ERROR.split(' (')[0]} ({failure_line(meta)})"
                elif not result.get("ok"):
                    error = str(result.get("error") or "failed")
                else:
                    save_clone(studio, clone_output(result), row.out, row.request())
            except Exception as e:
                error = _failure(row, e)
            if error is None:
                report.done.append(row)
            else:
                report.failed.append((row, error))
            on_done(row, error)
            dispatcher.forget(task_id)
        if on_idle is not None and pending:
            on_idle(time.monotonic() - last_change)
    return report
