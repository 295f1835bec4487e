"""Running jobs: what a job does (`execute_job`) and where it runs (a `JobRunner` backend).

`execute_job` is the whole unit of work: claim the job in the store, call `Studio`, record
progress and the outcome. A backend only decides where and when that function is called:
`EmbeddedRunner` uses worker threads in the server process; a Celery backend would be a task
calling `execute_job(studio, store, job_id)` in a worker process and a `submit` that sends the
id to the broker — the API and the store stay as they are.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from deepfake_studio.errors import StudioError
from deepfake_studio.service.store import Job, JobStore
from deepfake_studio.studio import Studio

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
def _progress_writer(
    store: JobStore, job_id: str, start: float = 0.0, span: float = 1.0
) -> Callable[[float, str], None]:
    """A Studio progress callback that maps (0..1) to (start..start+span) and throttles writes."""
    last = 0.0

    def report(fraction: float, text: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _PROGRESS_INTERVAL_S or fraction >= 1.0:
            last = now
            store.set_progress(job_id, start + span * min(max(fraction, 0.0), 1.0), text)

    return report


def _public(message: str, job: Job, store: JobStore) -> str:
    """Replace the server path of the job's upload in an error by the uploader's file name."""
    name = job.request.get("reference")
    if name:
        message = message.replace(repr(str(store.input_path(job.id, name))), repr(name))
    return message


def _run_clone(studio: Studio, store: JobStore, job: Job) -> dict[str, Any]:
    req = job.request
    reference = req.get("reference")
    path = store.input_path(job.id, reference) if reference else None
    # An inline reference must be analysed first (for kokoro, the slow part): first half.
    analyse = _progress_writer(store, job.id, 0.0, 0.5) if path else None
    store.set_progress(job.id, 0.0, "analysing the reference" if path else "loading the voice")
    voice = studio.resolve_voice(
        req.get("voice"), path, req.get("engine"), req.get("seed", 0), analyse
    )
    speak = _progress_writer(store, job.id, 0.5, 0.5) if path else _progress_writer(store, job.id)
    audio = studio.clone(req["text"], voice=voice, speed=req.get("speed", 1.0), progress=speak)
    fmt = req.get("format", "wav")
    # Studio.save writes the file atomically plus its signed provenance record (sidecar).
    out, _ = studio.save(
        audio,
        store.output_path(job.id, fmt),
        text=req["text"],
        voice=voice,
        engine=voice.engine,
        watermarked=studio.config.watermark,
        parameters={"speed": req.get("speed", 1.0), "seed": req.get("seed", 0), "job": job.id},
    )
    return {
        "format": fmt,
        "duration": round(audio.duration, 3),
        "sample_rate": audio.sample_rate,
        "bytes": out.stat().st_size,
        "voice": None if path else voice.id,
        "engine": voice.engine,
    }


def _run_enroll(studio: Studio, store: JobStore, job: Job) -> dict[str, Any]:
    req = job.request
    store.set_progress(job.id, 0.0, "analysing the reference")
    voice = studio.enroll(
        store.input_path(job.id, req["reference"]),
        req["name"],
        req["consent"],
        engine=req.get("engine"),
        seed=req.get("seed", 0),
        overwrite=req.get("overwrite", False),
        progress=_progress_writer(store, job.id),
    )
    return {"voice": voice.id, "name": voice.name, "engine": voice.engine}


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
