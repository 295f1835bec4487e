"""Persistent job records (SQLite) and job files on disk, under the Studio's data directory.

Layout::

    studio.db                   jobs table (WAL mode: readers never block the writer)
    jobs/<id>/inputs/<name>     uploaded files a queued job still needs (removed when it ends)
    jobs/<id>/output.<fmt>      the job's audio, written atomically by `save_audio`
    jobs/.incoming/             uploads being received, before their job exists

Every call opens its own short-lived connection, so one store can be shared by the API's
request threads and the runner's workers, and separate processes (a later Celery worker)
can open the same database file safely.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from deepfake_studio.audio import Audio, save_audio

JobKind = Literal["clone", "enroll", "detect", "faceswap"]
JobState = Literal["queued", "running", "done", "failed"]
KINDS: tuple[str, ...] = get_args(JobKind)
STATES: tuple[str, ...] = get_args(JobState)
FINISHED: tuple[str, ...] = ("done", "failed")

DB_NAME = "studio.db"
SCHEMA_VERSION = 2  # 2: the "faceswap" job kind (older tables are rebuilt on open)
_INCOMING_MAX_AGE_S = 24 * 3600  # an upload this old belongs to a request that died

_TABLE = f"""
CREATE TABLE IF NOT EXISTS {{name}} (
    id       TEXT PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN {KINDS!r}),
    state    TEXT NOT NULL CHECK (state IN {STATES!r}),
    progress REAL NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    message  TEXT NOT NULL DEFAULT '',
    error    TEXT,
    request  TEXT NOT NULL,
    result   TEXT,
    created  TEXT NOT NULL,
    updated  TEXT NOT NULL
);
"""
_SCHEMA = (
    _TABLE.format(name="jobs")
    + """
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
"""
)


class UnknownJobError(KeyError):
    """No job with that id (the API turns it into a 404)."""

    def __str__(self) -> str:  # KeyError would print the quoted repr
        return f"unknown job {self.args[0]!r}"


@dataclass(frozen=True)
class Job:
    """One row of the jobs table, JSON columns decoded."""

    id: str
    kind: str
    state: str
    progress: float
    message: str
    error: str | None
    request: dict[str, Any]
    result: dict[str, Any] | None
    created: str
    updated: str

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _migrate(db: sqlite3.Connection) -> None:
    """Rebuild a jobs table whose CHECK constraint predates a job kind (SQLite cannot alter a
    CHECK): copy the rows into a new table, in one transaction."""
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'")
    sql = row.fetchone()[0]
    if all(repr(kind) in sql for kind in KINDS):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(_TABLE.format(name="jobs_new"))
        db.execute("INSERT INTO jobs_new SELECT * FROM jobs")
        db.execute("DROP TABLE jobs")
        db.execute("ALTER TABLE jobs_new RENAME TO jobs")
        db.execute("CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created)")
        db.execute("CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state)")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _row_to_job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        state=row["state"],
        progress=float(row["progress"]),
        message=row["message"],
        error=row["error"],
        request=json.loads(row["request"]),
        result=json.loads(row["result"]) if row["result"] is not None else None,
        created=row["created"],
        updated=row["updated"],
    )


class JobStore:
    """Jobs in `<data_dir>/studio.db`, their files in `<data_dir>/jobs/`."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / DB_NAME
        self.jobs_dir = self.data_dir / "jobs"
        self.incoming_dir = self.jobs_dir / ".incoming"
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            # WAL is a property of the file: set once, every later connection uses it.
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            _migrate(db)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        # Held open, never used: the last connection to close a WAL database checkpoints it
        # (fsyncs of the log and the file), so without this every short-lived connection
        # below paid that on close: ~25-30 ms per write on this project's disk, before a
        # streamed job's first audio (create, claim) and between its pieces (progress). SQLite
        # still checkpoints every 1000 pages, and when this connection is closed (with the store).
        self._keeper = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
        # One read to join the WAL (a shared lock on the file), run to its end: no read
        # transaction is left open to pin the log.
        self._keeper.execute("SELECT COUNT(*) FROM jobs WHERE 0").fetchall()
        self._sweep_incoming()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: autocommit; each statement below is atomic on its own, and
        # multi-statement changes open an explicit BEGIN IMMEDIATE.
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=NORMAL")  # durable enough under WAL, far fewer fsyncs
            yield db
        finally:
            db.close()

    # -- records ----------------------------------------------------------------------------
    def create(
        self,
        kind: str,
        request: Mapping[str, Any],
        *,
        inputs: Mapping[str, Path] | None = None,
    ) -> Job:
        """Insert a queued job; `inputs` ({file name: path}) are moved into its folder first,
        so a worker that sees the row always finds its files."""
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        job_id = str(uuid.uuid4())
        if inputs:
            folder = self.inputs_dir(job_id)
            folder.mkdir(parents=True)
            for name, source in inputs.items():
                if Path(name).name != name or name.startswith("."):
                    raise ValueError(f"input name {name!r} must be a plain file name")
                shutil.move(source, folder / name)  # a rename when on the same disk
        now = _now()
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs (id, kind, state, progress, message, request, created, updated)"
                " VALUES (?, ?, 'queued', 0, 'queued', ?, ?, ?)",
                (job_id, kind, json.dumps(dict(request)), now, now),
            )
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJobError(job_id)
        return _row_to_job(row)

    def list(
        self,
        *,
        limit: int = 20,
        offset: int = 0,
        state: str | None = None,
        kind: str | None = None,
    ) -> tuple[list[Job], int]:
        """A page of jobs, newest first, and the total matching the filters."""
        where, args = [], []
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._connect() as db:
            total = db.execute(f"SELECT COUNT(*) FROM jobs{clause}", args).fetchone()[0]
            rows = db.execute(
                # rowid breaks ties between jobs created in the same millisecond.
                f"SELECT * FROM jobs{clause} ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        return [_row_to_job(r) for r in rows], int(total)

    def count(self, state: str) -> int:
        with self._connect() as db:
            row = db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)).fetchone()
        return int(row[0])

    def claim(self, job_id: str) -> Job | None:
        """Move a queued job to running; None if it is not queued (already taken, or finished).

        A conditional UPDATE is atomic, so two workers can never both run one job.
        """
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE jobs SET state = 'running', progress = 0, message = 'starting',"
                " updated = ? WHERE id = ? AND state = 'queued'",
                (_now(), job_id),
            )
        return self.get(job_id) if cursor.rowcount == 1 else None

    def set_progress(self, job_id: str, progress: float, message: str) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET progress = ?, message = ?, updated = ?"
                " WHERE id = ? AND state = 'running'",
                (min(max(float(progress), 0.0), 1.0), message, _now(), job_id),
            )

    def finish(self, job_id: str, result: Mapping[str, Any] | None = None) -> None:
        """Mark a job done with its result."""
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET state = 'done', progress = 1, message = 'done', error = NULL,"
                " result = ?, updated = ? WHERE id = ?",
                (json.dumps(dict(result or {})), _now(), job_id),
            )
        self.discard_inputs(job_id)

    def fail(self, job_id: str, error: str) -> None:
        """Mark a job failed with a one-line error."""
        line = (error.strip().splitlines() or ["failed"])[0]
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET state = 'failed', message = 'failed', error = ?, updated = ?"
                " WHERE id = ?",
                (line, _now(), job_id),
            )
        self.discard_inputs(job_id)

    def requeue_unfinished(self) -> list[str]:
        """After a restart: jobs left running go back to queued; returns every queued id,
        oldest first. Assumes no other live process is running jobs from this database."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "UPDATE jobs SET state = 'queued', progress = 0,"
                " message = 'queued again after a restart', updated = ? WHERE state = 'running'",
                (_now(),),
            )
            rows = db.execute(
                "SELECT id FROM jobs WHERE state = 'queued' ORDER BY created, rowid"
            ).fetchall()
            db.execute("COMMIT")
        return [r["id"] for r in rows]

    def unfinished(self) -> list[str]:
        """Ids of queued and running jobs, oldest first (read only, unlike requeue_unfinished)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id FROM jobs WHERE state IN ('queued', 'running') ORDER BY created, rowid"
            ).fetchall()
        return [r["id"] for r in rows]

    def requeue(self, job_id: str) -> bool:
        """Put one running job back to queued (its worker is gone); False if it is not running."""
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE jobs SET state = 'queued', progress = 0, message = 'queued again',"
                " updated = ? WHERE id = ? AND state = 'running'",
                (_now(), job_id),
            )
        return cursor.rowcount == 1

    # -- files ------------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / str(uuid.UUID(job_id))  # a uuid never escapes the jobs folder

    def inputs_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "inputs"

    def input_path(self, job_id: str, name: str) -> Path:
        return self.inputs_dir(job_id) / Path(name).name

    def output_path(self, job_id: str, fmt: str) -> Path:
        return self.job_dir(job_id) / f"output.{fmt}"

    def save_output(self, job_id: str, audio: Audio, fmt: str) -> Path:
        """Write the job's audio atomically (a reader sees all of it or nothing)."""
        return save_audio(audio, self.output_path(job_id, fmt))

    def discard_inputs(self, job_id: str) -> None:
        # Uploaded references are someone's voice: keep them only while a job needs them.
        shutil.rmtree(self.inputs_dir(job_id), ignore_errors=True)

    def incoming_path(self, suffix: str) -> Path:
        """A fresh path for an upload being received (then moved by `create`)."""
        return self.incoming_dir / f"{uuid.uuid4().hex}{suffix}"

    def _sweep_incoming(self) -> None:
        cutoff = time.time() - _INCOMING_MAX_AGE_S
        for path in self.incoming_dir.iterdir():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    os.unlink(path)
