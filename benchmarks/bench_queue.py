"""Throughput of the Celery backend on this machine: 1 vs 2 worker processes, and the queue's
overhead per job. Results (medians) go to benchmarks/queue.{md,json}.

    .venv/bin/python benchmarks/bench_queue.py [--jobs 16] [--runs 3]

Needs Debian's redis-server (started here on a free loopback port, nothing saved to disk).
Each run sends a batch of short piper syntheses with an enrolled voice through the same path
as `deepfake-studio batch --broker` (send, worker computes, results written and signed here)
and times it from the first send to the last file written. Baselines in this process: the
same batch through `batch` without a broker, and single jobs one at a time, queued or not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _output import add_overwrite_flag, refuse_to_overwrite
from bench_clone import REFERENCE, machine

from deepfake_studio import Studio, StudioConfig
from deepfake_studio.service.batch import BatchRow, run_distributed, run_local
from deepfake_studio.service.distributed import (
    Dispatcher,
    QueueConfig,
    check_broker,
    clone_output,
    clone_payload,
)
from deepfake_studio.service.runner import compute_clone

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "The train leaves at seven.",
    "Please close the window before you go.",
    "Our meeting moved to Thursday afternoon.",
    "The coffee here is surprisingly good.",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rows(out: Path, count: int, voice: str) -> list[BatchRow]:
    return [
        BatchRow(
            i + 2, SENTENCES[i % len(SENTENCES)], out / f"{i:03d}.wav", voice, None, None, 1.0, 0
        )
        for i in range(count)
    ]


def _start_worker(broker: str, concurrency: int, home: Path, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deepfake_studio.cli",
            "worker",
            "--broker",
            broker,
            "--name",
            f"bench{concurrency}",
            "--concurrency",
            str(concurrency),
            "--preload",
            "piper",
            "--data-dir",
            str(home),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc


def _warm(dispatcher: Dispatcher, payload: dict[str, Any], processes: int) -> None:
    """Run one job per worker process so every process has its models loaded."""
    ids = [str(uuid.uuid4()) for _ in range(processes * 2)]
    for job_id in ids:
        dispatcher.send("clone", job_id, payload)
    pending = set(ids)
    while pending:
        time.sleep(0.1)
        for job_id, meta in dispatcher.states(pending).items():
            if meta["status"] == "SUCCESS":
                pending.discard(job_id)
                dispatcher.forget(job_id)


def _one_queued(dispatcher: Dispatcher, payload: dict[str, Any]) -> tuple[float, float]:
    """(end-to-end seconds, compute seconds reported by the worker) of one job alone."""
    job_id = str(uuid.uuid4())
    start = time.perf_counter()
    dispatcher.send("clone", job_id, payload)
    while True:
        meta = dispatcher.states([job_id])[job_id]
        if meta["status"] == "SUCCESS":
            clone_output(meta["result"])  # decoding the audio is part of the overhead
            elapsed = time.perf_counter() - start
            dispatcher.forget(job_id)
            return elapsed, float(meta["result"]["seconds"])
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--singles", type=int, default=8)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    refuse_to_overwrite(
        [ROOT / "benchmarks" / "queue.json", ROOT / "benchmarks" / "queue.md"], args.overwrite
    )
    redis = shutil.which("redis-server")
    if redis is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        studio = Studio(StudioConfig(data_dir=tmp / "home"))
        studio.enroll(REFERENCE, "Bench", "Public-domain LJ Speech reader.", engine="piper")
        voice = studio.voice("Bench")
        request = {"text": SENTENCES[1], "voice": "bench", "speed": 1.0, "seed": 0}
        payload = clone_payload({**request, "reference": None, "format": "wav"}, None, voice)
        port = _free_port()
        redis_proc = subprocess.Popen(
            [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
        )
        broker = f"redis://127.0.0.1:{port}/0"
        results: dict[str, Any] = {"machine": machine(), "jobs": args.jobs, "runs": args.runs}
        try:
            for _ in range(50):
                try:
                    check_broker(broker, 0.5)
                    break
                except Exception:
                    time.sleep(0.1)
            # In-process baselines (models load once, first call not timed).
            compute_clone(studio, request, None, voice, lambda p, t: None)
            local = []
            for run in range(args.runs):
                rows = _rows(tmp / f"local{run}", args.jobs, "bench")
                start = time.perf_counter()
                report = run_local(studio, rows, lambda row, error: None)
                local.append(time.perf_counter() - start)
                assert len(report.done) == args.jobs, report.failed
            single_local = []
            for _ in range(args.singles):
                start = time.perf_counter()
                compute_clone(studio, request, None, voice, lambda p, t: None)
                single_local.append(time.perf_counter() - start)
            results["in_process"] = {
                "batch_s": round(statistics.median(local), 2),
                "jobs_per_min": round(60 * args.jobs / statistics.median(local), 1),
                "single_job_s": round(statistics.median(single_local), 3),
            }
            dispatcher = Dispatcher(QueueConfig(broker, poll_interval_s=0.05))
            for processes in (1, 2):
                worker = _start_worker(broker, processes, tmp / "worker", tmp / f"w{processes}.log")
                try:
                    _warm(dispatcher, payload, processes)
                    times = []
                    for run in range(args.runs):
                        rows = _rows(tmp / f"queued{processes}-{run}", args.jobs, "bench")
                        start = time.perf_counter()
                        report = run_distributed(studio, rows, dispatcher, lambda r, e: None)
                        times.append(time.perf_counter() - start)
                        assert len(report.done) == args.jobs, report.failed
                    entry: dict[str, Any] = {
                        "batch_s": round(statistics.median(times), 2),
                        "jobs_per_min": round(60 * args.jobs / statistics.median(times), 1),
                        "batch_runs_s": [round(t, 2) for t in times],
                    }
                    if processes == 1:
                        singles = [_one_queued(dispatcher, payload) for _ in range(args.singles)]
                        e2e = statistics.median(s[0] for s in singles)
                        compute = statistics.median(s[1] for s in singles)
                        entry.update(
                            single_job_s=round(e2e, 3),
                            worker_compute_s=round(compute, 3),
                            overhead_per_job_s=round(e2e - compute, 3),
                        )
                    results[f"workers_{processes}"] = entry
                finally:
                    os.killpg(worker.pid, signal.SIGTERM)  # warm shutdown of the whole worker
                    try:
                        worker.wait(60)
                    except subprocess.TimeoutExpired:
                        os.killpg(worker.pid, signal.SIGKILL)
                        worker.wait(10)
            dispatcher.close()
        finally:
            redis_proc.terminate()
            redis_proc.wait(10)
    with open("/proc/loadavg") as f:
        results["load_after"] = f.read().split()[:3]
    (ROOT / "benchmarks" / "queue.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
