"""Job store (SQLite + files) and the embedded job runner, including restart recovery."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from deepfake_studio import Audio
from deepfake_studio.errors import TextError
from deepfake_studio.service.runner import (
    INTERNAL_ERROR,
    EmbeddedRunner,
    JobRunner,
    execute_job,
)
from deepfake_studio.service.store import JobStore, UnknownJobError


def _wait_finished(store: JobStore, job_id: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if job.finished:
            return job.state
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {store.get(job_id)}")


def test_store_creates_a_wal_database_with_queued_jobs(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job = store.create("clone", {"text": "Hello.", "voice": "x"})
    assert (tmp_path / "studio.db").is_file()
    with sqlite3.connect(tmp_path / "studio.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert uuid.UUID(job.id).version == 4
    assert (job.kind, job.state, job.progress, job.error, job.result) == (
        "clone",
        "queued",
        0.0,
        None,
        None,
    )
    assert job.request == {"text": "Hello.", "voice": "x"}
    assert job.created == job.updated and job.created.endswith("+00:00")
    # A second store on the same folder (another process, or the API beside the runner).
    assert JobStore(tmp_path).get(job.id) == job


def test_writes_stay_in_the_log_until_a_checkpoint_and_nothing_pins_it(tmp_path: Path) -> None:
    # Every call opens its own connection; were each the last to close, each write would
    # checkpoint the log (fsyncs: ~25 ms here, twice before a streamed job's first audio).
    store = JobStore(tmp_path)
    job = store.create("clone", {"text": "Hello.", "voice": "x"})
    store.claim(job.id)
    store.set_progress(job.id, 0.5, "half way")
    wal = tmp_path / "studio.db-wal"
    assert wal.is_file() and wal.stat().st_size > 0  # the three writes, not checkpointed yet
    db = sqlite3.connect(tmp_path / "studio.db")
    try:  # a reader sees them all the same
        row = db.execute("SELECT state, progress, message FROM jobs WHERE id = ?", (job.id,))
        assert row.fetchone() == ("running", 0.5, "half way")
        # The store's open connection holds no read transaction: a checkpoint empties the log.
        busy, frames, moved = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0 and frames == moved == 0 and wal.stat().st_size == 0
    finally:
        db.close()
    assert store.get(job.id).message == "half way"


def test_unknown_job_and_kind_are_refused(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    with pytest.raises(UnknownJobError, match="unknown job 'nope'"):
        store.get("nope")
    with pytest.raises(ValueError, match="kind"):
        store.create("render", {})
    with pytest.raises(ValueError):
        store.job_dir("../../etc")  # only uuids map to folders


def test_claim_is_exclusive_and_outcomes_are_recorded(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    upload = tmp_path / "up.wav"
    upload.write_bytes(b"data")
    job = store.create("enroll", {"reference": "me.wav"}, inputs={"me.wav": upload})
    assert not upload.exists()
    assert store.input_path(job.id, "me.wav").read_bytes() == b"data"

    claimed = store.claim(job.id)
    assert claimed is not None and claimed.state == "running"
    assert store.claim(job.id) is None  # a second worker cannot take it

    store.set_progress(job.id, 1.7, "halfway")  # clamped into 0..1
    assert store.get(job.id).progress == 1.0
    store.fail(job.id, "the reference me.wav contains no speech\nsecond line dropped")
    failed = store.get(job.id)
    assert (failed.state, failed.error) == ("failed", "the reference me.wav contains no speech")
    assert not store.inputs_dir(job.id).exists()  # uploaded voices are not kept after the job

    other = store.create("clone", {})
    store.claim(other.id)
    store.finish(other.id, {"format": "wav"})
    done = store.get(other.id)
    assert (done.state, done.progress, done.result) == ("done", 1.0, {"format": "wav"})
    store.set_progress(other.id, 0.2, "late")  # a finished job no longer moves
    assert store.get(other.id).progress == 1.0


def test_list_pages_newest_first_with_filters(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    ids = [store.create("clone", {"n": i}).id for i in range(5)]
    enroll = store.create("enroll", {}).id
    page, total = store.list(limit=2, offset=0)
    assert total == 6 and [j.id for j in page] == [enroll, ids[4]]
    page, _ = store.list(limit=2, offset=2)
    assert [j.id for j in page] == [ids[3], ids[2]]
    page, _ = store.list(limit=10, offset=5)
    assert [j.id for j in page] == [ids[0]]
    page, total = store.list(kind="clone", limit=10)
    assert total == 5 and enroll not in {j.id for j in page}
    store.claim(ids[0])
    assert store.list(state="running")[1] == 1 and store.count("queued") == 5


def test_requeue_after_restart_keeps_finished_jobs(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    running, queued, done = (store.create("clone", {}).id for _ in range(3))
    store.claim(running)
    store.claim(done)
    store.finish(done, {})
    assert JobStore(tmp_path).requeue_unfinished() == [running, queued]  # oldest first
    assert store.get(running).state == "queued" and store.get(done).state == "done"


def test_save_output_writes_a_complete_file(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job = store.create("clone", {})
    tone = np.sin(np.linspace(0, 400 * np.pi, 8000)).astype(np.float32) * 0.5
    path = store.save_output(job.id, Audio(tone, 16_000), "flac")
    assert path == tmp_path / "jobs" / job.id / "output.flac"
    data, rate = sf.read(path)
    assert rate == 16_000 and len(data) == 8000
    assert [p.name for p in path.parent.iterdir()] == ["output.flac"]  # no temp file left


# -- runner -------------------------------------------------------------------------------
class _BrokenStudio:
    """Stands in for Studio where only the failure path matters."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def resolve_voice(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


