"""The Celery backend: jobs run in worker processes on any machine, results come back via Redis.

Three roles share this module:

* the server's `CeleryRunner` (a `JobRunner`): sends each job — its request, its uploaded
  files and, for an enrolled voice, the voice itself — as a Celery task whose id is the job id.
  A collector thread reads the tasks' progress and results from the result backend and stores
  them with the embedded runner's code (`store_clone`, `store_enroll`): the audio file and its
  signed provenance record are written here, so the signing key never leaves the server.
* `deepfake-studio worker` (`run_worker`): one `Studio` per worker process (models loaded
  once), runs the compute half of a job (`compute_clone`, `compute_enroll`) and returns the
  audio (FLAC) or the analysed voice.
* `deepfake-studio batch --broker` (service/batch.py) fans clone jobs out through the same
  `Dispatcher`.

Delivery: tasks are acknowledged late and rejected back to the queue when their worker process
dies (`acks_late`, `reject_on_worker_lost`); a whole worker machine that dies leaves its task
unacknowledged in Redis, which hands it to another worker after `visibility_timeout_s`. A job
may therefore start more than once, but it is stored once: the store is checked before anything
is written, and a delivery that finds a stored result leaves it alone. Every start counts as an
attempt; a job that crashes is retried, and after `max_attempts` it fails with its error.

Messages are JSON, never pickle: whoever can write to the broker must not be able to run code
in a worker. Anyone who can reach the broker can still submit jobs and read results (voices,
audio): keep Redis on a private network with a password (`redis://:PASSWORD@host:6379/0`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import logging
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import soundfile as sf

from deepfake_studio.audio import Audio
from deepfake_studio.errors import StudioError
from deepfake_studio.service.runner import (
    INTERNAL_ERROR,
    CloneOutput,
    Progress,
    compute_clone,
    compute_enroll,
    detection_summary,
    execute_job,
    public_error,
    store_clone,
    store_enroll,
    throttled,
)
from deepfake_studio.service.store import Job, JobStore
from deepfake_studio.studio import Studio, StudioConfig
from deepfake_studio.voices import Voice, pack_voice, unpack_voice

log = logging.getLogger(__name__)

TASKS: dict[str, str] = {
    "clone": "deepfake_studio.clone",
    "enroll": "deepfake_studio.enroll",
    "detect": "deepfake_studio.detect",
}
_ATTEMPTS_KEY = "deepfake-studio:attempts:{}"
_MGET_CHUNK = 500


class BrokerError(StudioError):
    """The broker is unreachable or its address is not a Redis URL."""


@dataclass(frozen=True)
class QueueConfig:
    """Where jobs go and how hard the queue tries to finish them."""

    broker: str  # redis://[:password@]host:port/db (rediss:// for TLS)
    result_backend: str | None = None  # None: the broker's Redis
    queue: str = "deepfake-studio"
    max_attempts: int = 3  # starts of one job (crash retries and dead workers) before it fails
    retry_delay_s: float = 2.0  # pause before a crashed job is retried
    # An unacknowledged job returns to the queue after this long (its worker machine died);
    # it must be longer than the longest job, or a slow job also starts on a second worker.
    visibility_timeout_s: float = 3600.0
    result_ttl_s: float = 7 * 24 * 3600.0  # results wait this long for a stopped server
    poll_interval_s: float = 0.25  # how often the server reads progress and results


@dataclass(frozen=True)
class WorkerSettings:
    """A worker process's own settings (the queue's are in QueueConfig)."""

    studio: StudioConfig = field(default_factory=StudioConfig)
    concurrency: int = 1  # worker processes, each with its own Studio and models
    name: str | None = None  # node name; "@%h" (the host name) is added when it has no '@'
    preload: tuple[str, ...] = ()  # engines to load at start, besides encoder and watermark
    loglevel: str = "INFO"


def redacted(url: str) -> str:
    """A broker URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_broker(url: str, timeout_s: float = 3.0) -> None:
    """Refuse a URL that is not Redis, and fail now (one line) if Redis does not answer."""
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise BrokerError(f"the broker must be a Redis URL (redis://host:6379/0), not {url!r}")
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s)
        client.ping()
        client.close()
    except redis.RedisError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BrokerError(f"cannot reach the broker at {redacted(url)}: {first}") from None


