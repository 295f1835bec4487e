"""Running jobs: what a job does (`execute_job`) and where it runs (a `JobRunner` backend).

`execute_job` is the whole unit of work: claim the job in the store, call `Studio`, record
progress and the outcome. A backend only decides where and when that function is called:
`EmbeddedRunner` uses worker threads in the server process; `service.distributed.CeleryRunner` sends
the job to Celery workers, which run the compute half (`compute_clone`, `compute_enroll`) and
send the outcome back for this process to store (`store_clone`, `store_enroll`) — the API and
the store stay as they are.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from deepfake_studio.audio import Audio
from deepfake_studio.errors import StudioError, VoiceError
from deepfake_studio.service.store import Job, JobStore
from deepfake_studio.studio import GeneratedAudio, Studio, enrollment_quality
from deepfake_studio.voices import Voice, check_name, voice_id

if TYPE_CHECKING:
    from deepfake_studio.provenance.watermark import WatermarkResult

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error while running the job (details are in the server log)"
_PROGRESS_INTERVAL_S = 0.25  # at most ~4 progress writes a second per job


@runtime_checkable
class JobRunner(Protocol):
    """Where jobs run. The store holds their state; a runner only needs their ids."""

    def submit(self, job_id: str) -> None:
        """Schedule a queued job (already in the store)."""

    def start(self) -> None:
        """Begin running jobs, re-queueing those a previous process left unfinished."""

    def stop(self) -> None:
        """Stop taking jobs; a job already running is allowed to finish."""

    def queue_depth(self) -> int:
        """Jobs submitted but not started yet."""


# -- the unit of work -------------------------------------------------------------------------
# A job is split in two so that the compute half can run on another machine (a Celery worker)
# while the store half always runs where the job store and the signing key are:
#   compute_clone / compute_enroll: request + inputs → audio or a voice (models, no store)
#   store_clone / store_enroll:     that outcome → files, signed record, voice library, result
Progress = Callable[[float, str], None]


def throttled(sink: Progress, start: float = 0.0, span: float = 1.0) -> Progress:
    """A Studio progress callback that maps (0..1) to (start..start+span) and throttles writes."""
    last = 0.0

    def report(fraction: float, text: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _PROGRESS_INTERVAL_S or fraction >= 1.0:
            last = now
            sink(start + span * min(max(fraction, 0.0), 1.0), text)

    return report


def _progress_writer(
    store: JobStore, job_id: str, start: float = 0.0, span: float = 1.0
) -> Progress:
    return throttled(lambda p, text: store.set_progress(job_id, p, text), start, span)


def public_error(message: str, path: Path | None, name: str | None) -> str:
    """Replace the local path of an uploaded reference in an error by the uploader's name."""
    if path is not None and name:
        message = message.replace(repr(str(path)), repr(name))
    return message


def _public(message: str, job: Job, store: JobStore) -> str:
    name = job.request.get("reference")
    return public_error(message, store.input_path(job.id, name) if name else None, name)


@dataclass(frozen=True)
class CloneOutput:
    """What a clone job computed, before it is written: the audio and the voice it spoke in."""

    audio: Audio
    voice: Voice
    watermarked: bool


def compute_clone(
    studio: Studio,
    request: Mapping[str, Any],
    reference: Path | None,
    voice: str | Voice | None,
    report: Progress,
) -> CloneOutput:
    """Speak the request's text in `voice` (an id or a Voice) or in the voice of `reference`."""
    # An inline reference must be analysed first (for kokoro, the slow part): first half.
    analyse = throttled(report, 0.0, 0.5) if reference else None
    report(0.0, "analysing the reference" if reference else "loading the voice")
    chosen = studio.resolve_voice(
        None if reference else voice,
        reference,
        request.get("engine"),
        request.get("seed", 0),
        analyse,
        consent=request.get("consent"),
        quality=request.get("quality"),
        reference_text=request.get("reference_text"),
    )
    speak = throttled(report, 0.5, 0.5) if reference else throttled(report)
    audio = studio.clone(
        request["text"],
        voice=chosen,
        speed=request.get("speed", 1.0),
        progress=speak,
        language=request.get("language"),
        emotion=request.get("emotion"),
        emotion_strength=request.get("emotion_strength"),
    )
    return CloneOutput(audio, chosen, studio.config.watermark)


