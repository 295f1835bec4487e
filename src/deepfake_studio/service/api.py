"""The REST API (`/api/v1`): a thin HTTP layer over `Studio`, the job store and a runner.

Slow work (enrolling a voice, synthesising) becomes a job: the request is checked at once
(text, voice id, engine, speed, format, and the upload is decoded and checked for speech),
so mistakes come back as 4xx immediately, then the job is queued and its id returned with
202. Clients poll `GET /jobs/{id}` and fetch `GET /jobs/{id}/audio`.

Every error is JSON `{"error": "one line"}`: StudioError → 422 (400 for the base class),
unknown ids and unmatched routes → 404, unfinished audio → 409, oversized uploads → 413,
wrong file or body type → 415, malformed fields → 422, missing/wrong token → 401.

One name per thing: a job is `job_id`, a voice is `voice_id`, in requests and answers alike.
The names of release 0.1 (`id` in a job or voice, `voice` in a request or result) are still
accepted and sent for one more release (deprecated: marked so in the OpenAPI schema).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from deepfake_studio import __version__
from deepfake_studio import audio as audio_io
from deepfake_studio.consent import ConsentError
from deepfake_studio.errors import (
    AudioError,
    EngineError,
    FaceError,
    MediaError,
    StudioError,
    TextError,
    VoiceError,
)
from deepfake_studio.faceswap.config import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from deepfake_studio.service.runner import (
    EmbeddedRunner,
    JobRunner,
    detection_summary,
    stream_clone,
)
from deepfake_studio.service.shared import API_PREFIX, StreamKeys, check_faceswap
from deepfake_studio.service.store import Job, JobKind, JobState, JobStore, UnknownJobError
from deepfake_studio.studio import (
    ENROLL_QUALITIES,
    GeneratedAudio,
    Studio,
    check_consent,
    enrollment_quality,
)
from deepfake_studio.synthesizer import ENGINES
from deepfake_studio.synthesizer.emotion import (
    DEFAULT_EMOTION,
    EMOTIONS,
    check_emotion,
    check_engine_emotion,
    emotion_fields,
)
from deepfake_studio.synthesizer.kokoro.engine import QUALITY_CARDS, quality_similarities
from deepfake_studio.synthesizer.languages import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    check_engine_language,
    check_language,
)
from deepfake_studio.text import check_text
from deepfake_studio.voices import Voice, check_name, voice_id
from deepfake_studio.wav_stream import pcm16, wav_header

log = logging.getLogger(__name__)

# Room for the text fields and multipart framing on top of the file itself (text ≤ 20k chars).
FORM_OVERHEAD_BYTES = 256 * 1024
MAX_JSON_BYTES = 1024 * 1024
OUTPUT_FORMATS = ("wav", "flac", "mp3")
MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}
FACESWAP_MEDIA_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "mp4": "video/mp4",
}


@dataclass(frozen=True)
class ApiLimits:
    """What one client may send. Checked before any work is done."""

    max_upload_bytes: int = 20 * 2**20  # one reference recording; decoded, not trusted by name
    jobs_per_minute: int = 120  # submissions per token (per client address without one); 0: off


class RateLimiter:
    """Sliding one-minute window of job submissions per key (token or client address).

    Only submissions count: they start model work, while polling a job is cheap and a UI
    polls often.
    """

    def __init__(self, per_minute: int, window_s: float = 60.0) -> None:
        self.per_minute, self.window_s = per_minute, window_s
        self._times: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Count one submission for `key`, or raise 429 with the seconds to wait."""
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        with self._lock:
            times = self._times.setdefault(key, deque())
            while times and now - times[0] >= self.window_s:
                times.popleft()
            if len(times) >= self.per_minute:
                wait = max(1, math.ceil(self.window_s - (now - times[0])))
                raise HTTPException(
                    429,
                    f"too many jobs: at most {self.per_minute} a minute; try again in {wait} s",
                    headers={"Retry-After": str(wait)},
                )
            times.append(now)


# Used only when an upload's file name has no suffix.
_SUFFIX_BY_CONTENT_TYPE = {
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/flac": ".flac",
    "audio/x-flac": ".flac",
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/x-m4a": ".m4a",
    "audio/webm": ".webm",
    "audio/opus": ".opus",
}
_CHUNK = 1 << 20
# Module level: FastAPI resolves the (postponed) annotations of dependencies in module globals.
_bearer = HTTPBearer(auto_error=False, description="The token the server was started with.")
M = TypeVar("M", bound=BaseModel)


# -- schemas ----------------------------------------------------------------------------------
_QUALITY_NOTE = (
    "Kokoro's enrollment quality: "
    + "; ".join(f"{q} ({card.method}, {card.time} on 2 cores)" for q, card in QUALITY_CARDS.items())
    + f". Normalised similarity to unseen speakers: {quality_similarities()} (README); "
    "default: the engine's (standard unless configured)."
)
_REFERENCE_TEXT_NOTE = (
    "The words spoken in the reference (standard and best; else Whisper transcribes them)."
)
MAX_REFERENCE_TEXT_CHARS = 5_000  # a minute of speech (the most a reference is used for) is ~1,000


class ErrorOut(BaseModel):
    error: str = Field(description="One line saying what is wrong.")


class Accepted(BaseModel):
    job_id: str = Field(description="The job's id: poll GET /jobs/{job_id}.")
    state: JobState
    url: str = Field(description="Where to poll the job.")
    voice_id: str | None = Field(None, description="For enrollment: the id the voice will have.")


DEPRECATED_NOTE = "Deprecated 0.1 name (removed in 0.3) of"


class JobOut(BaseModel):
    job_id: str = Field(description="The job's id (as returned on submission).")
    id: str = Field(description=f"{DEPRECATED_NOTE} job_id.", deprecated=True)
    kind: JobKind
    state: JobState
    progress: float = Field(ge=0, le=1)
    message: str
    error: str | None
    request: dict[str, Any]
    result: dict[str, Any] | None
    created: str
    updated: str
    audio_url: str | None = Field(None, description="Set once a synthesis job is done.")
    result_url: str | None = Field(
        None, description="Set once a face-swap job is done: the image or video."
    )


class JobPage(BaseModel):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int


