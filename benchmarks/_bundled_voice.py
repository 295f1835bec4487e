"""The voice the streaming benchmarks speak with: Kokoro's default bundled pack, saved in the
studio's library like an enrolled voice (no reference, so no enrollment time in the figures)."""

from __future__ import annotations

import numpy as np

from deepfake_studio import Studio
from deepfake_studio.voices import Voice


def bundled_kokoro_voice(studio: Studio, name: str) -> Voice:
    voice = Voice(
        name=name,
        embedding=np.full(256, 1 / 16, np.float32),
        conditioning=studio.engine("kokoro").default_conditioning(),
        consent="The bundled Kokoro voice, for the benchmark.",
        source_sha256="0" * 64,
    )
    studio.library.save(voice, overwrite=True)
    return studio.voice(name)


def warm_streaming_studio(tag: str, warm_text: str) -> tuple[Studio, Voice]:
    """A studio in a fresh temporary data folder with the bundled voice saved as "Bench TAG",
    after two streams of `warm_text` (models loaded, first-run allocations done)."""
    import tempfile
    from pathlib import Path

    from deepfake_studio import StudioConfig

    slug = tag.lower().replace(" ", "-")
    studio = Studio(StudioConfig(data_dir=Path(tempfile.mkdtemp(prefix=f"bench-{slug}-"))))
    voice = bundled_kokoro_voice(studio, f"Bench {tag}")
    for _ in range(2):
        list(studio.speak_stream(warm_text, voice))
    return studio, voice
