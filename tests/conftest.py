"""Shared fixtures: real models loaded once per test session, data from ../shared when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DEEPFAKE_STUDIO_DATA", ROOT.parent / "shared" / "data"))
EXAMPLE_REFERENCE = ROOT / "examples" / "lj_reference.flac"


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    """The shared real-speech corpus; tests that need it skip when it is absent."""
    folder = SHARED_DATA / "speech"
    if not (folder / "manifest.csv").exists():
        pytest.skip(f"shared speech data not found at {folder} (set DEEPFAKE_STUDIO_DATA)")
    return folder


@pytest.fixture(scope="session")
def example_reference() -> Path:
    return EXAMPLE_REFERENCE


@pytest.fixture(scope="session")
def transcriber():  # type: ignore[no-untyped-def]
    from deepfake_studio.evaluation.asr import Transcriber

    return Transcriber()


@pytest.fixture(scope="session")
def kokoro_engine():  # type: ignore[no-untyped-def]
    from deepfake_studio.synthesizer.kokoro import KokoroEngine

    return KokoroEngine()


@pytest.fixture(scope="session")
def piper_engine():  # type: ignore[no-untyped-def]
    from deepfake_studio.synthesizer.piper import PiperEngine

    return PiperEngine()


@pytest.fixture(scope="session")
def studio(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One Studio for the session (models load once), with a smaller voice-fitting budget."""
    from deepfake_studio import Studio, StudioConfig
    from deepfake_studio.synthesizer import EngineOptions
    from deepfake_studio.synthesizer.kokoro import KokoroConfig

    options = EngineOptions(kokoro=KokoroConfig(fit=fast_fit_config()))
    return Studio(StudioConfig(data_dir=tmp_path_factory.mktemp("studio-home"), engines=options))


def fast_fit_config():  # type: ignore[no-untyped-def]
    """A fitting budget that keeps the test suite fast but still moves toward the reference."""
    from deepfake_studio.synthesizer.kokoro_fit import FitConfig

    return FitConfig(generations=1, population=2, random_directions=4)
