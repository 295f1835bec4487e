"""Stage 2 (+3): engines that turn text and a voice's conditioning into a waveform.

Kokoro and Piper are end-to-end ONNX graphs whose vocoders (iSTFTNet, the VITS decoder)
live inside the graph, so for them stages 2 and 3 run as one call. Engines are chosen by
name; a new engine is a new module plus one line in `ENGINES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from deepfake_studio.errors import EngineError
from deepfake_studio.synthesizer.base import Conditioning, Engine
from deepfake_studio.synthesizer.kokoro import KokoroConfig


def _kokoro(options: EngineOptions) -> Engine:
    from deepfake_studio.synthesizer.kokoro import KokoroEngine

    return KokoroEngine(options.kokoro)


def _sv2tts(options: EngineOptions) -> Engine:
    import os

    from deepfake_studio.synthesizer.sv2tts import SV2TTSEngine

    models_dir = options.sv2tts_dir or os.environ.get("DEEPFAKE_STUDIO_SV2TTS_DIR")
    if not models_dir:
        raise EngineError(
            "the sv2tts engine needs the Real-Time-Voice-Cloning checkpoints: "
            "--models-dir DIR or DEEPFAKE_STUDIO_SV2TTS_DIR "
            "(encoder.pt, synthesizer.pt, vocoder.pt)"
        )
    return SV2TTSEngine(Path(models_dir), vocoder=options.sv2tts_vocoder)


def _transformer(options: EngineOptions) -> Engine:
    import os

    from deepfake_studio.synthesizer.transformer_engine import TransformerEngine

    models_dir = options.transformer_dir or os.environ.get("DEEPFAKE_STUDIO_TRANSFORMER_DIR")
    if not models_dir:
        raise EngineError(
            "the transformer engine needs a training run: --models-dir RUN or "
            "DEEPFAKE_STUDIO_TRANSFORMER_DIR (transformer.pt, optionally hifigan.pt)"
        )
    return TransformerEngine(Path(models_dir))


def _piper(options: EngineOptions) -> Engine:
    from deepfake_studio.synthesizer.piper import PiperEngine

    return PiperEngine()


@dataclass(frozen=True)
class EngineOptions:
    """Per-engine settings, passed explicitly from `StudioConfig`."""

    kokoro: KokoroConfig = field(default_factory=KokoroConfig)
    sv2tts_dir: Path | None = None  # RTVC checkpoints; else DEEPFAKE_STUDIO_SV2TTS_DIR
    sv2tts_vocoder: Literal["wavernn", "griffinlim"] = "wavernn"
    transformer_dir: Path | None = None  # a `deepfake-studio train` run folder


ENGINES: dict[str, Callable[[EngineOptions], Engine]] = {
    "kokoro": _kokoro,
    "piper": _piper,
    "sv2tts": _sv2tts,
    "transformer": _transformer,
}
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
