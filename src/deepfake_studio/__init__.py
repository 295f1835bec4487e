"""Deepfake Studio: clone a voice from seconds of audio and speak any text in it, offline.

from deepfake_studio import Studio
studio = Studio()
audio = studio.clone("Hello there.", reference="me.wav")
"""

import os

# torch's OpenMP threads busy-wait between ops by default; on a 2-core machine that starves
# onnxruntime and numpy in the same process (measured 5-50x slower GE2E embeddings under load).
# Must be set before torch is first imported; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from deepfake_studio.audio import Audio, load_audio, save_audio
from deepfake_studio.errors import StudioError
from deepfake_studio.paths import __version__
from deepfake_studio.studio import Studio, StudioConfig
from deepfake_studio.voices import Voice

__all__ = [
    "Audio",
    "Studio",
    "StudioConfig",
    "StudioError",
    "Voice",
    "__version__",
    "load_audio",
    "save_audio",
]
