"""Kokoro-82M: the default engine (`engine.py`) and its voice fitting (`fit.py`).

`model.py` is the network in PyTorch (filled from the bundled int8 ONNX by `weights.py`);
`torch_path.py` is how the engine uses it for adapted decoders and prosody edits.
"""

from deepfake_studio.synthesizer.kokoro.engine import (
    MAX_PHONEMES,
    SAMPLE_RATE,
    STYLE_DIM,
    KokoroConfig,
    KokoroEngine,
    load_style_packs,
)
from deepfake_studio.synthesizer.kokoro.fit import FitConfig, fit_voice
from deepfake_studio.synthesizer.kokoro.torch_path import (
    ProsodyEdit,
    with_decoder_deltas,
    with_prosody_edit,
)

__all__ = [
    "MAX_PHONEMES",
    "SAMPLE_RATE",
    "STYLE_DIM",
    "FitConfig",
    "KokoroConfig",
    "KokoroEngine",
    "ProsodyEdit",
    "fit_voice",
    "load_style_packs",
    "with_decoder_deltas",
    "with_prosody_edit",
]
