"""Shared by the kokoro tests: one real reference and its `standard` style fit, made once.

test_reconstruct.py judges the fit; test_adapt.py adapts the decoder on top of it. Each used
to fit the same reference on its own (28 s in CI for a 2-step fit that adaptation only builds
on); one session fixture now serves both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfake_studio.audio import Audio, concatenate, load_audio, trim_silence
from deepfake_studio.synthesizer.kokoro import reconstruct as rc
from deepfake_studio.synthesizer.kokoro.engine import load_vocab

# One real train-split speaker (VCC16_TF1, female): a 7 s reference of two clips with their
# transcripts.
TF1_SPEAKER = "vcc2016/VCC16_TF1"
TF1_REFERENCE = (
    ("200023.flac", "But the general coloring was uniform and sad."),
    ("100121.flac", "But the very sight of the island had relaxed the cores of discipline."),
)
# 20 steps: with the PyTorch path's source phase fixed (session 11) the start pack is judged
# 0.615 and 10 steps had not yet moved past it (0.597); 20 steps 0.693, the default 30 0.702
# (one run each, held-out sentence through the ONNX).
TF1_FIT = rc.StyleFitConfig(steps=20, crop_seconds=1.5)


@pytest.fixture(scope="session")
def tf1_reference(speech_dir: Path) -> Audio:
    parts = [
        trim_silence(load_audio(speech_dir / TF1_SPEAKER / f, 16_000)) for f, _ in TF1_REFERENCE
    ]
    return concatenate(parts, 0.2)


@pytest.fixture(scope="session")
def tf1_fitted(kokoro_torch, kokoro_engine, tf1_reference: Audio) -> rc.StyleFitResult:  # type: ignore[no-untyped-def]
    """The reference's style fit at `TF1_FIT` (the start pack and alignment come with it)."""
    return rc.fit_style(
        kokoro_torch,
        kokoro_engine.style_packs,
        kokoro_engine.phonemes,
        load_vocab(),
        tf1_reference,
        " ".join(text for _, text in TF1_REFERENCE),
        seed=0,
        config=TF1_FIT,
    )
