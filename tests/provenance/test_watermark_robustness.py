"""The watermark survives a 128 kbps MP3 round trip; the same clip unmarked is not detected.

A fast slice of benchmarks/watermark_robustness.py (which measures many more conditions).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from deepfake_studio.audio import Audio, ffmpeg_path, load_audio, normalize_loudness, save_audio
from deepfake_studio.provenance import DETECTION_THRESHOLD, AudioWatermarker
from tests.conftest import skip_or_fail_in_ci


def _mp3_128k(audio: Audio, tmp_path: Path) -> Audio:
    ffmpeg = ffmpeg_path()
    if ffmpeg is None:
        skip_or_fail_in_ci("ffmpeg is not installed")
    src = save_audio(audio, tmp_path / "src.wav")
    out = tmp_path / "coded.mp3"
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src),
           "-ar", "44100", "-codec:a", "libmp3lame", "-b:a", "128k", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return load_audio(out)


def test_mark_survives_mp3_128k_and_clean_clip_is_absent(
    example_reference: Path, tmp_path: Path
) -> None:
    watermarker = AudioWatermarker()
    speech = load_audio(example_reference)
    clip = normalize_loudness(speech.with_samples(speech.samples[: 4 * speech.sample_rate]))

    marked = _mp3_128k(watermarker.embed(clip), tmp_path)
    result = watermarker.detect(marked)
    assert result.present, result.confidence
    assert result.confidence >= 0.95  # measured 1.0; the threshold is 0.85

    clean = watermarker.detect(_mp3_128k(clip, tmp_path))
    assert not clean.present and clean.confidence < DETECTION_THRESHOLD