class VoiceOut(BaseModel):
    voice_id: str = Field(description="The voice's id: what /synthesize takes as voice_id.")
    id: str = Field(description=f"{DEPRECATED_NOTE} voice_id.", deprecated=True)
    name: str
    engine: str
    created: str
    consent: str
    source_name: str
    reference_seconds: float
    speed: float
    consent_evidence: dict[str, Any] | None = Field(
        None,
        description="Consent proven by voice: the challenge, the recording's hash and each "
        "check's score and verdict; null for a typed statement.",
    )
    quality: str | None = Field(
        None,
        description="kokoro: the quality the voice was enrolled with "
        f"({', '.join(ENROLL_QUALITIES)}); null for other engines.",
    )


class VoiceList(BaseModel):
    voices: list[VoiceOut]
    errors: list[str] = Field(description="Voice folders that cannot be used (e.g. corrupt).")


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    models_loaded: list[str] = Field(description="Models already in memory (loaded on first use).")
    queue_depth: int
    jobs_running: int


class DetectedSegment(BaseModel):
    start: float = Field(description="Seconds from the start of the clip.")
    end: float
    probability: float = Field(description="Calibrated probability that this window is synthetic.")
    speech: bool = Field(description="The window holds enough speech to count in the verdict.")


class WatermarkVerdict(BaseModel):
    present: bool = Field(
        description="Either audio layer found the mark (images and video: score >= threshold)."
    )
    score: float = Field(
        description="How clearly the mark reads back: 1 a perfect read, near 0 for unmarked "
        "files; the same scale for audio, images and video; not a probability."
    )
    threshold: float = Field(description="The detector's threshold for this medium.")
    confidence: float = Field(description=f"{DEPRECATED_NOTE} score.", deprecated=True)
    found_by: list[str] = Field(
        default_factory=list,
        description='Audio: the layers that found the mark ("perthnet", "spread-spectrum": '
        "the layer keyed from this studio's signing key); score and threshold are PerthNet's.",
    )


class Detection(BaseModel):
    probability: float = Field(description="Calibrated probability that the clip is synthetic.")
    label: Literal["real", "synthetic"]
    threshold: float = Field(description="The shipped threshold the label is taken at.")
    duration: float
    segments: list[DetectedSegment]
    watermark: WatermarkVerdict = Field(
        description="The Deepfake Studio watermark (PerthNet and the studio's keyed layer)."
    )


class SynthesisRequest(BaseModel):
    """Body of POST /synthesize (JSON, or the same fields as multipart form fields)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="Text to speak (up to 20,000 characters).")
    voice_id: str | None = Field(None, description="An enrolled voice; or upload `reference`.")
    voice: str | None = Field(None, description=f"{DEPRECATED_NOTE} voice_id.", deprecated=True)
    engine: str | None = Field(None, description="kokoro or piper; default: the voice's engine.")
    speed: float = Field(1.0, allow_inf_nan=False, description="Relative speaking rate.")
    seed: int = Field(0, description="Seed for analysing an uploaded reference.")
    format: Literal["wav", "flac", "mp3"] = "wav"
    consent: str | None = Field(
        None,
        description="With a `reference` upload: the speaker's consent statement (required, "
        "as for enrolling; kept in the provenance record).",
    )
    language: str = Field(
        DEFAULT_LANGUAGE,
        description=f"Language of the text: {', '.join(LANGUAGES)} (all but en-us: kokoro).",
    )
    quality: str | None = Field(None, description=f"With a `reference` upload. {_QUALITY_NOTE}")
    reference_text: str | None = Field(
        None,
        max_length=MAX_REFERENCE_TEXT_CHARS,
        description=f"With a `reference` upload. {_REFERENCE_TEXT_NOTE}",
    )
    emotion: str = Field(
        DEFAULT_EMOTION,
        description=f"One of {', '.join(EMOTIONS)} (kokoro and transformer voices).",
    )
    emotion_strength: float = Field(
        1.0, allow_inf_nan=False, description="0-1; 0 is exactly the neutral speech."
    )

    @model_validator(mode="after")
    def _one_voice_name(self) -> Any:
        return _merge_voice_names(self)


class StreamRequest(BaseModel):
    """Body of POST /synthesize/stream (JSON): an enrolled voice (a reference upload would
    need a minute-long fit before the first sound)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="Text to speak (up to 20,000 characters).")
    voice_id: str = Field(description="An enrolled voice.")
    speed: float = Field(1.0, allow_inf_nan=False, description="Relative speaking rate.")
    language: str = Field(
        DEFAULT_LANGUAGE,
        description=f"Language of the text: {', '.join(LANGUAGES)} (all but en-us: kokoro).",
    )
    emotion: str = Field(
        DEFAULT_EMOTION,
        description=f"One of {', '.join(EMOTIONS)} (kokoro and transformer voices).",
    )
    emotion_strength: float = Field(
        1.0, allow_inf_nan=False, description="0-1; 0 is exactly the neutral speech."
    )
    job: bool = Field(
        False,
        description="Keep the stream as a clone job (id in `X-Job-Id`): when it ends, its WAV "
        "and signed record are at /jobs/{id}/audio and /jobs/{id}/provenance, as a queued "
        "job's; a stream stopped early fails the job. Without it: DATA/streams/ID.wav.",
    )


async def _stream_wav(
    first: GeneratedAudio,
    pieces: Iterator[GeneratedAudio],
    keep: Callable[[list[GeneratedAudio]], object] | None,
    stream_id: str,
    active: set[str],
) -> AsyncIterator[bytes]:
    """The WAV bytes of a `speak_stream`, each piece synthesised in a worker thread. The
    clip and its record are written only once the last piece is sent (by `keep`, or by
    `pieces` itself when it is a job's stream); if the client goes away (the server cancels
    this generator), synthesis stops and nothing is written."""
    active.add(stream_id)
    made: list[GeneratedAudio] = [first]
    # A cancelled await leaves its thread running `next`: closing must wait for it.
    turn = threading.Lock()

    def next_piece() -> GeneratedAudio | None:
        with turn:
            return next(pieces, None)

    def stop() -> None:
        with turn:
            pieces.close()  # type: ignore[attr-defined]  # a generator

    try:
        yield wav_header(first.sample_rate) + pcm16(first.samples)
        while (piece := await run_in_threadpool(next_piece)) is not None:
            made.append(piece)
            yield pcm16(piece.samples)
        if keep is not None:
            await run_in_threadpool(keep, made)
    finally:
        active.discard(stream_id)
        await run_in_threadpool(stop)


