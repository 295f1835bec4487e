"""Face-swap fixtures: the bundled example faces, the shared portraits, dlib loaded once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deepfake_studio.faceswap import FaceSwapConfig
from tests.conftest import skip_or_fail_in_ci

ROOT = Path(__file__).resolve().parents[2]
SHARED_FACES = (
    Path(os.environ.get("DEEPFAKE_STUDIO_DATA", ROOT.parent / "shared" / "data")) / "faces"
)
EXAMPLE_FACES = ROOT / "examples" / "faces"


@pytest.fixture(scope="session")
def astronaut() -> Path:
    """`skimage.data.astronaut()`, bundled (public domain)."""
    return EXAMPLE_FACES / "astronaut.jpg"


@pytest.fixture(scope="session")
def obama() -> Path:
    """Obama's official portrait, downscaled and bundled (public domain)."""
    return EXAMPLE_FACES / "obama.jpg"


@pytest.fixture(scope="session")
def biden() -> Path:
    """Biden's official portrait from the shared data (skips when it is absent, fails in CI)."""
    path = SHARED_FACES / "biden.jpg"
    if not path.is_file():
        skip_or_fail_in_ci(f"shared portrait not found at {path} (set DEEPFAKE_STUDIO_DATA)")
    return path


@pytest.fixture(scope="session")
def face_models():  # type: ignore[no-untyped-def]
    from deepfake_studio.faceswap.landmarks import FaceModels

    return FaceModels(FaceSwapConfig())