# -- the Celery app ---------------------------------------------------------------------------
def make_celery(config: QueueConfig, worker: WorkerSettings | None = None) -> Any:
    """A Celery app for `config`. With `worker`, the job tasks are registered (a worker);
    without, it can only send tasks and read results (the server, the batch command)."""
    from celery import Celery

    app = Celery(
        "deepfake_studio",
        broker=config.broker,
        backend=config.result_backend or config.broker,
        set_as_current=False,  # no process-wide default app: each caller passes its own
    )
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_default_queue=config.queue,
        # At-least-once: ack after the job, requeue when its process dies, take one at a time.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_deduplicate_successful_tasks=True,  # a redelivered finished job is skipped
        broker_transport_options={
            "visibility_timeout": config.visibility_timeout_s,
            # How often a worker looks for timed-out jobs of dead workers (kombu's default
            # scans only every 100 s); a scan is one small sorted-set query.
            "unacked_restore_interval": _restore_interval(config.visibility_timeout_s),
            "unacked_restore_throttle": 1,
        },
        result_expires=int(config.result_ttl_s),
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
        # A new pool process loads the models before it reports up (tens of seconds);
        # Celery's default 4 s would kill every replacement of a process that died.
        worker_proc_alive_timeout=600.0,
        enable_utc=True,
    )
    if worker is not None:
        _register_tasks(app, config, worker)
    return app


def _restore_interval(visibility_timeout_s: float) -> float:
    return min(10.0, max(1.0, visibility_timeout_s / 4))