def test_studio_error_fails_the_job_with_its_line(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job = store.create("clone", {"text": "Hi.", "voice": "v"})
    execute_job(_BrokenStudio(TextError("the text is empty")), store, job.id)  # type: ignore[arg-type]
    assert (store.get(job.id).state, store.get(job.id).error) == ("failed", "the text is empty")
    execute_job(_BrokenStudio(TextError("again")), store, job.id)  # type: ignore[arg-type]
    assert store.get(job.id).error == "the text is empty"  # a finished job is never rerun


def test_crash_fails_with_a_generic_line_and_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = JobStore(tmp_path)
    job = store.create("clone", {"text": "Hi.", "voice": "v"})
    with caplog.at_level(logging.ERROR, logger="deepfake_studio.service.runner"):
        execute_job(_BrokenStudio(RuntimeError("secret detail")), store, job.id)  # type: ignore[arg-type]
    failed = store.get(job.id)
    assert (failed.state, failed.error) == ("failed", INTERNAL_ERROR)
    assert "secret detail" not in failed.error
    assert any(r.exc_info and "secret detail" in str(r.exc_info[1]) for r in caplog.records)


def test_a_database_from_before_face_swap_is_migrated(tmp_path: Path) -> None:
    # The version-1 table: its CHECK constraint does not know the "faceswap" kind.
    with sqlite3.connect(tmp_path / "studio.db") as db:
        db.execute(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN "
            "('clone', 'enroll', 'detect')), state TEXT NOT NULL, progress REAL NOT NULL "
            "DEFAULT 0, message TEXT NOT NULL DEFAULT '', error TEXT, request TEXT NOT NULL, "
            "result TEXT, created TEXT NOT NULL, updated TEXT NOT NULL)"
        )
        db.execute(
            "INSERT INTO jobs VALUES ('00000000-0000-4000-8000-000000000001', 'clone', 'done',"
            " 1, 'done', NULL, '{}', '{}', '2026-01-01', '2026-01-01')"
        )
    db.close()
    store = JobStore(tmp_path)
    assert store.get("00000000-0000-4000-8000-000000000001").state == "done"
    assert store.create("faceswap", {"source": "s.jpg"}).kind == "faceswap"
    assert store.list()[1] == 2


def test_job_kind_without_a_handler_fails_cleanly(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job = store.create("detect", {})
    execute_job(_BrokenStudio(RuntimeError()), store, job.id)  # type: ignore[arg-type]
    assert "detect jobs are not supported" in (store.get(job.id).error or "")


def test_restart_recovery_runs_a_job_left_running(
    tmp_path: Path, studio, example_reference: Path
) -> None:  # type: ignore[no-untyped-def]
    # A previous server claimed this job, then died: the row says running, no output exists.
    store = JobStore(tmp_path)
    reference = shutil.copy(example_reference, tmp_path / "upload.flac")
    job = store.create(
        "clone",
        {
            "text": "Recovered after a restart.",
            "reference": "lj.flac",
            "engine": "piper",
            "consent": "Public-domain LJ Speech reader.",
        },
        inputs={"lj.flac": Path(reference)},
    )
    assert store.claim(job.id) is not None
    del store

    runner = EmbeddedRunner(studio, JobStore(tmp_path))
    assert isinstance(runner, JobRunner)
    runner.start()
    try:
        assert _wait_finished(runner.store, job.id) == "done"
    finally:
        runner.stop()
    finished = runner.store.get(job.id)
    assert finished.result is not None and finished.result["engine"] == "piper"
    data, rate = sf.read(runner.store.output_path(job.id, "wav"))
    assert rate == 22_050 and 1.0 < len(data) / rate < 5.0
    assert not runner.store.inputs_dir(job.id).exists()


def test_runner_stop_leaves_unstarted_jobs_queued(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    runner = EmbeddedRunner(_BrokenStudio(TextError("x")), store)  # type: ignore[arg-type]
    job = store.create("clone", {})
    runner.submit(job.id)  # not started: nothing runs it
    assert runner.queue_depth() == 1
    runner.stop()
    assert runner.queue_depth() == 0 and store.get(job.id).state == "queued"
    runner.start()  # recovery picks it up
    assert _wait_finished(store, job.id, timeout=10) == "failed"
    runner.stop()
