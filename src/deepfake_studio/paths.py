"""Where the studio keeps its state, and which release this is: the ground floor.

Both `studio.py` and `provenance/` need the data directory (voices, jobs, the signing key), and
provenance records name the release. Deciding them here, in a module that imports nothing of
the project, keeps those packages from importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__version__ = "0.1.0"

DATA_DIR_ENV = "DEEPFAKE_STUDIO_HOME"


def default_data_dir() -> Path:
    """`DEEPFAKE_STUDIO_HOME`, else the platform's user data directory."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else Path(platformdirs.user_data_dir("deepfake-studio"))