def _register_tasks(app: Any, config: QueueConfig, settings: WorkerSettings) -> None:
    from celery.signals import worker_process_init

    # This process's Studio. Each prefork child builds its own after the fork: models (and
    # their thread pools) must not be shared across fork.
    holder: dict[str, Studio] = {}

    def studio() -> Studio:
        if "studio" not in holder:
            holder["studio"] = Studio(settings.studio)
        return holder["studio"]

    def load_models(**_: Any) -> None:
        import torch

        cores = os.cpu_count() or 1
        torch.set_num_threads(max(1, cores // max(1, settings.concurrency)))
        loaded = studio()
        _ = loaded.encoder
        if loaded.config.watermark:
            _ = loaded.watermarker
        for engine in settings.preload:
            loaded.engine(engine)
        log.info("worker process %d: models loaded (%s)", os.getpid(), ", ".join(settings.preload))

    worker_process_init.connect(load_models, weak=False)

    def define(kind: str) -> None:
        def job(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
            return _run_task(self, kind, payload, studio, config)

        job.__name__ = f"{kind}_job"
        app.task(name=TASKS[kind], bind=True, max_retries=None)(job)

    for kind in TASKS:
        define(kind)


def _run_task(
    task: Any,
    kind: str,
    payload: Mapping[str, Any],
    studio: Callable[[], Studio],
    config: QueueConfig,
) -> dict[str, Any]:
    """One delivery of a job in a worker: compute it and return the outcome as JSON."""
    from celery.exceptions import Ignore

    job_id = task.request.id
    backend = task.app.backend
    if backend.get_task_meta(job_id).get("status") == "SUCCESS":
        raise Ignore()  # a duplicate delivery of a finished job: keep the stored result
    worker = task.request.hostname or "?"
    key = _ATTEMPTS_KEY.format(job_id)
    attempt = int(backend.client.incr(key))
    backend.client.expire(key, int(config.result_ttl_s))
    outcome: dict[str, Any] = {"worker": worker, "attempts": attempt}
    if attempt > config.max_attempts:
        log.error("job %s started %d times without finishing: failed", job_id, attempt - 1)
        return {
            **outcome,
            "ok": False,
            "error": f"the job was started {attempt - 1} times without finishing "
            "(its worker stopped each time: out of memory?)",
        }

    def report(fraction: float, text: str) -> None:
        meta = {"progress": fraction, "message": text, "worker": worker, "pid": os.getpid()}
        task.update_state(state="PROGRESS", meta=meta)

    report(0.0, "starting")
    request = payload.get("request") or {}
    name = request.get("reference")
    path: Path | None = None
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="deepfake-studio-job-") as tmp:
            files = _write_inputs(payload.get("inputs") or {}, Path(tmp))
            path = files.get(name) if name else None
            body = _COMPUTE[kind](studio(), payload, files, throttled(report))
            outcome["seconds"] = round(time.perf_counter() - started, 3)  # compute time
    except StudioError as e:
        return {**outcome, "ok": False, "error": public_error(str(e), path, name)}
    except Exception as e:
        if attempt < config.max_attempts:
            log.exception("job %s crashed on attempt %d; retrying", job_id, attempt)
            raise task.retry(exc=e, countdown=config.retry_delay_s) from None
        log.exception("job %s crashed on attempt %d; giving up", job_id, attempt)
        return {**outcome, "ok": False, "error": INTERNAL_ERROR}
    return {**outcome, "ok": True, **body}


def _write_inputs(inputs: Mapping[str, str], folder: Path) -> dict[str, Path]:
    """The job's uploaded files (base64 in the message) as files under their own names."""
    files: dict[str, Path] = {}
    for name, data in inputs.items():
        if Path(name).name != name or name.startswith("."):
            raise StudioError(f"input name {name!r} must be a plain file name")
        path = folder / name
        path.write_bytes(_b64decode(data, f"input {name!r}"))
        files[name] = path
    return files


def _compute_clone(
    studio: Studio, payload: Mapping[str, Any], files: Mapping[str, Path], report: Progress
) -> dict[str, Any]:
    request = payload["request"]
    reference = files.get(request["reference"]) if request.get("reference") else None
    voice = unpack_voice(payload["voice"]) if payload.get("voice") else None
    if reference is None and voice is None:
        raise StudioError("the job carries neither a voice nor a reference recording")
    output = compute_clone(studio, request, reference, voice, report)
    return {
        "audio": encode_audio(output.audio),
        "voice": pack_voice(output.voice),
        "watermarked": output.watermarked,
    }


def _compute_enroll(
    studio: Studio, payload: Mapping[str, Any], files: Mapping[str, Path], report: Progress
) -> dict[str, Any]:
    request = payload["request"]
    reference = files.get(request.get("reference") or "")
    if reference is None:
        raise StudioError("the enrollment job carries no reference recording")
    return {"voice": pack_voice(compute_enroll(studio, request, reference, report))}


def _compute_detect(
    studio: Studio, payload: Mapping[str, Any], files: Mapping[str, Path], report: Progress
) -> dict[str, Any]:
    """Detector verdict + watermark for `request["audio"]` (an input file of the payload)."""
    audio = files.get(payload["request"].get("audio") or "")
    if audio is None:
        raise StudioError("the detect job carries no audio file")
    report(0.0, "scoring")
    return detection_summary(studio, audio)


_COMPUTE: dict[str, Callable[[Studio, Mapping[str, Any], Mapping[str, Path], Progress], Any]] = {
    "clone": _compute_clone,
    "enroll": _compute_enroll,
    "detect": _compute_detect,
}


# -- what travels -----------------------------------------------------------------------------
def encode_audio(audio: Audio) -> dict[str, Any]:
    """Audio as JSON: 24-bit FLAC (lossless for our 16-bit outputs, ~half of raw), base64."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio.samples, -1.0, 1.0), audio.sample_rate, "PCM_24", format="FLAC")
    return {"flac": base64.b64encode(buffer.getvalue()).decode("ascii")}


def decode_audio(data: Mapping[str, Any]) -> Audio:
    samples, rate = sf.read(io.BytesIO(_b64decode(data.get("flac"), "audio")), dtype="float32")
    return Audio(samples, rate)


def _b64decode(data: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(data), validate=True)
    except binascii.Error:
        raise StudioError(f"the job's {what} is not valid base64") from None


def clone_payload(
    request: Mapping[str, Any], reference: Path | None, voice: Voice | None
) -> dict[str, Any]:
    """A clone task's argument: the request, the reference's bytes or the voice itself (the
    worker has neither the server's uploads nor its voice library)."""
    inputs = {}
    if reference is not None:
        inputs[request["reference"]] = base64.b64encode(reference.read_bytes()).decode("ascii")
    return {
        "request": dict(request),
        "inputs": inputs,
        "voice": pack_voice(voice) if voice is not None else None,
    }


def clone_output(result: Mapping[str, Any]) -> CloneOutput:
    """A worker's clone result back as what `store_clone` / `save_clone` take."""
    return CloneOutput(
        decode_audio(result["audio"]),
        unpack_voice(result["voice"]),
        bool(result.get("watermarked", True)),
    )


# -- talking to the queue ---------------------------------------------------------------------
class Dispatcher:
    """Sends jobs and reads their state; shared by the server runner and the batch command."""

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self.app = make_celery(config)

    def send(self, kind: str, job_id: str, payload: Mapping[str, Any]) -> None:
        # argsrepr: what Celery logs and reports of the arguments (not the uploaded audio).
        self.app.send_task(
            TASKS[kind],
            args=[dict(payload)],
            task_id=job_id,
            argsrepr=f"({kind} job {job_id})",
            kwargsrepr="{}",
        )

    def states(self, job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The result backend's record of each job ({'status': 'PENDING'} when it has none)."""
        backend = self.app.backend
        ids = list(job_ids)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), _MGET_CHUNK):
            chunk = ids[start : start + _MGET_CHUNK]
            # One round trip for many jobs (AsyncResult would be one per job).
            raws = backend.client.mget([backend.get_key_for_task(i) for i in chunk])
            for job_id, raw in zip(chunk, raws, strict=True):
                found[job_id] = _decode_meta(raw)
        return found

    def queued_ids(self) -> set[str]:
        """Ids of the jobs waiting in the broker's queue or held unacknowledged by a worker
        (Redis transport layout: one list per priority, one hash of unacked messages)."""
        ids: set[str] = set()
        with self.app.connection_for_read() as connection:
            channel = connection.default_channel
            client = channel.client
            raws = []
            for priority in channel.priority_steps:
                raws += client.lrange(channel._q_for_pri(self.config.queue, priority), 0, -1)
            raws += client.hvals(channel.unacked_key)
        for raw in raws:
            with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
                message = json.loads(raw)
                if isinstance(message, list):  # unacked: [message, exchange, routing key]
                    message = message[0]
                ids.add(str(message["headers"]["id"]))
        return ids

    def forget(self, job_id: str) -> None:
        """Drop a stored result (it can be megabytes of audio) once it has been written."""
        self.app.backend.forget(job_id)
        self.app.backend.client.delete(_ATTEMPTS_KEY.format(job_id))

    def workers(self, timeout_s: float = 1.0) -> list[str]:
        """Names of the workers that answer a ping."""
        replies = self.app.control.ping(timeout=timeout_s) or []
        return sorted(name for reply in replies for name in reply)

    def close(self) -> None:
        self.app.close()


def _decode_meta(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        return {"status": "PENDING", "result": None}
    try:
        meta = json.loads(raw)
    except ValueError:
        return {"status": "FAILURE", "result": "unreadable result"}
    return meta if isinstance(meta, dict) else {"status": "FAILURE", "result": "bad result"}


def failure_line(meta: Mapping[str, Any]) -> str:
    """The error of a job that ended as a Celery FAILURE (not one of our reported failures)."""
    result = meta.get("result")
    if isinstance(result, dict) and result.get("exc_type"):
        return f"{result['exc_type']}: {result.get('exc_message')}"
    return str(result)


# -- the server's backend ---------------------------------------------------------------------
class CeleryRunner:
    """A `JobRunner` that sends jobs to Celery workers and stores what comes back.

    Two threads: a sender (submissions and restart recovery, so a slow or briefly unreachable
    broker never blocks a request) and a collector (progress and results → the job store).
    """

    def __init__(self, studio: Studio, store: JobStore, config: QueueConfig) -> None:
        self.studio = studio
        self.store = store
        self.config = config
        self.dispatcher: Dispatcher | None = None  # made by start(), closed by stop()
        self._outbox: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, str]] = {}  # last progress written per job
        # Job kinds no worker task exists for (face swaps) run here, one at a time.
        self._local: ThreadPoolExecutor | None = None

    def check(self) -> None:
        """Fail now, in one line, if the broker cannot be reached."""
        check_broker(self.config.broker)
        if self.config.result_backend:
            check_broker(self.config.result_backend)

    def submit(self, job_id: str) -> None:
        self._outbox.put(job_id)

    def start(self) -> None:
        with self._lock:
            if self._threads:
                return
            self._stopping.clear()
            self.dispatcher = Dispatcher(self.config)
            self._local = ThreadPoolExecutor(1, thread_name_prefix="studio-local-job")
            for target, name in ((self._send_loop, "sender"), (self._collect_loop, "collector")):
                thread = threading.Thread(target=target, name=f"studio-queue-{name}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop sending and collecting. Jobs go on in the workers; their results wait in the
        result backend and are stored after the next start."""
        with self._lock:
            threads, self._threads = self._threads, []
            self._stopping.set()
            self._outbox.put(None)
        for thread in threads:
            thread.join(timeout)
        if self._local is not None:  # a local job still running ends in its thread
            self._local.shutdown(wait=False, cancel_futures=True)
            self._local = None
        if self.dispatcher is not None:
            self.dispatcher.close()

    def queue_depth(self) -> int:
        return self.store.count("queued")

    @property
    def _queue(self) -> Dispatcher:
        if self.dispatcher is None:
            raise RuntimeError("the runner is not started")
        return self.dispatcher

    # -- sending ----------------------------------------------------------------------------
    def _send_loop(self) -> None:
        self._retrying(self._recover)
        while True:
            job_id = self._outbox.get()
            if job_id is None or self._stopping.is_set():
                return
            self._retrying(lambda job_id=job_id: self._send(job_id))

    def _retrying(self, action: Callable[[], None]) -> None:
        """Run `action` until the broker takes it (the job stays queued meanwhile)."""
        delay = 0.5
        while not self._stopping.is_set():
            try:
                action()
                return
            except Exception as e:
                log.warning("broker %s: %s; retrying", redacted(self.config.broker), e)
                self._stopping.wait(delay)
                delay = min(delay * 2, 10.0)

    def _recover(self) -> None:
        """After a restart: send again the unfinished jobs the queue knows nothing about.

        A job still in Redis (queued or held by a worker) or with a state in the result
        backend (running, or finished while this server was down) is left alone: sending it
        twice would run it twice.
        """
        unfinished = self.store.unfinished()
        if not unfinished:
            return
        # Broker first, states second: a job that leaves the broker in between has finished,
        # and a finished job's state is stored before its message is acknowledged.
        in_broker = self._queue.queued_ids()
        states = self._queue.states(unfinished)
        for job_id in unfinished:
            if states[job_id]["status"] == "PENDING" and job_id not in in_broker:
                self.store.requeue(job_id)  # it was 'running' on a worker that is gone
                log.info("job %s was not in the queue: sending it again", job_id)
                self._send(job_id)

    def _send(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job.finished:
            return
        if job.kind not in TASKS:  # no worker task for it: run it in this process
            if self._local is not None:
                self._local.submit(execute_job, self.studio, self.store, job.id)
            return
        try:
            payload = self._payload(job)
        except StudioError as e:  # e.g. the voice was deleted since the job was accepted
            self.store.fail(job.id, str(e))
            return
        except OSError:
            log.exception("job %s: cannot read its inputs", job.id)
            self.store.fail(job.id, "the job's uploaded file is missing on the server")
            return
        self._queue.send(job.kind, job.id, payload)

    def _payload(self, job: Job) -> dict[str, Any]:
        request = job.request
        name = request.get("reference")
        path = self.store.input_path(job.id, name) if name else None
        if job.kind == "clone":
            voice = self.studio.voice(request["voice"]) if request.get("voice") else None
            return clone_payload(request, path, voice)
        inputs = {}
        if path is not None:
            inputs[name] = base64.b64encode(path.read_bytes()).decode("ascii")
        return {"request": dict(request), "inputs": inputs, "voice": None}

    # -- collecting -------------------------------------------------------------------------
    def _collect_loop(self) -> None:
        while not self._stopping.wait(self.config.poll_interval_s):
            try:
                self.collect()
            except Exception:
                log.exception("reading job states from the result backend failed")
                self._stopping.wait(2.0)

    def collect(self) -> None:
        """One pass: copy progress into the store, store finished results."""
        unfinished = self.store.unfinished()
        if not unfinished:
            return
        for job_id, meta in self._queue.states(unfinished).items():
            status = meta.get("status")
            if status == "PROGRESS":
                self._progress(job_id, meta.get("result") or {})
            elif status == "RETRY":
                self._progress(job_id, {"progress": 0.0, "message": "retrying after an error"})
            elif status in ("SUCCESS", "FAILURE", "REVOKED"):
                self._finish(job_id, meta)

    def _progress(self, job_id: str, info: Mapping[str, Any]) -> None:
        worker = info.get("worker")
        message = str(info.get("message", "running"))
        if worker:
            message = f"{message} (on {worker})"
        progress = float(info.get("progress", 0.0))
        if self._seen.get(job_id) == (progress, message):
            return
        self._seen[job_id] = (progress, message)
        self.store.claim(job_id)  # queued → running the first time a worker reports
        self.store.set_progress(job_id, progress, message)

    def _finish(self, job_id: str, meta: Mapping[str, Any]) -> None:
        job = self.store.get(job_id)
        self._seen.pop(job_id, None)
        if not job.finished:  # stored already (a duplicate result): never twice
            self.store.claim(job_id)  # a job so quick that no progress was seen
            self._store_outcome(job, meta)
        self._queue.forget(job_id)

    def _store_outcome(self, job: Job, meta: Mapping[str, Any]) -> None:
        result = meta.get("result")
        if meta.get("status") != "SUCCESS" or not isinstance(result, dict):
            log.error("job %s ended as %s: %s", job.id, meta.get("status"), failure_line(meta))
            self.store.fail(job.id, INTERNAL_ERROR)
            return
        where = {key: result.get(key) for key in ("worker", "attempts", "seconds")}
        try:
            if not result.get("ok"):
                raise StudioError(str(result.get("error") or "the job failed"))
            if job.kind == "clone":
                stored = store_clone(self.studio, self.store, job, clone_output(result))
            elif job.kind == "enroll":
                stored = store_enroll(self.studio, job.request, unpack_voice(result["voice"]))
            else:
                raise StudioError(f"{job.kind} jobs are not supported by this server yet")
        except StudioError as e:
            self.store.fail(job.id, str(e))
        except Exception:
            log.exception("storing the result of job %s failed", job.id)
            self.store.fail(job.id, INTERNAL_ERROR)
        else:
            self.store.finish(job.id, {**stored, **where})


# -- the worker command -----------------------------------------------------------------------
def worker_node_name(name: str | None) -> str:
    """The worker's Celery node name, "%h" (and Celery's other escapes) expanded here so that
    our own log lines show the real host: "box-1" → "box-1@thishost"."""
    from celery.utils.nodenames import host_format

    name = name or "studio"
    return host_format(name if "@" in name else f"{name}@%h")


_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{100,}={0,2}")


def _without_base64(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return _BASE64_RUN.sub(lambda m: f"<{len(m.group()) * 3 // 4:,} bytes of base64>", value)


class Base64LogFilter(logging.Filter):
    """Replaces long base64 runs (job audio, uploaded recordings) in a log record's message and
    arguments with their size, so a worker logs a line per job, not kilobytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _without_base64(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {k: _without_base64(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_without_base64(v) for v in record.args)
        return True


def run_worker(config: QueueConfig, settings: WorkerSettings) -> None:
    """Serve jobs until stopped (Ctrl-C or SIGTERM finish the current job first)."""
    if settings.concurrency < 1:
        raise StudioError("--concurrency must be at least 1")
    check_broker(config.broker)
    studio_config = settings.studio
    kokoro = studio_config.engines.kokoro
    if settings.concurrency > 1 and kokoro.threads == 0:
        # N processes on the same cores: each gets its share instead of all of them.
        share = max(1, (os.cpu_count() or 1) // settings.concurrency)
        engines = replace(studio_config.engines, kokoro=replace(kokoro, threads=share))
        studio_config = replace(studio_config, engines=engines)
    settings = replace(settings, studio=studio_config)
    name = worker_node_name(settings.name)
    app = make_celery(config, settings)
    # Task results carry audio as base64 FLAC: the log says how big it is, not what it is.
    for logger in ("celery.app.trace", "celery.worker.strategy", "celery.worker.request"):
        logging.getLogger(logger).addFilter(Base64LogFilter())
    argv = [
        "worker",
        f"--hostname={name}",
        f"--concurrency={settings.concurrency}",
        "--pool=prefork",  # one process per job slot: a Studio each, and SIGKILL-able alone
        f"--queues={config.queue}",
        f"--loglevel={settings.loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]
    started = time.monotonic()
    log.info("starting worker %s on %s", name, redacted(config.broker))
    app.worker_main(argv)
    log.info("worker %s stopped after %.0f s", name, time.monotonic() - started)
