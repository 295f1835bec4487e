"""Video face swap on short clips made here from a still: frames, rate, audio, marks, smoothness."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfake_studio import Studio
from deepfake_studio.audio import Audio, load_audio
from deepfake_studio.errors import FaceError, MediaError, StudioError
from deepfake_studio.evaluation.asr import normalize_words
from deepfake_studio.faceswap import FaceSwapConfig
from deepfake_studio.faceswap.image import prepare_source, read_image
from deepfake_studio.faceswap.video import VideoInfo, probe, read_frames, swap_video
from deepfake_studio.provenance import verify
from deepfake_studio.provenance.image_watermark import ImageWatermarker
from tests.conftest import skip_or_fail_in_ci

if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
    skip_or_fail_in_ci("video tests need ffmpeg and ffprobe")

FPS, FRAMES, SIZE = 10, 12, (384, 320)  # 1.2 s; the watermark needs >= 256x256 frames


def moving_frames(still: np.ndarray, count: int = FRAMES) -> list[np.ndarray]:
    """The still moved right and scaled up a little every frame (linear in the frame index, so
    the ideal landmark track has zero second differences)."""
    frames = []
    for i in range(count):
        scale, dx = 0.62 + 0.01 * i, 4.0 * i
        m = np.array([[scale, 0, 20 + dx], [0, scale, 0]], np.float32)
        frames.append(cv2.warpAffine(still, m, SIZE, flags=cv2.INTER_LINEAR))
    return frames


def write_clip(frames: list[np.ndarray], out: Path, audio: bool = True) -> Path:
    h, w = frames[0].shape[:2]
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    cmd += ["-s", f"{w}x{h}", "-r", str(FPS), "-i", "-"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={len(frames) / FPS}"]
        cmd += ["-c:a", "aac"]
    cmd += ["-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", str(out)]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
    return out


def streams(path: Path) -> dict[str, dict]:
    cmd = ["ffprobe", "-v", "error", "-count_frames", "-print_format", "json", "-show_streams"]
    out = subprocess.run([*cmd, str(path)], capture_output=True, check=True).stdout
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, astronaut: Path) -> Path:
    still = read_image(astronaut, FaceSwapConfig())
    return write_clip(moving_frames(still), tmp_path_factory.mktemp("clip") / "clip.mp4")


SPOKEN_FRAMES = 30  # 3 s: room for a whole sentence, so the cut at the clip's end never clips it


@pytest.fixture(scope="module")
def spoken_clip(tmp_path_factory: pytest.TempPathFactory, astronaut: Path) -> Path:
    still = read_image(astronaut, FaceSwapConfig())
    frames = moving_frames(still, SPOKEN_FRAMES)
    return write_clip(frames, tmp_path_factory.mktemp("clip") / "spoken.mp4")


def test_video_keeps_frames_rate_and_audio_and_marks_every_frame(
    studio: Studio, obama: Path, clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "swapped.mp4"
    result = studio.faceswap(obama, clip, out)
    assert result.media == "video" and result.audio == "original"
    assert result.frames == FRAMES and result.faces_swapped == FRAMES  # every frame swapped
    before, after = streams(clip), streams(out)
    assert after["video"]["nb_read_frames"] == before["video"]["nb_read_frames"] == str(FRAMES)
    assert after["video"]["r_frame_rate"] == before["video"]["r_frame_rate"] == f"{FPS}/1"
    assert (after["video"]["width"], after["video"]["height"]) == SIZE
    assert "audio" in after and abs(float(after["audio"]["duration"]) - FRAMES / FPS) < 0.15

    info = probe(out)
    marker = ImageWatermarker()
    per_frame = [marker.detect(f).present for f in read_frames(out, info)]
    assert sum(per_frame) >= FRAMES - 1, per_frame  # H.264 keeps the mark in (nearly) every frame
    verdict, count = marker.detect_frames(read_frames(out, info))
    assert verdict.present and count == FRAMES
    unmarked, _ = marker.detect_frames(read_frames(clip, probe(clip)))
    assert not unmarked.present

    assert verify(out, data_dir=studio.data_dir).ok
    record = json.loads(result.record.read_text())
    assert record["media"] == "video" and record["video"]["frames"] == FRAMES
    assert not list(tmp_path.glob(".*tmp*"))


def test_landmark_track_is_smooth(face_models, obama: Path, clip: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = FaceSwapConfig()
    source = prepare_source(read_image(obama, config), face_models)
    stats = swap_video(source, clip, tmp_path / "o.mp4", face_models, config, keep_tracks=True)
    assert list(stats.tracks) == [0] and len(stats.tracks[0]) == FRAMES
    smoothed = np.stack([points for _, points in stats.tracks[0]])
    info: VideoInfo = probe(clip)
    raw = np.stack([face_models.detect(f)[0].landmarks for f in read_frames(clip, info)])

    def jitter(track: np.ndarray) -> float:
        # The clip moves linearly: any second difference is jitter.
        return float(np.linalg.norm(np.diff(track, n=2, axis=0), axis=2).mean())

    assert jitter(smoothed) < 0.75 * jitter(raw), (jitter(smoothed), jitter(raw))
    assert jitter(smoothed) < 1.0
    # Smoothing is centred: no lag behind the raw landmarks (within a pixel or two on average).
    assert float(np.linalg.norm(smoothed - raw, axis=2).mean()) < 2.0


def test_soundtrack_replaced_by_a_file(
    studio: Studio, obama: Path, clip: Path, tmp_path: Path, example_reference: Path
) -> None:
    out = tmp_path / "dubbed.mp4"
    result = studio.faceswap(obama, clip, out, audio=example_reference)
    assert result.audio == "file"
    after = streams(out)
    # The 7.6 s recording is cut to the video's length, and the cut is reported.
    assert abs(float(after["audio"]["duration"]) - FRAMES / FPS) < 0.15
    assert abs(result.audio_cut_s - (7.6 - FRAMES / FPS)) < 0.1, result.audio_cut_s
    record = json.loads(result.record.read_text())
    assert record["inputs"]["audio"]["name"] == example_reference.name
    assert record["video"]["audio_cut_s"] == result.audio_cut_s
    # extend: the last frame is held until the soundtrack ends; nothing is cut.
    held = studio.faceswap(obama, clip, tmp_path / "held.mp4", audio=example_reference, extend=True)
    assert held.audio_cut_s == 0 and abs(held.extended_s - result.audio_cut_s) < 0.05
    longer = streams(tmp_path / "held.mp4")
    assert abs(float(longer["audio"]["duration"]) - 7.6) < 0.15
    assert abs(int(longer["video"]["nb_read_frames"]) - 7.6 * FPS) <= 2  # frames, not metadata


def test_video_errors_leave_nothing_behind(
    studio: Studio, obama: Path, clip: Path, tmp_path: Path
) -> None:
    audio_only = tmp_path / "audio_only.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", str(audio_only)],
        check=True,
    )
    faceless = write_clip([np.full((320, 384, 3), 90, np.uint8)] * 4, tmp_path / "blank.mp4")
    out = tmp_path / "o.mp4"
    cases = [
        (audio_only, {}, MediaError, "has no video frames"),
        (faceless, {}, FaceError, "no face found in any frame"),
        (clip, {"face": 3}, FaceError, "--face 3 is out of range"),
        (clip, {"text": "Hello."}, StudioError, "--voice or --reference"),
    ]
    for target, options, kind, message in cases:
        with pytest.raises(kind) as caught:
            studio.faceswap(obama, target, out, **options)
        assert message in str(caught.value), str(caught.value)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def decoded_soundtrack(video: Path, out: Path) -> Audio:
    """The video's audio stream as 16 kHz mono (what a viewer would hear)."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(video), "-vn", "-ac", "1", "-ar", "16000"]
    subprocess.run([*cmd, str(out)], check=True)
    return load_audio(out)


