"""Stage 2 (+3): engines that turn text and a voice's conditioning into a waveform.

Kokoro and Piper are end-to-end ONNX graphs whose vocoders (iSTFTNet, the VITS decoder)
live inside the graph, so for them stages 2 and 3 run as one call. Engines are chosen by
name; a new engine is a new module plus one line in `ENGINES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from deepfake_studio.errors import EngineError
from deepfake_studio.synthesizer.base import Conditioning, Engine
from deepfake_studio.synthesizer.kokoro import KokoroConfig


def _kokoro(options: EngineOptions) -> Engine:
    from deepfake_studio.synthesizer.kokoro import KokoroEngine

    return KokoroEngine(options.kokoro)


def _piper(options: EngineOptions) -> Engine:
    from deepfake_studio.synthesizer.piper import PiperEngine

    return PiperEngine()


@dataclass(frozen=True)
class EngineOptions:
    """Per-engine settings, passed explicitly from `StudioConfig`."""

    kokoro: KokoroConfig = field(default_factory=KokoroConfig)


ENGINES: dict[str, Callable[[EngineOptions], Engine]] = {"kokoro": _kokoro, "piper": _piper}
DEFAULT_ENGINE = "kokoro"


def create_engine(name: str, options: EngineOptions | None = None) -> Engine:
    """Load an engine by name (slow: loads its model; callers keep the result)."""
    factory = ENGINES.get(name)
    if factory is None:
        raise EngineError(f"unknown engine {name!r} (available: {', '.join(ENGINES)})")
    return factory(options or EngineOptions())


__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "Conditioning",
    "Engine",
    "EngineOptions",
    "create_engine",
]
