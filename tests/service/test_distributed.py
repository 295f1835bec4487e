"""The Celery backend end to end: a real Redis on a loopback port, two `deepfake-studio worker`
processes, the real API (TestClient) in broker mode, real models (piper: the engine is not
what is under test here), outputs decoded and checked."""

from __future__ import annotations

import base64
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import deepfake_studio
from deepfake_studio import Studio, StudioConfig
from deepfake_studio.errors import StudioError
from deepfake_studio.provenance import load_or_create_key
from deepfake_studio.service.distributed import (
    CeleryRunner,
    Dispatcher,
    QueueConfig,
    check_broker,
    redacted,
)
from deepfake_studio.service.runner import INTERNAL_ERROR
from deepfake_studio.service.store import JobStore
from tests.conftest import skip_or_fail_in_ci

REDIS = shutil.which("redis-server")
if REDIS is None:
    skip_or_fail_in_ci("redis-server not installed (.ci/run installs it)")

API = "/api/v1"
WORKERS = ("a@test", "b@test")
# Short, so a job of a SIGKILLed worker comes back within the test, but longer than any job
# here on a loaded machine: a job that outlives it is handed to the second worker too (8 s
# once made an enrollment start twice in CI).
VISIBILITY_S = 30.0
LONG_TEXT = " ".join(
    f"This is sentence number {n} of a longer text, read slowly to keep the worker busy."
    for n in ("one", "two", "three", "four", "five", "six", "seven", "eight")
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway Redis: loopback only, nothing saved to disk."""
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 20
    while True:
        try:
            check_broker(url, timeout_s=0.5)
            break
        except StudioError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


class Workers:
    """`deepfake-studio worker` processes, each in its own process group so that SIGKILL takes
    the whole worker (main process and its pool child) like a machine that dies."""

    def __init__(self, broker: str, root: Path) -> None:
        self.broker, self.root = broker, root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.dispatcher = Dispatcher(QueueConfig(broker))

    def start(self, name: str) -> None:
        src = str(Path(deepfake_studio.__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        self.procs[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deepfake_studio.cli",
                "worker",
                "--broker",
                self.broker,
                "--name",
                name,
                "--preload",
                "piper",
                "--visibility-timeout",
                str(VISIBILITY_S),
                "--data-dir",
                str(self.root / name.split("@")[0]),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, names: tuple[str, ...], timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if set(names) <= set(self.dispatcher.workers(timeout_s=1.0)):
                return
            for name in names:
                if self.procs[name].poll() is not None:
                    raise AssertionError(f"worker {name} exited: {self.log(name)[-2000:]}")
        raise AssertionError(f"workers {names} not ready in {timeout} s")

    def ensure(self, names: tuple[str, ...]) -> None:
        """Start any of `names` that is not running (a test killed it) and wait for all."""
        for name in names:
            if name not in self.procs:
                self.start(name)
        self.wait_ready(names)

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            os.killpg(proc.pid, signal.SIGTERM)  # warm shutdown: finish the current job
        for name, proc in list(self.procs.items()):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            self.procs.pop(name)
        self.dispatcher.close()


@pytest.fixture(scope="module")
def workers(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    pool = Workers(broker, tmp_path_factory.mktemp("workers"))
    for name in WORKERS:
        pool.start(name)
    try:
        pool.wait_ready(WORKERS)
        yield pool
    finally:
        pool.stop()


@pytest.fixture(scope="module")
def server_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-home")


def _server(home: Path, broker: str) -> Any:
    from fastapi.testclient import TestClient

    from deepfake_studio.service.api import create_app

    studio = Studio(StudioConfig(data_dir=home))  # loads no model: the workers do the work
    config = QueueConfig(broker, poll_interval_s=0.1)
    return TestClient(create_app(studio, runner=CeleryRunner(studio, JobStore(home), config)))


@pytest.fixture(scope="module")
def client(server_home: Path, broker: str, workers: Workers) -> Iterator[Any]:
    with _server(server_home, broker) as test_client:
        yield test_client


def _wait(client: Any, job_id: str, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"{API}/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def _decoded(response: Any) -> tuple[np.ndarray, int]:
    assert response.status_code == 200, response.text
    data, rate = sf.read(io.BytesIO(response.content), dtype="float32")
    return data, rate


def _assert_speech(data: np.ndarray, rate: int, min_seconds: float) -> None:
    assert len(data) / rate > min_seconds
    rms_db = 20 * np.log10(np.sqrt(np.mean(np.square(data))) + 1e-12)
    assert -35 < rms_db < -5, rms_db  # the studio normalises to about -20 LUFS


def _only_outputs(home: Path, job_id: str, name: str = "output.wav") -> None:
    files = sorted(p.name for p in (home / "jobs" / job_id).iterdir())
    assert files == [name, f"{name}.provenance.json"], files  # one result, no inputs left


@pytest.fixture(scope="module")
def voice(client: Any, example_reference: Path) -> dict[str, Any]:
    """A piper voice enrolled through the API by a worker, stored by the server."""
    response = client.post(
        f"{API}/voices",
        data={
            "name": "Queue Piper",
            "consent": "Public-domain LJ Speech reader.",
            "engine": "piper",
        },
        files={"audio": ("lj.flac", example_reference.read_bytes(), "audio/flac")},
    )
    assert response.status_code == 202, response.text
    return _wait(client, response.json()["job_id"])


def test_broker_errors_are_one_line() -> None:
    with pytest.raises(StudioError, match="must be a Redis URL"):
        check_broker("amqp://localhost//")
    with pytest.raises(StudioError, match=r"cannot reach the broker at redis://:\*\*\*@127"):
        check_broker(f"redis://:hunter2@127.0.0.1:{_free_port()}/0", timeout_s=0.5)
    assert redacted("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"


def test_worker_enrolls_and_server_stores_the_voice(
    client: Any, voice: dict[str, Any], server_home: Path
) -> None:
    assert voice["state"] == "done", voice
    assert voice["result"]["voice"] == "queue-piper" and voice["result"]["engine"] == "piper"
    assert voice["result"]["worker"] in WORKERS and voice["result"]["attempts"] == 1
    # Stored in the server's own library (the worker's data dir has no voices).
    assert (server_home / "voices" / "queue-piper" / "voice.json").is_file()
    assert client.get(f"{API}/voices/queue-piper").json()["engine"] == "piper"


def test_workers_get_the_enrollment_quality_and_reference_text(
    client: Any, example_reference: Path
) -> None:
    # Words far longer than the recording: a standard fit refuses them before any work, on the
    # worker. Had the quality not arrived, a quick fit would refuse words (another message); had
    # the words not arrived, Whisper would transcribe and the fit would run.
    words = " ".join(["Printing, then, for our purpose, may be considered as an art."] * 10)
    fields = {"consent": "Public-domain LJ Speech reader.", "quality": "standard"}
    enroll = client.post(
        f"{API}/voices",
        data={**fields, "name": "Queue Standard", "reference_text": words},
        files={"audio": ("lj.flac", example_reference.read_bytes(), "audio/flac")},
    )
    clone = client.post(
        f"{API}/synthesize",
        data={**fields, "text": "Hi.", "reference_text": words},
        files={"reference": ("lj.flac", example_reference.read_bytes(), "audio/flac")},
    )
    for response in (enroll, clone):
        assert response.status_code == 202, response.text
        job = _wait(client, response.json()["job_id"])
        assert job["request"]["quality"] == "standard" and job["request"]["reference_text"] == words
        assert job["state"] == "failed", job
        assert "phonemes, Kokoro reads at most 510" in job["error"], job["error"]


def test_two_workers_share_jobs_and_the_server_stores_results(
    client: Any,
    voice: dict[str, Any],
    server_home: Path,
    broker: str,
    workers: Workers,
    example_reference: Path,
) -> None:
    workers.ensure(WORKERS)
    ids = []
    for i in range(5):
        body = {"text": f"Queued sentence number {i + 1}.", "voice": "queue-piper"}
        response = client.post(f"{API}/synthesize", json=body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["job_id"])
    inline = client.post(  # an uploaded reference travels in the message
        f"{API}/synthesize",
        data={
            "text": "Cloned on a worker from an upload.",
            "engine": "piper",
            "format": "flac",
            "consent": "Public-domain LJ Speech reader.",
        },
        files={"reference": ("mine.flac", example_reference.read_bytes(), "audio/flac")},
    )
    assert inline.status_code == 202, inline.text
    jobs = [_wait(client, job_id) for job_id in [*ids, inline.json()["job_id"]]]

    assert [j["state"] for j in jobs] == ["done"] * 6, [j["error"] for j in jobs]
    ran_by = {j["result"]["worker"] for j in jobs}
    assert ran_by == set(WORKERS), ran_by  # both workers took jobs
    assert all(j["result"]["attempts"] == 1 for j in jobs)
    assert all(0 < j["result"]["seconds"] < 60 for j in jobs)  # compute time on the worker
    key_id = load_or_create_key(server_home).key_id
    for job in jobs:
        fmt = job["result"]["format"]
        data, rate = _decoded(client.get(f"{API}/jobs/{job['id']}/audio"))
        assert rate == 22_050 and job["result"]["sample_rate"] == rate
        _assert_speech(data, rate, 1.0)
        assert abs(len(data) / rate - job["result"]["duration"]) < 0.01
        record = client.get(f"{API}/jobs/{job['id']}/provenance").json()
        # Signed by the server's key (never sent to workers), watermarked by the worker.
        assert record["signer"]["key_id"] == key_id
        assert record["parameters"]["job"] == job["id"] and record["watermark"]["applied"]
        _only_outputs(server_home, job["id"], f"output.{fmt}")
    assert jobs[-1]["result"]["voice"] is None and jobs[0]["result"]["voice"] == "queue-piper"
    # Results are removed from Redis once stored.
    dispatcher = Dispatcher(QueueConfig(broker))
    try:
        states = dispatcher.states(j["id"] for j in jobs)
        assert {s["status"] for s in states.values()} == {"PENDING"}
    finally:
        dispatcher.close()


def _run_direct(dispatcher: Dispatcher, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    job_id = str(uuid.uuid4())
    dispatcher.send(kind, job_id, payload)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        meta = dispatcher.states([job_id])[job_id]
        if meta["status"] in ("SUCCESS", "FAILURE"):
            dispatcher.forget(job_id)
            return meta
        time.sleep(0.1)
    raise AssertionError(f"{kind} task did not finish: {meta}")


def test_failures_come_back_as_one_line_and_crashes_are_retried_then_failed(
    broker: str, workers: Workers, example_reference: Path, piper_engine: Any
) -> None:
    dispatcher = Dispatcher(QueueConfig(broker))
    try:
        bad_voice = {"meta": {"id": "x"}, "arrays": base64.b64encode(b"junk").decode()}
        meta = _run_direct(dispatcher, "clone", {"request": {"text": "Hi."}, "voice": bad_voice})
        assert meta["status"] == "SUCCESS" and meta["result"]["ok"] is False
        assert "voice 'x' is corrupt" in meta["result"]["error"]
        assert meta["result"]["attempts"] == 1  # a user error is not retried

        meta = _run_direct(dispatcher, "detect", {"request": {}})
        assert meta["result"]["error"] == "the detect job carries no audio file"
        # A real recording: scored by the shipped detector, no watermark.
        real = base64.b64encode(example_reference.read_bytes()).decode()
        meta = _run_direct(
            dispatcher, "detect", {"request": {"audio": "lj.flac"}, "inputs": {"lj.flac": real}}
        )
        verdict = meta["result"]
        assert verdict["ok"] is True, verdict
        assert verdict["watermark"]["present"] is False
        assert verdict["label"] == "real" and verdict["probability"] < verdict["threshold"]
        assert 7.0 < verdict["duration"] < 8.0 and verdict["segments"]
        # A Piper clip (unmarked, so only the detector can tell): synthetic.
        text = "A sentence spoken by Piper, scored on a worker."
        made = piper_engine.synthesize(text, piper_engine.default_conditioning())
        buffer = io.BytesIO()
        sf.write(buffer, made, piper_engine.sample_rate, format="WAV")
        made_b64 = base64.b64encode(buffer.getvalue()).decode()
        meta = _run_direct(
            dispatcher, "detect", {"request": {"audio": "p.wav"}, "inputs": {"p.wav": made_b64}}
        )
        verdict = meta["result"]
        assert verdict["ok"] is True and verdict["watermark"]["present"] is False, verdict
        assert verdict["label"] == "synthetic" and verdict["probability"] >= verdict["threshold"]

        # A crash (here: a malformed message) is retried, then fails without details.
        start = time.monotonic()
        meta = _run_direct(dispatcher, "clone", {"request": {"text": "Hi."}, "inputs": "x"})
        assert meta["result"] == {
            "ok": False,
            "error": INTERNAL_ERROR,
            "worker": meta["result"]["worker"],
            "attempts": QueueConfig(broker).max_attempts,
        }
        assert time.monotonic() - start > 2 * QueueConfig(broker).retry_delay_s
    finally:
        dispatcher.close()


@pytest.mark.slow
def test_server_restart_recovery_in_broker_mode(
    client: Any, voice: dict[str, Any], broker: str, workers: Workers, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / "voices").mkdir(parents=True)
    # The voice this server will use, copied from the shared server's library.
    src = Path(client.app.state.studio.data_dir) / "voices" / "queue-piper"
    dst = home / "voices" / "queue-piper"
    dst.mkdir()
    for part in src.iterdir():
        (dst / part.name).write_bytes(part.read_bytes())
    # 1. A job a crashed server had claimed but never sent to the broker.
    store = JobStore(home)
    lost = store.create("clone", {"text": "Lost by a crash.", "voice": "queue-piper"})
    store.claim(lost.id)
    # 2. A job accepted by a server that stops at once (sent or not, it must not be lost).
    with _server(home, broker) as first:
        response = first.post(f"{API}/synthesize", json={"text": "Queued.", "voice": "queue-piper"})
        assert response.status_code == 202
        stopped = response.json()["job_id"]
    with _server(home, broker) as second:
        jobs = [_wait(second, job_id) for job_id in (lost.id, stopped)]
        for job in jobs:
            assert job["state"] == "done", job
            assert job["result"]["attempts"] == 1  # sent again only if it was never sent
            data, rate = _decoded(second.get(f"{API}/jobs/{job['id']}/audio"))
            _assert_speech(data, rate, 0.5)
            _only_outputs(home, job["id"])


def test_batch_through_workers_writes_here_and_resumes(
    client: Any, voice: dict[str, Any], broker: str, workers: Workers, tmp_path: Path,
    example_reference: Path,
) -> None:  # fmt: skip
    from deepfake_studio.provenance import verify
    from deepfake_studio.service.batch import read_jobs, run_distributed

    home = tmp_path / "home"
    src = Path(client.app.state.studio.data_dir) / "voices" / "queue-piper"
    (home / "voices" / "queue-piper").mkdir(parents=True)
    for part in src.iterdir():
        (home / "voices" / "queue-piper" / part.name).write_bytes(part.read_bytes())
    (tmp_path / "lj.flac").write_bytes(example_reference.read_bytes())
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "text,out,voice,reference,consent,engine\n"
        "First batch line.,one.wav,queue-piper,,,\n"
        "Second batch line.,two.flac,Queue Piper,,,\n"
        '"Third, from a reference.",three.wav,,lj.flac,LJ (public domain),piper\n',
        encoding="utf-8",
    )
    studio = Studio(StudioConfig(data_dir=home))
    rows = read_jobs(jobs, tmp_path / "out", studio)
    dispatcher = Dispatcher(QueueConfig(broker, poll_interval_s=0.1))
    try:
        report = run_distributed(studio, rows, dispatcher, lambda row, error: None)
        assert report.summary() == "3 done, 0 skipped (already there), 0 failed", report.failed
        # Computed on the workers: this process loaded no model, only signed the outputs.
        assert studio.loaded_models() == []
        for row in rows:
            data, rate = sf.read(row.out, dtype="float32")
            _assert_speech(data, rate, 0.5)
            assert verify(row.out, data_dir=home).ok
        kept = rows[1].out.stat().st_mtime_ns
        rows[0].out.unlink()
        again = run_distributed(studio, rows, dispatcher, lambda row, error: None)
        assert again.summary() == "1 done, 2 skipped (already there), 0 failed"
        assert rows[0].out.is_file() and rows[1].out.stat().st_mtime_ns == kept
        assert {s["status"] for s in dispatcher.states(r.task_id() for r in rows).values()} == {
            "PENDING"
        }
    finally:
        dispatcher.close()


# Last: it leaves one worker dead (restarting it would cost another model load).
@pytest.mark.slow
def test_sigkill_of_a_worker_mid_job_still_finishes_the_job_once(
    client: Any, voice: dict[str, Any], workers: Workers, server_home: Path
) -> None:
    response = client.post(f"{API}/synthesize", json={"text": LONG_TEXT, "voice": "queue-piper"})
    job_id = response.json()["job_id"]
    deadline = time.monotonic() + 60
    victim = None
    while victim is None and time.monotonic() < deadline:
        job = client.get(f"{API}/jobs/{job_id}").json()
        # The server writes "sentence i/n (on NAME)" from the worker's progress reports.
        if job["state"] == "running" and "sentence" in job["message"]:
            victim = next(name for name in WORKERS if f"(on {name})" in job["message"])
        time.sleep(0.05)
    assert victim is not None, f"job never reported progress: {job}"
    killed_at = time.monotonic()
    workers.kill(victim)  # the victim stays dead: a later test that needs two restarts it
    done = _wait(client, job_id)
    survivor = next(name for name in WORKERS if name != victim)
    assert done["state"] == "done", done
    assert done["result"]["worker"] == survivor
    assert done["result"]["attempts"] >= 2  # started on the victim, finished on the survivor
    assert time.monotonic() - killed_at < VISIBILITY_S + 60
    data, rate = _decoded(client.get(f"{API}/jobs/{job_id}/audio"))
    _assert_speech(data, rate, 10.0)
    _only_outputs(server_home, job_id)  # one audio file, one record: stored once


def test_restart_sends_again_only_jobs_the_broker_does_not_hold(
    broker: str, tmp_path: Path, example_reference: Path
) -> None:
    # A queue no worker reads, so what the runner sends stays visible in Redis.
    config = QueueConfig(broker, queue=f"idle-{uuid.uuid4().hex[:6]}", poll_interval_s=0.05)
    studio = Studio(StudioConfig(data_dir=tmp_path))
    store = JobStore(tmp_path)
    reference = tmp_path / "upload.flac"
    reference.write_bytes(example_reference.read_bytes())
    held = store.create("clone", {"text": "Held.", "reference": "r.flac", "engine": "piper"},
                        inputs={"r.flac": reference})  # fmt: skip
    lost = store.create("clone", {"text": "Lost.", "voice": None, "engine": "piper"})
    store.claim(lost.id)  # a dead server had it running
    gone = store.create("clone", {"text": "Voice deleted.", "voice": "nobody"})
    dispatcher = Dispatcher(config)
    try:
        dispatcher.send("clone", held.id, {"request": held.request})  # still in the queue
        assert dispatcher.queued_ids() == {held.id}
        runner = CeleryRunner(studio, store, config)
        runner.start()
        try:
            deadline = time.monotonic() + 10
            while dispatcher.queued_ids() != {held.id, lost.id} and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            runner.stop()
        with dispatcher.app.connection_for_read() as connection:
            assert connection.default_channel.client.llen(config.queue) == 2  # not 3: no twin
        assert dispatcher.queued_ids() == {held.id, lost.id}
        assert store.get(lost.id).state == "queued"  # back from 'running'
        failed = store.get(gone.id)
        assert failed.state == "failed" and "unknown voice 'nobody'" in (failed.error or "")
        assert runner.queue_depth() == 2
    finally:
        dispatcher.close()