@pytest.mark.slow
def test_soundtrack_replaced_by_a_cloned_voice(
    studio: Studio,
    obama: Path,
    spoken_clip: Path,
    tmp_path: Path,
    example_reference: Path,
    transcriber,  # type: ignore[no-untyped-def]
) -> None:
    voice = studio.enroll(
        example_reference,
        "Faceswap Reader",
        "Public-domain LJ Speech reader.",
        engine="piper",
        overwrite=True,
    )
    out = tmp_path / "cloned.mp4"
    text = "Hello there, my good friend."
    result = studio.faceswap(obama, spoken_clip, out, voice=voice.id, text=text)
    assert result.audio == "cloned" and result.frames == SPOKEN_FRAMES
    # The soundtrack a viewer hears says the words and carries the audio watermark.
    heard = decoded_soundtrack(out, tmp_path / "heard.wav")
    assert 1.2 < heard.duration < SPOKEN_FRAMES / FPS + 0.15, heard.duration
    # A whole sentence, not two words: Whisper-base misheard a 1.2 s "Hello there." through AAC
    # ("a low of there", "hello up there"). The original track is a sine tone: no words at all.
    words = normalize_words(transcriber.transcribe(heard.samples, heard.sample_rate))
    assert words[:2] == ["hello", "there"] and words[-1:] == ["friend"], words
    assert studio.watermarker.detect(heard).present
    record = json.loads(result.record.read_text())
    assert record["voice"]["id"] == voice.id and record["consent"]["statement"]
    assert record["watermark"]["audio"]["applied"] is True
    assert record["watermark"]["audio"]["layers"] == list(studio.watermarker.methods)
    assert record["text_sha256"] is not None
