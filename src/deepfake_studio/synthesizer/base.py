"""The engine interface: what every synthesizer (+ vocoder) engine provides.

An engine turns (phoneme-able English text, conditioning) into a waveform. The
conditioning is the part of a `Voice` that makes the engine sound like the reference:
for Kokoro a style-vector table plus a speaking rate; for a single-speaker engine
only the rate. A new engine is a new module that implements `Engine` and registers
itself in `synthesizer/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from deepfake_studio.audio import Audio
    from deepfake_studio.encoder import SpeakerEncoder

ProgressCallback = Callable[[float, str], None]
"""Called with (fraction done 0..1, short description)."""


@dataclass
class Conditioning:
    """Engine-specific description of a voice, stored in the voice library."""

    engine: str
    speed: float = 1.0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, float | str | int] = field(default_factory=dict)


class Engine(Protocol):
    """A text-to-speech engine that can be conditioned on a reference voice."""

    name: str
    sample_rate: int

    def default_conditioning(self) -> Conditioning:
        """The engine's own bundled voice, unconditioned."""
        ...

    def condition(
        self,
        reference: Audio,
        encoder: SpeakerEncoder,
        *,
        seed: int = 0,
        progress: ProgressCallback | None = None,
    ) -> Conditioning:
        """Analyse a (trimmed, 16 kHz) reference and return what makes this engine sound like it."""
        ...

    def synthesize(self, text: str, conditioning: Conditioning, speed: float = 1.0) -> np.ndarray:
        """Speak one sentence-sized piece of English text; float32 mono at `sample_rate`."""
        ...
