"""The README read as a newcomer does: its commands exist, its Python snippet and its curl
session run as written (the curl session against a real server on a loopback port)."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
import typer

from deepfake_studio import Studio
from deepfake_studio.cli import app
from deepfake_studio.provenance import verify

README = Path(__file__).resolve().parents[1] / "README.md"
VENV_BIN = Path(sys.executable).parent


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.S | re.M)


def _commands() -> list[list[str]]:
    """Every `.venv/bin/deepfake-studio ...` command of the README's shell blocks, as words."""
    found = []
    for block in _blocks("bash"):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            if ".venv/bin/deepfake-studio " not in line:
                continue
            words = shlex.split(line.split(".venv/bin/deepfake-studio ", 1)[1], comments=True)
            found.append([w.strip("[]") for w in words])
    return found


def test_every_readme_command_and_option_exists() -> None:
    commands = _commands()
    assert len(commands) > 30
    root = typer.main.get_command(app)
    for words in commands:
        command: Any = root
        for word in words:  # walk down the sub-commands
            if word in getattr(command, "commands", {}):
                command = command.commands[word]
        assert command is not root, words
        options = {o for p in command.params for o in getattr(p, "opts", [])}
        for word in words:
            if word.startswith("--"):
                assert word.split("=")[0] in options, f"{command.name}: {word} ({words})"
    # Executables the README names are installed where it says.
    for name in set(re.findall(r"\.venv/bin/([\w-]+)", README.read_text())):
        assert (VENV_BIN / name).exists(), name


@pytest.fixture()
def me_wav(tmp_path: Path, example_reference: Path) -> Path:
    """The README's `me.wav`, in the folder its commands run in."""
    samples, rate = sf.read(example_reference, dtype="float32")
    sf.write(tmp_path / "me.wav", samples, rate)
    return tmp_path / "me.wav"


@pytest.mark.slow
def test_readme_python_snippet_runs_after_the_cli_section(
    studio: Studio, me_wav: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The voice `me` already exists (the CLI section enrolled it): the snippet still runs."""
    import deepfake_studio

    (snippet,) = [b for b in _blocks("python") if "Studio()" in b]
    monkeypatch.chdir(me_wav.parent)
    # The session's Studio: its models are loaded and it fits voices at quick quality, not
    # the shipped standard (minutes each; tests/conftest.py); nothing else is changed.
    monkeypatch.setattr(deepfake_studio, "Studio", lambda *args, **kwargs: studio)
    studio.enroll(me_wav, "me", "An earlier enrollment.", engine="piper", overwrite=True)
    try:
        exec(compile(snippet, str(README), "exec"), {})
        assert studio.voice("me").consent.startswith("I, Ana, consent")  # replaced
    finally:
        if studio.has_voice("me"):
            studio.delete_voice("me")
    written = sorted(me_wav.parent.glob("*.wav"))
    names = ["hello.wav", "hola.wav", "me.wav", "piece-0.wav", "piece-1.wav"]
    assert [p.name for p in written] == names
    for path in [p for p in written if p.name != "me.wav"]:
        assert sf.info(path).duration > 0.5
        report = verify(path, data_dir=studio.data_dir)
        assert report.ok and report.key_is_local, report.failures


@contextmanager
def _server(studio: Studio) -> Iterator[str]:
    """The API under a real uvicorn on a free loopback port, in a thread; yields its URL."""
    import uvicorn

    from deepfake_studio.service.api import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(studio), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.mark.slow
def test_readme_curl_session_against_a_real_server(studio: Studio, me_wav: Path) -> None:
    (session,) = [b for b in _blocks("bash") if "wait_for" in b]
    env: dict[str, Any] = {**os.environ, "DEEPFAKE_STUDIO_HOME": str(studio.data_dir)}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"  # .venv/bin/... is this venv
    try:
        with _server(studio) as url:
            script = session.replace("http://127.0.0.1:8000", url).replace(".venv/bin/", "")
            ran = subprocess.run(
                ["bash", "-e", "-c", script],
                cwd=me_wav.parent,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
    finally:
        if studio.has_voice("me"):
            studio.delete_voice("me")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert '"status":"ok"' in ran.stdout
    assert len(re.findall(r"^job [0-9a-f-]{36}: done$", ran.stdout, re.M)) == 2, ran.stdout
    assert "verified: signed by this studio's key" in ran.stdout, ran.stdout
    out = me_wav.parent / "hello-api.wav"
    assert sf.info(out).duration > 0.8
    assert verify(out, data_dir=studio.data_dir).ok
