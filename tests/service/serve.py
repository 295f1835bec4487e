"""`deepfake-studio serve` in a child process, waited for until it is warm: one recipe for
tests/test_cli.py's serve test and `benchmarks/bench_live_player.py`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "deepfake_studio.cli"]
WARM = "kokoro-streaming"  # /health lists it once `serve`'s warm-up sentence has been spoken


def free_port() -> int:
    """A loopback port nothing listens on (closed again: the server binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    """`serve --port PORT` with `home` as its data folder; its stderr goes to `log_of(home)`
    (a file: a pipe nobody reads would stall a talkative server)."""
    env = {**os.environ, "DEEPFAKE_STUDIO_HOME": str(home)}
    with log_of(home).open("wb") as log:
        return subprocess.Popen(
            [*CLI, "serve", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log, env=env
        )


def log_of(home: Path) -> Path:
    return home / "serve-stderr.log"


def wait_until_warm(
    server: subprocess.Popen[bytes], port: int, timeout: float = 300.0
) -> list[httpx.Response]:
    """Every /health answer until one lists `WARM`, the server exits or `timeout` passes
    (the caller checks which: the last answer, `server.poll()`)."""
    url = f"http://127.0.0.1:{port}/api/v1/health"
    answers: list[httpx.Response] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            answers.append(httpx.get(url, timeout=5))
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        if answers[-1].status_code == 200 and WARM in answers[-1].json()["models_loaded"]:
            break
        time.sleep(0.5)
    return answers