def save_clone(
    studio: Studio,
    output: CloneOutput,
    path: Path,
    request: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a computed clip atomically plus its signed provenance record; the job result."""
    # A voice fitted from the request's reference: the enrollment quality it cost (kokoro).
    quality = enrollment_quality(output.voice) if request.get("reference") else None
    fitted = {"quality": quality} if quality else {}
    out, _ = studio.save(
        output.audio,
        path,
        text=request["text"],
        voice=output.voice,
        engine=output.voice.engine,
        watermarked=output.watermarked,
        parameters={
            "speed": request.get("speed", 1.0),
            "seed": request.get("seed", 0),
            **fitted,
            **(parameters or {}),
        },
    )
    return {
        "format": out.suffix.lstrip(".").lower(),
        "duration": round(output.audio.duration, 3),
        "sample_rate": output.audio.sample_rate,
        "bytes": out.stat().st_size,
        "voice": None if request.get("reference") else output.voice.id,
        "engine": output.voice.engine,
        **fitted,
    }


def store_clone(studio: Studio, store: JobStore, job: Job, output: CloneOutput) -> dict[str, Any]:
    """Store a clone job's audio under the job's folder (the API serves it from there)."""
    fmt = job.request.get("format", "wav")
    path = store.output_path(job.id, fmt)
    return save_clone(studio, output, path, job.request, {"job": job.id})


STOPPED_EARLY = "stopped before the clip was finished (the listener left or pressed Stop)"


def stream_clone(
    studio: Studio, store: JobStore, job: Job, voice: Voice | None = None
) -> Iterator[GeneratedAudio]:
    """Run a queued clone job for an enrolled voice here and now instead of in a runner,
    yielding the pieces of `Studio.speak_stream` as they are made (each watermarked). After
    the last one, the joined clip and its signed record are written where the runner writes
    a clone job's (same file, same record, plus `streamed`) and the job is done. A stream
    closed early (the listener left) fails the job and writes nothing. `voice`: the job's
    voice if the caller has loaded it already (the streaming route checks it before the job
    exists), so the first audio does not wait for a second load."""
    claimed = store.claim(job.id)
    if claimed is None:
        raise StudioError(f"job {job.id} is not waiting to run")
    request = claimed.request
    text = request["text"]
    try:
        if voice is None or voice.id != request["voice"]:
            voice = studio.resolve_voice(request["voice"], None, request.get("engine"))
        pieces = studio.speak_stream(
            text,
            voice,
            speed=request.get("speed", 1.0),
            language=request.get("language"),
            emotion=request.get("emotion"),
            emotion_strength=request.get("emotion_strength"),
        )
        made: list[GeneratedAudio] = []
        spoken, sentence = 0, ""  # characters of the sentences before this one
        try:
            for piece in pieces:
                if piece.text != sentence:
                    spoken, sentence = spoken + len(sentence), piece.text
                made.append(piece)
                yield piece  # before the progress is written: the listener waits, not the row
                seconds = sum(len(p.samples) for p in made) / piece.sample_rate
                store.set_progress(
                    job.id, min(spoken / len(text), 0.99), f"streaming, {seconds:.1f} s made"
                )
        finally:
            pieces.close()  # type: ignore[attr-defined]  # a generator: stop synthesis
        clip = studio.join_stream(made, text)
        result = store_clone(studio, store, claimed, CloneOutput(clip, voice, clip.watermarked))
    except StudioError as e:
        store.fail(job.id, str(e))
        raise
    except GeneratorExit:
        store.fail(job.id, STOPPED_EARLY)
        raise
    except Exception:
        store.fail(job.id, INTERNAL_ERROR)
        raise
    store.finish(job.id, result)


def compute_enroll(
    studio: Studio, request: Mapping[str, Any], reference: Path, report: Progress
) -> Voice:
    """Analyse the reference into the voice to enroll (not stored yet)."""
    name = check_name(request["name"])
    consent = str(request.get("consent", "")).strip()
    if not consent:
        raise VoiceError("enrolling a voice needs the speaker's consent statement")
    report(0.0, "analysing the reference")
    return studio.create_voice(
        reference,
        name=name,
        consent=consent,
        engine=request.get("engine"),
        seed=request.get("seed", 0),
        progress=throttled(report),
        quality=request.get("quality"),
        reference_text=request.get("reference_text"),
        consent_evidence=request.get("consent_evidence"),  # checked by the API before queueing
    )


def store_enroll(studio: Studio, request: Mapping[str, Any], voice: Voice) -> dict[str, Any]:
    """Save an analysed voice in the studio's library; the job result."""
    studio.library.save(voice, overwrite=bool(request.get("overwrite", False)))
    return {"voice": voice.id, "name": voice.name, "engine": voice.engine}


def watermark_summary(mark: WatermarkResult) -> dict[str, Any]:
    """The watermark verdict as JSON: `score` and its `threshold` (one meaning for every
    medium; for audio, PerthNet's); `found_by` names the audio layers that found the mark
    (`present` when either did); `confidence` is the deprecated 0.1 name of the score."""
    score = round(mark.score, 4)
    return {
        "present": mark.present,
        "score": score,
        "threshold": round(mark.threshold, 4),
        "confidence": score,
        "found_by": list(mark.found_by),  # audio: "perthnet", "spread-spectrum" (either counts)
    }


def detection_summary(studio: Studio, path: Path) -> dict[str, Any]:
    """JSON-ready verdict of the detector and of the watermark for one audio file."""
    from deepfake_studio.audio import load_audio

    clip = load_audio(path)
    result = studio.detect(clip)
    mark = studio.watermarker.detect(clip)
    return {
        "probability": round(result.probability, 4),
        "label": result.label,
        "threshold": result.threshold,
        "duration": round(result.duration, 3),
        "segments": [
            {
                "start": s.start,
                "end": s.end,
                "probability": round(s.probability, 4),
                "speech": s.speech,
            }
            for s in result.segments
        ],
        "watermark": watermark_summary(mark),
    }


def _run_clone(studio: Studio, store: JobStore, job: Job) -> dict[str, Any]:
    reference = job.request.get("reference")
    path = store.input_path(job.id, reference) if reference else None
    writer = lambda p, text: store.set_progress(job.id, p, text)  # noqa: E731
    output = compute_clone(studio, job.request, path, job.request.get("voice"), writer)
    return store_clone(studio, store, job, output)


def _run_enroll(studio: Studio, store: JobStore, job: Job) -> dict[str, Any]:
    path = store.input_path(job.id, job.request["reference"])
    writer = lambda p, text: store.set_progress(job.id, p, text)  # noqa: E731
    name = job.request["name"]
    if not job.request.get("overwrite") and voice_id(name) in studio.library.names():
        # Checked before the slow analysis (the store step would refuse it anyway).
        raise VoiceError(f"a voice named {name!r} already exists (use --overwrite)")
    return store_enroll(studio, job.request, compute_enroll(studio, job.request, path, writer))


def _run_faceswap(studio: Studio, store: JobStore, job: Job) -> dict[str, Any]:
    req = job.request
    store.set_progress(job.id, 0.0, "swapping faces")
    # Studio.faceswap writes the output atomically, watermarked, plus its signed record.
    result = studio.faceswap(
        store.input_path(job.id, req["source"]),
        store.input_path(job.id, req["target"]),
        store.output_path(job.id, req["format"]),
        face=req.get("face"),
        voice=req.get("voice"),
        text=req.get("text"),
        progress=_progress_writer(store, job.id),
    )
    return {
        "format": req["format"],
        "media": result.media,
        "source_faces": result.source_faces,
        "faces_found": result.faces_found,
        "faces_swapped": result.faces_swapped,
        "frames": result.frames,
        "fps": result.fps,
        "audio": result.audio,
        "audio_cut_s": result.audio_cut_s,
        "bytes": result.path.stat().st_size,
    }


HANDLERS: dict[str, Callable[[Studio, JobStore, Job], dict[str, Any]]] = {
    "clone": _run_clone,
    "enroll": _run_enroll,
    "faceswap": _run_faceswap,
}


def execute_job(studio: Studio, store: JobStore, job_id: str) -> None:
    """Run one queued job to its end. Never raises: the outcome is recorded in the store."""
    job = store.claim(job_id)
    if job is None:  # taken by another worker, finished, or submitted twice
        return
    try:
        handler = HANDLERS.get(job.kind)
        if handler is None:
            raise StudioError(f"{job.kind} jobs are not supported by this server yet")
        result = handler(studio, store, job)
    except StudioError as e:
        store.fail(job.id, _public(str(e), job, store))
    except Exception:
        log.exception("job %s (%s) crashed", job.id, job.kind)
        store.fail(job.id, INTERNAL_ERROR)
    else:
        store.finish(job.id, result)


# -- embedded backend -------------------------------------------------------------------------
class EmbeddedRunner:
    """Worker threads in this process. One worker by default: each model already uses every
    core, so two jobs at once would only slow both (and Studio's lazy model loading is not
    guarded against concurrent first use)."""

    def __init__(self, studio: Studio, store: JobStore | None = None, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.studio = studio
        self.store = store or JobStore(studio.data_dir)
        self.workers = workers
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, job_id: str) -> None:
        self._queue.put(job_id)

    def start(self) -> None:
        with self._lock:
            if self._threads:
                return  # already running: start is idempotent
            for job_id in self.store.requeue_unfinished():
                self._queue.put(job_id)  # claim() skips any that are also submitted again
            for i in range(self.workers):
                thread = threading.Thread(target=self._work, name=f"studio-job-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Let each worker finish its current job (up to `timeout` s), then end.

        Queued jobs stay queued in the store and run after the next start. A job still
        running after the timeout is abandoned to its daemon thread; if the process exits
        first, the job is left 'running' and re-queued by the next start.
        """
        with self._lock:
            threads, self._threads = self._threads, []
            # Drop what has not started: those jobs are still 'queued' in the store.
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            for _ in threads:
                self._queue.put(None)
        for thread in threads:
            thread.join(timeout)

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            execute_job(self.studio, self.store, job_id)
