"""Load on a local `deepfake-studio serve`: concurrent clients submitting short syntheses.

    .venv/bin/python benchmarks/bench_server_load.py [--clients 8] [--seconds 120]

Starts the real server (uvicorn, embedded job runner, SQLite) in its own process on a free
loopback port with a fresh data directory, enrolls the bundled example voice through the API,
then runs `--clients` threads for `--seconds`: each submits a short synthesis, polls the job
until it ends and downloads the audio, again and again. Reports errors (any non-2xx answer,
any failed job), throughput, latency percentiles (submit → audio downloaded) and the server
process's peak resident memory. Results: benchmarks/server_load.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite
from bench_clone import machine

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "examples" / "lj_reference.flac"
API = "/api/v1"
TEXTS = (
    "The kettle is on.",
    "Turn left at the bakery.",
    "We will meet again on Friday.",
    "Please close the window.",
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--engine", default="kokoro")
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks")
    add_overwrite_flag(p)
    args = p.parse_args()
    refuse_to_overwrite(
        [args.out_dir / "server_load.json", args.out_dir / "server_load.md"], args.overwrite
    )
    load_start = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="studio-load-") as home:
        port = _free_port()
        env = {**os.environ, "DEEPFAKE_STUDIO_HOME": home}
        server = subprocess.Popen(
            [sys.executable, "-m", "deepfake_studio.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            client = httpx.Client(base_url=base, timeout=120)
            _wait_up(client)
            voice = _enroll(client, args.engine)
            # One warm-up job so the first measured requests do not pay for model loading.
            _one_job(client, voice, TEXTS[0])
            results = _run(base, voice, args.clients, args.seconds)
            peak_mib = _peak_rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)

    latencies = sorted(r["latency"] for r in results if r["ok"])
    errors = [r for r in results if not r["ok"]]
    data = {
        "machine": machine(),
        "load_average_at_start": round(load_start, 2),
        "clients": args.clients,
        "seconds": args.seconds,
        "engine": args.engine,
        "jobs_done": len(latencies),
        "errors": len(errors),
        "error_examples": [e["error"] for e in errors[:5]],
        "throughput_jobs_per_min": round(60 * len(latencies) / args.seconds, 1),
        "audio_seconds_per_s": round(
            sum(r["audio_s"] for r in results if r["ok"]) / args.seconds, 3
        ),
        "latency_p50_s": round(_percentile(latencies, 50), 2) if latencies else None,
        "latency_p95_s": round(_percentile(latencies, 95), 2) if latencies else None,
        "server_peak_rss_mib": peak_mib,
    }
    (args.out_dir / "server_load.json").write_text(json.dumps(data, indent=1) + "\n")
    (args.out_dir / "server_load.md").write_text(_markdown(data))
    print(_markdown(data))
    return 0 if not errors else 1


def _run(base: str, voice: str, clients: int, seconds: float) -> list[dict]:
    """`clients` threads looping submit → poll → download until the time is up."""
    results: list[dict] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop(index: int) -> None:
        client = httpx.Client(base_url=base, timeout=300)
        n = 0
        while time.monotonic() < deadline:
            text = TEXTS[(index + n) % len(TEXTS)]
            n += 1
            try:
                latency, audio_s = _one_job(client, voice, text)
                row = {"ok": True, "latency": latency, "audio_s": audio_s}
            except Exception as e:  # every failure is counted and reported, not raised
                row = {"ok": False, "error": f"{type(e).__name__}: {e}"[:200]}
            with lock:
                results.append(row)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _one_job(client: httpx.Client, voice: str, text: str) -> tuple[float, float]:
    """Submit, poll, download: (seconds taken, seconds of audio)."""
    t0 = time.perf_counter()
    r = client.post(f"{API}/synthesize", json={"voice": voice, "text": text, "format": "wav"})
    r.raise_for_status()
    job = _poll(client, r.json()["job_id"])
    audio = client.get(f"{API}/jobs/{job['id']}/audio")
    audio.raise_for_status()
    latency = time.perf_counter() - t0
    # 16-bit mono WAV: 44-byte header; the job result also records the duration.
    duration = float((job.get("result") or {}).get("duration", 0.0))
    if len(audio.content) < 1000 or duration <= 0:
        raise RuntimeError(f"job {job['id']} returned {len(audio.content)} bytes")
    return latency, duration


def _poll(client: httpx.Client, job_id: str, timeout: float = 600.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"{API}/jobs/{job_id}")
        job.raise_for_status()
        body = job.json()
        if body["state"] == "done":
            return body
        if body["state"] == "failed":
            raise RuntimeError(f"job failed: {body['error']}")
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not finish in {timeout:.0f} s")


def _enroll(client: httpx.Client, engine: str) -> str:
    with open(REFERENCE, "rb") as f:
        r = client.post(
            f"{API}/voices",
            data={"name": "load test", "consent": "public-domain LJ Speech clip", "engine": engine},
            files={"audio": (REFERENCE.name, f, "audio/flac")},
        )
    r.raise_for_status()
    _poll(client, r.json()["job_id"])
    return str(r.json()["voice_id"])


def _wait_up(client: httpx.Client, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get(f"{API}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the server did not start")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peak_rss_mib(pid: int) -> float | None:
    """VmHWM: the process's peak resident set so far (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _markdown(d: dict) -> str:
    m = d["machine"]
    return "\n".join(
        [
            "# Server load",
            "",
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
            f"Python {m['python']}. Load average at start: {d['load_average_at_start']}.",
            f"{d['clients']} concurrent clients for {d['seconds']:.0f} s against "
            f"`deepfake-studio serve` on loopback (one embedded job worker, {d['engine']} engine, "
            "an enrolled voice, sentences of 4-6 words, WAV out, watermarked).",
            "",
            "| measure | value |",
            "|---|---|",
            f"| jobs done | {d['jobs_done']} |",
            f"| errors | {d['errors']} |",
            f"| throughput (jobs/min) | {d['throughput_jobs_per_min']} |",
            f"| audio produced (s per s) | {d['audio_seconds_per_s']} |",
            f"| latency p50 (s, submit → audio downloaded) | {d['latency_p50_s']} |",
            f"| latency p95 (s) | {d['latency_p95_s']} |",
            f"| server peak RSS (MiB) | {d['server_peak_rss_mib']} |",
            "",
            "With one job worker the latency is mostly queueing: 8 clients share it.",
            "",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
