"""The detector shipped in the package: real test speakers low, fresh synthetic speech high."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from deepfake_studio.audio import Audio, load_audio
from deepfake_studio.detector import Detector
from deepfake_studio.errors import AudioError

FRESH_TEXT = "The lighthouse keeper counted forty ships before the storm reached the harbour."


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


def test_held_out_real_speakers_score_low(detector: Detector, speech_dir: Path) -> None:
    from deepfake_studio.evaluation.speakers import load_manifest, split_speakers

    clips = load_manifest(speech_dir.parent)
    test_speakers = [s for _, s in split_speakers("test")][:16]
    files = [next(c.path for c in clips if c.speaker == s) for s in test_speakers]
    results = [detector.detect(f) for f in files]
    flagged = [str(f) for f, r in zip(files, results, strict=True) if r.synthetic]
    assert len(flagged) <= 1, flagged
    assert float(np.median([r.probability for r in results])) < 0.2


def test_fresh_kokoro_piper_and_espeak_score_high(
    detector: Detector,
    kokoro_engine,
    piper_engine,  # type: ignore[no-untyped-def]
) -> None:
    from deepfake_studio.synthesizer.base import Conditioning

    kokoro = kokoro_engine.synthesize(FRESH_TEXT, kokoro_engine.default_conditioning())
    other_pack = Conditioning("kokoro", arrays={"style": kokoro_engine.style_packs["jm_kumo"]})
    kokoro2 = kokoro_engine.synthesize(FRESH_TEXT, other_pack, 1.1)
    piper = piper_engine.synthesize(FRESH_TEXT, piper_engine.default_conditioning())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "e.wav"
        subprocess.run(["espeak-ng", "-v", "en-gb+f3", "-w", str(out), FRESH_TEXT], check=True)
        espeak = load_audio(out)
    clips = {
        "kokoro": Audio(kokoro, 24_000),
        "kokoro jm_kumo": Audio(kokoro2, 24_000),
        "piper": Audio(piper, piper_engine.sample_rate),
        "espeak-ng": espeak,
    }
    for name, clip in clips.items():
        result = detector.detect(clip)
        assert result.synthetic, (name, result.probability)
        assert result.probability > 0.8, (name, result.probability)


def test_any_length_gets_windows_and_too_short_is_refused(
    detector: Detector, example_reference: Path
) -> None:
    real = load_audio(example_reference)
    long = Audio(np.tile(real.samples, 4), real.sample_rate)
    result = detector.detect(long)
    assert result.duration == pytest.approx(long.duration)
    assert len(result.segments) >= long.duration / 1.5 - 2
    assert result.segments[0].start == 0.0
    assert result.segments[-1].end == pytest.approx(long.duration, abs=0.02)
    assert all(0.0 <= s.probability <= 1.0 for s in result.segments)
    one = detector.detect(real.with_samples(real.samples[: int(0.7 * real.sample_rate)]))
    assert len(one.segments) == 1
    with pytest.raises(AudioError, match="at least 0.5 s"):
        detector.detect(real.with_samples(real.samples[:1000]))


def test_studio_loads_the_detector_once(studio, example_reference: Path) -> None:  # type: ignore[no-untyped-def]
    first = studio.detect(example_reference)
    assert studio.detector is studio.detector
    assert first.label in ("real", "synthetic") and first.threshold == studio.detector.threshold
