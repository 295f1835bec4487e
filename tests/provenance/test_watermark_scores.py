"""One meaning for the watermark score in every medium: near 0 unmarked, near 1 marked, and the
threshold reported beside it (issue 17: a clean image used to read "0.50 confidence")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2

from deepfake_studio import Studio
from deepfake_studio.audio import load_audio, save_audio
from deepfake_studio.provenance.image_watermark import ImageWatermarker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_audio_image_and_video_scores_share_one_scale(
    studio: Studio, example_reference: Path
) -> None:
    speech = load_audio(example_reference)
    audio_clean = studio.watermarker.detect(speech)
    audio_marked = studio.watermarker.detect(studio.watermarker.embed(speech))
    images = ImageWatermarker()
    rgb = cv2.cvtColor(cv2.imread(str(EXAMPLES / "faces" / "astronaut.jpg")), cv2.COLOR_BGR2RGB)
    image_clean = images.detect(rgb)
    image_marked = images.detect(images.embed(rgb))
    video_clean, _ = images.detect_frames([rgb, rgb[:, ::-1].copy()])
    for clean, marked in ((audio_clean, audio_marked), (image_clean, image_marked)):
        assert clean.score < 0.5 < clean.threshold <= marked.score, (clean, marked)
        assert not clean.present and marked.present
        assert marked.score > 0.95
    assert video_clean.score < 0.5 and not video_clean.present
    assert audio_clean.threshold == 0.85 and round(image_clean.threshold, 2) == 0.79


CLI = [sys.executable, "-m", "deepfake_studio.cli"]


def test_watermark_verify_prints_the_score_and_its_threshold(
    studio: Studio, example_reference: Path, tmp_path: Path
) -> None:
    marked = save_audio(
        studio.watermarker.embed(load_audio(example_reference)), tmp_path / "marked.wav"
    )
    clean = EXAMPLES / "faces" / "astronaut.jpg"
    checked = subprocess.run(
        # The studio's data dir: its signing key keys the second audio layer.
        [*CLI, "watermark", "verify", marked, clean, "--data-dir", str(studio.data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stderr
    audio_line, image_line = checked.stdout.splitlines()
    assert audio_line.startswith(f"{marked}\tpresent\tscore 1.00 (threshold 0.85)"), audio_line
    assert audio_line.endswith("\tfound by perthnet, spread-spectrum"), audio_line
    name, verdict, score = image_line.split("\t")
    assert name == str(clean) and verdict == "absent" and score.endswith("(threshold 0.79)")
    assert 0.0 <= float(score.split()[1]) < 0.5