class FaceSwapForm(BaseModel):
    """Fields of POST /faceswap besides the `source` and `target` files."""

    model_config = ConfigDict(extra="forbid")

    face: int | None = Field(None, ge=0, description="Swap only this target face (0 = leftmost).")
    voice_id: str | None = Field(None, description="Video: speak `text` in this enrolled voice.")
    voice: str | None = Field(None, description=f"{DEPRECATED_NOTE} voice_id.", deprecated=True)
    text: str | None = Field(None, description="Video: the new soundtrack's text.")
    format: Literal["png", "jpg", "webp"] = Field(
        "png", description="Image output format (a video target always gives mp4)."
    )

    @model_validator(mode="after")
    def _one_voice_name(self) -> Any:
        return _merge_voice_names(self)


def _merge_voice_names(model: BaseModel) -> BaseModel:
    """`voice` (deprecated) means `voice_id`; both at once must agree. (Read through
    __dict__: reading a deprecated field warns.)"""
    fields = model.__dict__
    old = fields.get("voice")
    if old is not None:
        if fields.get("voice_id") not in (None, old):
            raise ValueError("give voice_id only (voice is its deprecated name)")
        fields["voice_id"] = old
    return model


class EnrollForm(BaseModel):
    """Fields of POST /voices besides the `audio` file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="1-64 letters, digits, spaces, '.', '_' or '-'.")
    consent: str = Field(
        "",
        description="The speaker's consent statement (required without a `consent_audio` "
        "recording; with one, the challenge's sentence is the statement unless given).",
    )
    challenge_id: str | None = Field(
        None,
        description="With a `consent_audio` file: the id from POST /consent/challenge whose "
        "sentence the speaker reads in it (consent proven by voice).",
    )
    engine: str | None = Field(None, description="kokoro (default) or piper.")
    seed: int = 0
    overwrite: bool = False
    quality: str | None = Field(None, description=_QUALITY_NOTE)
    reference_text: str | None = Field(
        None, max_length=MAX_REFERENCE_TEXT_CHARS, description=_REFERENCE_TEXT_NOTE
    )


class ChallengeRequest(BaseModel):
    """Body of POST /consent/challenge."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The speaker's name, as the voice will be enrolled.")


class ChallengeOut(BaseModel):
    challenge_id: str = Field(description="Send it as `challenge_id` with the recording.")
    name: str
    words: list[str] = Field(description="The random words the recording must contain.")
    sentence: str = Field(description="What the speaker reads aloud, whole.")
    issued: str
    expires: str = Field(description="Valid once, until then (UTC).")


def _multipart_schema(model: type[BaseModel], file_field: str, file_required: bool) -> dict:
    schema = model.model_json_schema()
    schema["properties"][file_field] = {
        "type": "string",
        "format": "binary",
        "description": f"Audio file ({', '.join(audio_io.SUPPORTED_INPUT)}).",
    }
    if file_required:
        schema.setdefault("required", []).append(file_field)
    return schema


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 404, 409, 413, 415, 422)
}


# -- error handling -----------------------------------------------------------------------
def _status_for(error: StudioError) -> int:
    if isinstance(
        error, TextError | AudioError | VoiceError | EngineError | FaceError | MediaError
    ):
        return 422
    return 400


def _validation_line(errors: list[Any]) -> str:
    """Pydantic errors → one line: the first problem, and how many more there are."""
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    line = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return line.replace("\n", " ")


