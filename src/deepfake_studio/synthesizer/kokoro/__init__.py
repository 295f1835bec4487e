"""Kokoro-82M: the default engine (`engine.py`) and its voice fitting (`fit.py`)."""

from deepfake_studio.synthesizer.kokoro.engine import (
    MAX_PHONEMES,
    SAMPLE_RATE,
    STYLE_DIM,
    KokoroConfig,
    KokoroEngine,
    load_style_packs,
)
from deepfake_studio.synthesizer.kokoro.fit import FitConfig, fit_voice

__all__ = [
    "MAX_PHONEMES",
    "SAMPLE_RATE",
    "STYLE_DIM",
    "FitConfig",
    "KokoroConfig",
    "KokoroEngine",
    "fit_voice",
    "load_style_packs",
]