def _no_route(method: str, path: str) -> str:
    return f"no route {method} {path} (the API is under {API_PREFIX}; its reference is /docs)"


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StudioError)
    async def studio_error(_: Request, exc: StudioError) -> JSONResponse:
        return _error(_status_for(exc), str(exc))

    @app.exception_handler(UnknownJobError)
    async def unknown_job(_: Request, exc: UnknownJobError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":  # no route matched
            message = _no_route(request.method, request.url.path)
        return _error(exc.status_code, message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_line(list(exc.errors())))

    @app.exception_handler(Exception)
    async def crash(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error in a request", exc_info=exc)
        return _error(500, "internal server error (details are in the server log)")


class ErrorShapeMiddleware:
    """Rewrites a JSON `{"detail": ...}` 404 or 405 into the documented `{"error": ...}`.

    Our own handlers already answer `{"error": ...}`; this catches what they never see: the
    routes of the web studio mounted at `/` (Gradio answers unmatched paths itself).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}
        body: list[bytes] = []

        async def reshape(message: Any) -> None:
            if message["type"] == "http.response.start":
                kind = dict(message.get("headers", [])).get(b"content-type", b"")
                if message["status"] in (404, 405) and kind.startswith(b"application/json"):
                    held["start"] = message  # sent with the rewritten body
                    return
            elif "start" in held and message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                data = b"".join(body)
                with contextlib.suppress(ValueError):
                    parsed = json.loads(data)
                    if isinstance(parsed, dict) and set(parsed) == {"detail"}:
                        message = str(parsed["detail"])
                        if message == "Not Found":
                            message = _no_route(scope["method"], scope["path"])
                        data = json.dumps({"error": message}).encode()
                start = held["start"]
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(data)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": data})
                return
            await send(message)

        await self.app(scope, receive, reshape)


# -- request bodies -------------------------------------------------------------------------
class _BodyTooLargeError(Exception):
    pass


def _too_large(limit: int) -> HTTPException:
    size = f"{limit / 2**20:.0f} MB" if limit >= 2**20 else f"{limit:,} bytes"
    return HTTPException(413, f"the upload is over the {size} limit")


async def _read_limited(
    request: Request,
    limit: int,
    reader: str,
    file_limit: int | None = None,
    max_files: int = 1,
) -> Any:
    """Parse the body (`form` or `json`), refusing it as soon as more than `limit` bytes
    arrive: a declared Content-Length is checked before reading anything, and a chunked body
    is counted as it streams (Starlette spools file parts to a temporary file). The error
    names `file_limit` (the limit the user knows), default `limit`."""
    declared = request.headers.get("content-length", "")
    file_limit = limit if file_limit is None else file_limit
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(file_limit)
    received = 0

    async def receive() -> Any:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLargeError
        return message

    limited = Request(request.scope, receive)
    try:
        if reader == "form":
            return await limited.form(max_files=max_files, max_fields=16)
        try:
            return await limited.json()
        except ValueError:  # JSONDecodeError and bad UTF-8
            raise HTTPException(422, "the body is not valid JSON") from None
    except _BodyTooLargeError:
        raise _too_large(file_limit) from None


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _form_model(model: type[M], form: FormData, file_field: str | tuple[str, ...]) -> M:
    """Validate a form's text fields with a model (empty fields count as missing)."""
    file_fields = (file_field,) if isinstance(file_field, str) else file_field
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            if value.strip():
                fields[key] = value
        elif key not in file_fields:
            only = " or ".join(repr(f) for f in file_fields)
            raise HTTPException(422, f"{key}: unexpected file field (only {only})")
    return _validated(model, fields)


def _validated(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise HTTPException(422, _validation_line(list(e.errors()))) from None


def _upload_suffix(upload: UploadFile) -> str:
    """The file type from the upload's name (or, without a suffix, its content type)."""
    suffix = Path(upload.filename or "").suffix.lower()
    if not suffix:
        suffix = _SUFFIX_BY_CONTENT_TYPE.get((upload.content_type or "").lower(), "")
    if suffix not in audio_io.SUPPORTED_INPUT:
        raise HTTPException(
            415,
            f"unsupported file type {suffix or '(none)'!r}; "
            f"use {', '.join(audio_io.SUPPORTED_INPUT)}",
        )
    return suffix


def _safe_name(filename: str | None, suffix: str) -> str:
    """A plain file name from the client's (it ends up as the voice's `source_name`)."""
    stem = Path((filename or "").replace("\\", "/")).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:80]
    return f"{stem or 'reference'}{suffix}"


def _receive_upload(store: JobStore, upload: UploadFile, suffix: str, limit: int) -> Path:
    """Copy an upload to the store's incoming folder, stopping past `limit` bytes."""
    path = store.incoming_path(suffix)
    size = 0
    try:
        upload.file.seek(0)
        with open(path, "wb") as out:
            while chunk := upload.file.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _check_reference(studio: Studio, path: Path, display: str) -> None:
    """Decode the upload and check it has enough speech, so a bad file fails now, not as a
    job. Errors name the client's file, never the server path."""
    try:
        studio.load_reference(path)
    except StudioError as e:
        message = str(e).replace(repr(str(path)), repr(display)).replace(path.name, display)
        raise type(e)(message) from None


async def _accept_upload(
    studio: Studio, store: JobStore, upload: UploadFile, limit: int
) -> tuple[Path, str]:
    """Receive and check an uploaded reference: (its path in incoming/, the name to keep)."""
    suffix = _upload_suffix(upload)
    name = _safe_name(upload.filename, suffix)
    path = await run_in_threadpool(_receive_upload, store, upload, suffix, limit)
    try:
        await run_in_threadpool(_check_reference, studio, path, name)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, name


def _check_consent_fields(fields: EnrollForm, by_voice: bool, required: bool) -> None:
    """One-line errors for the consent fields of an enrollment, before any upload is read."""
    if required and not by_voice:
        raise ConsentError(
            "this server needs consent proven by voice: get a phrase from POST "
            f"{API_PREFIX}/consent/challenge, record the speaker reading it and send it as "
            "'consent_audio' with its 'challenge_id'"
        )
    if by_voice and not fields.challenge_id:
        raise ConsentError("consent_audio needs the challenge_id of the phrase it reads")
    if fields.challenge_id and not by_voice:
        raise ConsentError("challenge_id goes with a consent_audio recording")
    if not by_voice and not fields.consent.strip():
        raise VoiceError("enrolling a voice needs the speaker's consent statement")


async def _check_voice_consent(
    studio: Studio,
    store: JobStore,
    upload: UploadFile,
    challenge_id: str | None,
    name: str,
    reference: Path,
    limits: ApiLimits,
) -> dict[str, Any]:
    """Use up the challenge and check the consent recording against it and the reference
    (Whisper, GE2E, watermark, detector: a few seconds); the evidence, which keeps the
    recording's hash (the recording itself is not kept, like the reference once enrolled).
    A failed check is a one-line 422 naming it."""
    suffix = _upload_suffix(upload)
    challenge = studio.challenges.take(challenge_id, name)
    path = await run_in_threadpool(_receive_upload, store, upload, suffix, limits.max_upload_bytes)
    try:
        evidence = await run_in_threadpool(studio.verify_consent, challenge, path, reference)
    finally:
        path.unlink(missing_ok=True)
    return evidence.as_dict()


def _faceswap_upload(upload: Any, role: str, allowed: tuple[str, ...]) -> tuple[UploadFile, str]:
    """The upload in field `role` and its suffix (415 for other file types)."""
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, f"{role}: a file upload is required")
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix == ".jpeg":
        suffix = ".jpg"
    if suffix not in allowed:
        raise HTTPException(
            415, f"{role}: unsupported file type {suffix or '(none)'!r}; use {', '.join(allowed)}"
        )
    return upload, suffix


# -- conversions ------------------------------------------------------------------------------
def _job_out(job: Job) -> JobOut:
    audio_url = result_url = None
    if job.kind == "clone" and job.state == "done":
        audio_url = f"{API_PREFIX}/jobs/{job.id}/audio"
    if job.kind == "faceswap" and job.state == "done":
        result_url = f"{API_PREFIX}/jobs/{job.id}/result"
    return JobOut(
        job_id=job.id,
        id=job.id,
        kind=job.kind,  # type: ignore[arg-type]
        state=job.state,  # type: ignore[arg-type]
        progress=job.progress,
        message=job.message,
        error=job.error,
        request=_with_voice_id(job.request),
        result=_with_voice_id(job.result),
        created=job.created,
        updated=job.updated,
        audio_url=audio_url,
        result_url=result_url,
    )


def _with_voice_id(fields: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored request or result with `voice_id` beside the 0.1 name `voice` (jobs are stored
    with the old name, so that older jobs and workers keep working)."""
    if fields is None or "voice" not in fields:
        return fields
    return {**fields, "voice_id": fields["voice"]}


def _voice_out(voice: Voice) -> VoiceOut:
    return VoiceOut(
        voice_id=voice.id,
        id=voice.id,
        name=voice.name,
        engine=voice.engine,
        created=voice.created,
        consent=voice.consent,
        consent_evidence=voice.consent_evidence,
        source_name=voice.source_name,
        reference_seconds=voice.reference_seconds,
        speed=voice.conditioning.speed,
        quality=enrollment_quality(voice),
    )


def _accepted(job: Job, voice: str | None = None) -> JSONResponse:
    url = f"{API_PREFIX}/jobs/{job.id}"
    body = Accepted(job_id=job.id, state=job.state, url=url, voice_id=voice)  # type: ignore[arg-type]
    return JSONResponse(body.model_dump(), status_code=202, headers={"Location": url})


def _enroll_options(quality: str | None, reference_text: str | None) -> dict[str, str]:
    """The enrollment options a job request carries: only those given (jobs stored without
    them, and workers reading them, mean the engine's default)."""
    given = {"quality": quality, "reference_text": reference_text}
    return {key: value for key, value in given.items() if value is not None}


def _checked_speech(
    studio: Studio, req: SynthesisRequest | StreamRequest
) -> tuple[str, str, str | None, float | None]:
    """(text, language, emotion, emotion strength) of a speech request, each checked; the
    speed too (one-line errors, answered 422)."""
    text = check_text(req.text)
    language = check_language(req.language)
    emotion, emotion_strength = check_emotion(req.emotion, req.emotion_strength)
    low, high = studio.config.min_speed, studio.config.max_speed
    if not low <= req.speed <= high:
        raise EngineError(f"speed {req.speed} is out of range ({low}-{high})")
    return text, language, emotion, emotion_strength


async def _enrolled_voice(
    studio: Studio,
    voice_id: str,
    engine: str | None,
    language: str,
    emotion: str | None,
    emotion_strength: float | None,
) -> Voice:
    """The enrolled voice (404 if there is none), loaded now so a corrupt voice or an engine
    that cannot speak the language or emotion is a 4xx before any job starts."""
    if not studio.has_voice(voice_id):
        raise HTTPException(404, f"unknown voice {voice_id!r}")
    voice = await run_in_threadpool(studio.resolve_voice, voice_id, None, engine)
    check_engine_language(voice.engine, language)
    check_engine_emotion(voice.engine, emotion, emotion_strength)
    return voice


def _check_engine(engine: str | None) -> None:
    if engine is not None and engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r} (available: {', '.join(ENGINES)})")


# -- the app ----------------------------------------------------------------------------------
DOCS_ASSETS = "/docs/assets"


def _install_offline_docs(app: FastAPI) -> None:
    """/docs: Swagger UI from the files of the pinned `swagger-ui-bundle-v2` package, served
    here, so the API reference loads without internet."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from starlette.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            # No badge from the online validator (validator.swagger.io): nothing leaves the host.
            swagger_ui_parameters={"validatorUrl": None},
        )


def create_app(
    studio: Studio,
    runner: JobRunner | None = None,
    token: str | None = None,
    *,
    web: bool = False,
    limits: ApiLimits | None = None,
    voice_consent: bool = False,
) -> FastAPI:
    """The API over `studio`. Jobs are stored in `studio.data_dir/studio.db`; `runner`
    (default: one embedded worker thread) is started and stopped with the app. With
    `token`, every route except /health needs `Authorization: Bearer <token>`. With `web`,
    the web studio (service/web.py) is mounted at `/`, behind the same token. `limits`:
    upload size and job submissions per minute (ApiLimits defaults). With `voice_consent`
    (`serve` sets it when listening beyond loopback), enrolling needs consent proven by the
    speaker's voice: a `consent_audio` recording of a challenge's sentence."""
    limits = limits or ApiLimits()
    rate = RateLimiter(limits.jobs_per_minute)
    store = JobStore(studio.data_dir)
    jobs: JobRunner = runner if runner is not None else EmbeddedRunner(studio, store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(jobs.start)
        try:
            yield
        finally:
            await run_in_threadpool(jobs.stop)

    app = FastAPI(
        title="Deepfake Studio",
        version=__version__,
        summary="Offline voice cloning and face swap: enroll voices, synthesise speech and "
        "swap faces as jobs.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's /docs and /redoc load their files from a CDN: ours below
        redoc_url=None,
    )
    app.state.studio, app.state.store, app.state.runner = studio, store, jobs
    active_streams: set[str] = set()  # ids of streams being synthesised (cleanup is tested)
    app.state.active_streams = active_streams
    stream_keys = StreamKeys()  # the web studio's page streams with these, not the token
    app.state.stream_keys = stream_keys
    _install_error_handlers(app)
    _install_offline_docs(app)

    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        # compare_digest: the comparison takes as long whatever the first wrong character.
        given = credentials.credentials.encode() if credentials else b""
        if token is None or not secrets.compare_digest(given, token.encode()):
            raise HTTPException(
                401,
                "missing or wrong token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def require_stream_access(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        # The token, or a key the web studio gave its (logged-in) page for this route only.
        if credentials and stream_keys.valid(credentials.credentials):
            return
        await require_token(credentials)

    def count_submission(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        # Keyed by token when there is one, else by client address (loopback: one user).
        client = request.client.host if request.client else "unknown"
        rate.check(f"token:{credentials.credentials}" if credentials else f"addr:{client}")

    submission = [Depends(count_submission)]

    # Auth runs before any body is read: these routes parse their bodies themselves.
    guarded = [Depends(require_token)] if token else []
    api = APIRouter(prefix=API_PREFIX, dependencies=guarded, responses=_ERRORS)
    stream_guard = [Depends(require_stream_access)] if token else []
    streaming = APIRouter(prefix=API_PREFIX, dependencies=stream_guard, responses=_ERRORS)
    public = APIRouter(prefix=API_PREFIX)

    @public.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        """Liveness, version, models in memory and queue depth (no token needed)."""
        return Health(
            status="ok",
            version=__version__,
            models_loaded=studio.loaded_models(),
            queue_depth=jobs.queue_depth(),
            jobs_running=store.count("running"),
        )

    # -- voices -----------------------------------------------------------------------------
    @api.post(
        "/voices",
        status_code=202,
        dependencies=submission,
        response_model=Accepted,
        tags=["voices"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": _multipart_schema(EnrollForm, "audio", file_required=True)
                    }
                },
            }
        },
    )
    async def enroll_voice(request: Request) -> JSONResponse:
        """Enroll a voice from an uploaded recording, as a job (202 + job id).

        Enrollment fits the voice (tens of seconds to minutes for kokoro), too long to hold
        a request open; poll the job, then use `voice_id`. Name, consent, engine and the
        audio are checked before the job is queued.
        """
        if _content_type(request) != "multipart/form-data":
            raise HTTPException(415, "send multipart/form-data with an 'audio' file")
        # Two files at most (the reference and a consent recording): together within the
        # upload limit; a consent recording is a few seconds, a reference at most a minute.
        limit = limits.max_upload_bytes + FORM_OVERHEAD_BYTES
        form: FormData = await _read_limited(
            request, limit, "form", file_limit=limits.max_upload_bytes, max_files=2
        )
        try:
            fields = _form_model(EnrollForm, form, ("audio", "consent_audio"))
            name = check_name(fields.name)
            consent_upload = form.get("consent_audio")
            by_voice = isinstance(consent_upload, UploadFile)
            _check_consent_fields(fields, by_voice, voice_consent)
            _check_engine(fields.engine)
            studio.check_enroll_options(fields.engine, fields.quality, fields.reference_text)
            if not fields.overwrite and studio.has_voice(name):
                raise HTTPException(409, f"a voice with id {voice_id(name)!r} already exists")
            upload = form.get("audio")
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, "audio: an audio file upload is required")
            path, source = await _accept_upload(studio, store, upload, limits.max_upload_bytes)
            evidence: dict[str, Any] | None = None
            statement = fields.consent.strip()
            if isinstance(consent_upload, UploadFile):
                try:
                    evidence = await _check_voice_consent(
                        studio, store, consent_upload, fields.challenge_id, name, path, limits
                    )
                except BaseException:
                    path.unlink(missing_ok=True)
                    raise
                statement = statement or evidence["challenge"]["sentence"]
        finally:
            await form.close()
        request_json = {
            "name": name,
            "consent": statement,
            **({"consent_evidence": evidence} if evidence else {}),
            "engine": fields.engine,
            "seed": fields.seed,
            "overwrite": fields.overwrite,
            "reference": source,
            **_enroll_options(fields.quality, fields.reference_text),
        }
        job = await run_in_threadpool(store.create, "enroll", request_json, inputs={source: path})
        jobs.submit(job.id)
        return _accepted(job, voice_id(name))

    @api.post(
        "/consent/challenge",
        status_code=201,
        dependencies=submission,
        response_model=ChallengeOut,
        tags=["voices"],
    )
    def consent_challenge(body: ChallengeRequest) -> ChallengeOut:
        """A fresh consent phrase for a speaker (consent proven by voice): the speaker reads
        `sentence` aloud; send that recording as `consent_audio` with `challenge_id` to POST
        /voices. Checked: the phrase is heard (Whisper-base), the voice is the reference's
        speaker (GE2E), the recording is not synthetic (watermark, detector)."""
        challenge = studio.consent_phrase(check_name(body.name))
        return ChallengeOut(
            challenge_id=challenge.id,
            name=challenge.name,
            words=list(challenge.words),
            sentence=challenge.sentence,
            issued=challenge.issued,
            expires=challenge.expires,
        )

    @api.get("/voices", response_model=VoiceList, tags=["voices"])
    def list_voices() -> VoiceList:
        """Enrolled voices; unusable voice folders are listed under `errors`."""
        entries = studio.voices()
        return VoiceList(
            voices=[_voice_out(v) for v in entries if isinstance(v, Voice)],
            errors=[str(e) for e in entries if isinstance(e, StudioError)],
        )

    @api.get("/voices/{voice}", response_model=VoiceOut, tags=["voices"])
    def get_voice(voice: str) -> VoiceOut:
        """One voice by id (or name)."""
        if not studio.has_voice(voice):
            raise HTTPException(404, f"unknown voice {voice!r}")
        try:
            return _voice_out(studio.voice(voice))
        except VoiceError as e:  # present but corrupt: the client can delete it
            raise HTTPException(409, str(e)) from None

    @api.delete("/voices/{voice}", status_code=204, tags=["voices"])
    def delete_voice(voice: str) -> Response:
        """Delete a voice (corrupt ones too)."""
        if not studio.has_voice(voice):
            raise HTTPException(404, f"unknown voice {voice!r}")
        studio.delete_voice(voice)
        return Response(status_code=204)

    # -- synthesis --------------------------------------------------------------------------
    @api.post(
        "/synthesize",
        status_code=202,
        dependencies=submission,
        response_model=Accepted,
        tags=["synthesis"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": SynthesisRequest.model_json_schema()},
                    "multipart/form-data": {
                        "schema": _multipart_schema(
                            SynthesisRequest, "reference", file_required=False
                        )
                    },
                },
            }
        },
    )
    async def synthesize(request: Request) -> JSONResponse:
        """Queue speech synthesis (202 + job id).

        JSON with an enrolled `voice`, or multipart with the same fields and either `voice`
        or a `reference` recording to clone on the fly.
        """
        kind = _content_type(request)
        upload: UploadFile | None = None
        form: FormData | None = None
        if kind == "application/json":
            body = await _read_limited(request, MAX_JSON_BYTES, "json")
            req = _validated(SynthesisRequest, body)
        elif kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
            limit = limits.max_upload_bytes + FORM_OVERHEAD_BYTES
            form = await _read_limited(request, limit, "form", file_limit=limits.max_upload_bytes)
            req = _form_model(SynthesisRequest, form, "reference")
            found = form.get("reference")
            upload = found if isinstance(found, UploadFile) else None
        else:
            raise HTTPException(415, "send application/json or a form (multipart/form-data)")
        try:
            text, language, emotion, emotion_strength = _checked_speech(studio, req)
            if (req.voice_id is None) == (upload is None):
                raise VoiceError("give exactly one of voice_id or a reference upload")
            consent = None
            if upload is not None:
                consent = check_consent(req.consent, "cloning from a recording")
            if req.format == "mp3" and audio_io.ffmpeg_path() is None:
                raise AudioError("mp3 output needs ffmpeg on the server; ask for wav or flac")
            inputs: dict[str, Path] = {}
            if req.voice_id is not None:
                if req.quality is not None or req.reference_text is not None:
                    raise VoiceError(
                        "quality and reference_text go with a reference upload "
                        "(an enrolled voice is already fitted)"
                    )
                voice = await _enrolled_voice(
                    studio, req.voice_id, req.engine, language, emotion, emotion_strength
                )
                chosen: str | None = voice.id
                reference = None
            else:
                assert upload is not None
                _check_engine(req.engine)
                studio.check_enroll_options(req.engine, req.quality, req.reference_text)
                check_engine_language(req.engine or studio.config.default_engine, language)
                check_engine_emotion(
                    req.engine or studio.config.default_engine, emotion, emotion_strength
                )
                path, reference = await _accept_upload(
                    studio, store, upload, limits.max_upload_bytes
                )
                inputs[reference] = path
                chosen = None
        finally:
            if form is not None:
                await form.close()
        request_json = {
            "text": text,
            "voice": chosen,
            "reference": reference,
            "engine": req.engine,
            "speed": req.speed,
            "seed": req.seed,
            "format": req.format,
            **({"consent": consent} if consent else {}),
            **({"language": language} if language != DEFAULT_LANGUAGE else {}),
            **_enroll_options(req.quality, req.reference_text),
            **emotion_fields(emotion, emotion_strength),
        }
        job = await run_in_threadpool(store.create, "clone", request_json, inputs=inputs)
        jobs.submit(job.id)
        return _accepted(job)

    @streaming.post(
        "/synthesize/stream",
        dependencies=submission,
        tags=["synthesis"],
        response_class=StreamingResponse,
        responses={200: {"content": {"audio/wav": {}}, "description": "WAV, sent as made"}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": StreamRequest.model_json_schema()}},
            }
        },
    )
    async def synthesize_stream(request: Request) -> StreamingResponse:
        """Speak `text` in an enrolled voice, sending 16-bit WAV while it is synthesised.

        Chunked HTTP, not a WebSocket: curl, `<audio src>` after a fetch, and any HTTP client
        read it as it arrives, with the same token and validation (422 JSON) as /synthesize.
        The WAV header's sizes are 0xFFFFFFFF (unknown length). Each piece is watermarked;
        when the stream ends the clip and its signed provenance record are written under
        DATA/streams/ID.wav (ID in the `X-Stream-Id` header), or with `job` as a clone job's
        (`X-Job-Id`); a client that disconnects first stops the synthesis and leaves no file.
        Besides the token, a key the web studio gave its page opens this route (and no other).
        """
        if _content_type(request) != "application/json":
            raise HTTPException(415, "send application/json")
        body = await _read_limited(request, MAX_JSON_BYTES, "json")
        req = _validated(StreamRequest, body)
        text, language, emotion, emotion_strength = _checked_speech(studio, req)
        voice = await _enrolled_voice(
            studio, req.voice_id, None, language, emotion, emotion_strength
        )
        keep: Callable[[list[GeneratedAudio]], object] | None
        if req.job:  # a clone job run here instead of by the runner; it writes its own file
            request_json = {
                "text": text,
                "voice": voice.id,
                "reference": None,
                "engine": None,
                "speed": req.speed,
                "seed": 0,
                "format": "wav",
                **({"language": language} if language != DEFAULT_LANGUAGE else {}),
                **emotion_fields(emotion, emotion_strength),
            }
            job = await run_in_threadpool(store.create, "clone", request_json)
            stream_id, keep = job.id, None
            headers = {"X-Job-Id": job.id}
            pieces = stream_clone(studio, store, job, voice)
        else:
            stream_id = uuid.uuid4().hex
            headers = {"X-Stream-Id": stream_id}

            def keep(made: list[GeneratedAudio]) -> object:
                return studio.keep_stream(studio.join_stream(made, text), stream_id)

            pieces = studio.speak_stream(
                text,
                voice,
                speed=req.speed,
                language=language,
                emotion=emotion,
                emotion_strength=emotion_strength,
            )
        try:  # the first piece before the 200: its errors (e.g. nothing to say) are still 422
            first = await run_in_threadpool(next, pieces, None)
        except BaseException:
            pieces.close()  # type: ignore[attr-defined]  # a generator
            raise
        if first is None:
            raise TextError("the text has nothing to speak")
        return StreamingResponse(
            _stream_wav(first, pieces, keep, stream_id, active_streams),
            media_type="audio/wav",
            headers={**headers, "Cache-Control": "no-store"},
        )

    # -- face swap --------------------------------------------------------------------------
    @api.post(
        "/faceswap",
        status_code=202,
        response_model=Accepted,
        tags=["faceswap"],
        dependencies=submission,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            **FaceSwapForm.model_json_schema(),
                            "properties": {
                                **FaceSwapForm.model_json_schema()["properties"],
                                "source": {"type": "string", "format": "binary"},
                                "target": {"type": "string", "format": "binary"},
                            },
                            "required": ["source", "target"],
                        }
                    }
                },
            }
        },
    )
    async def faceswap(request: Request) -> JSONResponse:
        """Queue a face swap (202 + job id): the face in the `source` image onto the faces of
        the `target` image or video. Video only: `voice` + `text` replace the soundtrack with
        cloned speech. Both files are decoded and their faces found before the job is queued
        (422 for no face, a bad `face` index or an unreadable file; 415 for other types)."""
        if _content_type(request) != "multipart/form-data":
            raise HTTPException(415, "send multipart/form-data with 'source' and 'target' files")
        cfg = studio.config.faceswap
        # Each file is held to the API's upload limit as well as to the stage's own limits.
        image_limit = min(cfg.max_image_bytes, limits.max_upload_bytes)
        video_limit = min(cfg.max_video_bytes, limits.max_upload_bytes)
        form = await _read_limited(
            request,
            image_limit + video_limit + FORM_OVERHEAD_BYTES,
            "form",
            file_limit=max(image_limit, video_limit),
            max_files=2,
        )
        received: list[Path] = []
        try:
            fields = _form_model(FaceSwapForm, form, ("source", "target"))
            source, source_suffix = _faceswap_upload(form.get("source"), "source", IMAGE_SUFFIXES)
            target, target_suffix = _faceswap_upload(
                form.get("target"), "target", IMAGE_SUFFIXES + VIDEO_SUFFIXES
            )
            is_video = target_suffix in VIDEO_SUFFIXES
            text = check_text(fields.text) if fields.text is not None else None
            if (fields.voice_id is None) != (text is None):
                raise VoiceError("a new soundtrack needs both a voice and a text")
            if fields.voice_id is not None:
                if not is_video:
                    raise MediaError("a new soundtrack (voice, text) needs a video target")
                if not studio.has_voice(fields.voice_id):
                    raise HTTPException(404, f"unknown voice {fields.voice_id!r}")
            source_path = await run_in_threadpool(
                _receive_upload, store, source, source_suffix, image_limit
            )
            received.append(source_path)
            target_path = await run_in_threadpool(
                _receive_upload,
                store,
                target,
                target_suffix,
                video_limit if is_video else image_limit,
            )
            received.append(target_path)
            names = {
                source_path: _safe_name(source.filename, source_suffix),
                target_path: _safe_name(target.filename, target_suffix),
            }
            found = await run_in_threadpool(
                check_faceswap, studio, source_path, target_path, fields.face, names
            )
        except BaseException:
            for path in received:
                path.unlink(missing_ok=True)
            raise
        finally:
            await form.close()
        fmt = "mp4" if is_video else fields.format
        source_name, target_name = f"source{source_suffix}", f"target{target_suffix}"
        request_json = {
            "source": source_name,
            "target": target_name,
            "source_name": names[source_path],
            "target_name": names[target_path],
            "face": fields.face,
            "voice": fields.voice_id,
            "text": text,
            "format": fmt,
            **found,
        }
        job = await run_in_threadpool(
            store.create,
            "faceswap",
            request_json,
            inputs={source_name: source_path, target_name: target_path},
        )
        jobs.submit(job.id)
        return _accepted(job)

    # -- detection --------------------------------------------------------------------------
    @api.post(
        "/detect",
        response_model=Detection,
        tags=["detect"],
        dependencies=submission,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"audio": {"type": "string", "format": "binary"}},
                            "required": ["audio"],
                        }
                    }
                },
            }
        },
    )
    async def detect(request: Request) -> dict[str, Any]:
        """Is this speech synthetic? The detector's calibrated probability, its label, a
        per-window timeline, and whether the studio's watermark is present. Answered at once
        (the detector runs far faster than real time); nothing is kept on the server."""
        if _content_type(request) != "multipart/form-data":
            raise HTTPException(415, "send multipart/form-data with an 'audio' file")
        limit = limits.max_upload_bytes + FORM_OVERHEAD_BYTES
        form = await _read_limited(request, limit, "form", file_limit=limits.max_upload_bytes)
        try:
            upload = form.get("audio")
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, "send the clip as a file field named 'audio'")
            suffix = _upload_suffix(upload)
            name = _safe_name(upload.filename, suffix)
            path = await run_in_threadpool(
                _receive_upload, store, upload, suffix, limits.max_upload_bytes
            )
            try:
                return await run_in_threadpool(detection_summary, studio, path)
            except StudioError as e:  # name the client's file, never the server path
                message = str(e).replace(str(path), name).replace(path.name, name)
                raise type(e)(message) from None
            finally:
                path.unlink(missing_ok=True)
        finally:
            await form.close()

    # -- jobs -------------------------------------------------------------------------------
    @api.get("/jobs", response_model=JobPage, tags=["jobs"])
    def list_jobs(
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
        state: JobState | None = None,
        kind: JobKind | None = None,
    ) -> JobPage:
        """Jobs, newest first, `limit` at a time from `offset`."""
        page, total = store.list(limit=limit, offset=offset, state=state, kind=kind)
        return JobPage(jobs=[_job_out(j) for j in page], total=total, limit=limit, offset=offset)

    @api.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
    def get_job(job_id: str) -> JobOut:
        """A job's state, progress (0-1), message, error and result."""
        return _job_out(store.get(job_id))

    @api.get(
        "/jobs/{job_id}/audio",
        response_class=FileResponse,
        tags=["jobs"],
        responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
    )
    def job_audio(job_id: str) -> FileResponse:
        """The audio of a finished synthesis job (409 until it is done)."""
        job = store.get(job_id)
        if job.kind != "clone":
            raise HTTPException(404, f"job {job_id!r} is an {job.kind} job: it has no audio")
        if job.state == "failed":
            raise HTTPException(409, f"job {job_id!r} failed: {job.error}")
        if job.state != "done":
            raise HTTPException(
                409, f"job {job_id!r} is {job.state} ({job.progress:.0%}); its audio is not ready"
            )
        fmt = (job.result or {}).get("format", "wav")
        path = store.output_path(job.id, fmt)
        if not path.is_file():
            raise HTTPException(404, f"the audio of job {job_id!r} is no longer on the server")
        return FileResponse(path, media_type=MEDIA_TYPES[fmt], filename=f"{job.id}.{fmt}")

    @api.get(
        "/jobs/{job_id}/result",
        response_class=FileResponse,
        tags=["jobs"],
        responses={200: {"content": {t: {} for t in FACESWAP_MEDIA_TYPES.values()}}},
    )
    def job_result(job_id: str) -> FileResponse:
        """The image or video of a finished face-swap job (409 until it is done)."""
        job = store.get(job_id)
        if job.kind != "faceswap":
            raise HTTPException(404, f"job {job_id!r} is a {job.kind} job: use /audio")
        if job.state == "failed":
            raise HTTPException(409, f"job {job_id!r} failed: {job.error}")
        if job.state != "done":
            raise HTTPException(
                409, f"job {job_id!r} is {job.state} ({job.progress:.0%}); its result is not ready"
            )
        fmt = (job.result or {}).get("format", "png")
        path = store.output_path(job.id, fmt)
        if not path.is_file():
            raise HTTPException(404, f"the result of job {job_id!r} is no longer on the server")
        return FileResponse(path, media_type=FACESWAP_MEDIA_TYPES[fmt], filename=f"{job.id}.{fmt}")

    @api.get("/jobs/{job_id}/provenance", tags=["jobs"])
    def job_provenance(job_id: str) -> dict[str, Any]:
        """The signed provenance record of a finished synthesis or face-swap job's output."""
        from deepfake_studio.provenance import sidecar_path

        job = store.get(job_id)
        if job.kind not in ("clone", "faceswap") or job.state != "done":
            raise HTTPException(409, f"job {job_id!r} has no finished audio ({job.state})")
        fmt = (job.result or {}).get("format", "wav")
        record = sidecar_path(store.output_path(job.id, fmt))
        if not record.is_file():
            raise HTTPException(404, f"the provenance record of job {job_id!r} is missing")
        return json.loads(record.read_text(encoding="utf-8"))

    app.include_router(public)
    app.include_router(api)
    app.include_router(streaming)
    app.add_middleware(ErrorShapeMiddleware)
    if web:  # web studio (issue 7): Gradio at "/", mounted last so the API routes win
        from deepfake_studio.service.web import mount_web

        mount_web(
            app,
            studio,
            store,
            jobs,
            token,
            stream_keys=stream_keys,
            max_upload_bytes=limits.max_upload_bytes,
            voice_consent=voice_consent,
        )
    return app
