"""Swap faces in a video, streamed frame by frame through two ffmpeg pipes.

ffmpeg decodes the target to raw RGB frames on a pipe; each frame is swapped (and marked)
and piped into a second ffmpeg that encodes H.264 at the original frame rate and muxes the
original audio track (or a replacement) back in. Only a few frames are ever in memory: the
look-ahead of the landmark smoother.

Landmarks are tracked: faces are detected every `detect_every` frames (and whenever a face is
lost), in between the 68-point predictor runs on a box carried over from the previous frame.
Each track's landmarks are averaged over +-`smooth_radius` frames with Gaussian weights
(centred, so a steadily moving face is not lagged behind, and per-frame detector jitter is
averaged out).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from deepfake_studio.audio import ffmpeg_path
from deepfake_studio.errors import FaceError, MediaError
from deepfake_studio.faceswap.config import VIDEO_OUTPUT_SUFFIXES, VIDEO_SUFFIXES, FaceSwapConfig
from deepfake_studio.faceswap.image import SourceFace, swap_one
from deepfake_studio.faceswap.landmarks import Face, FaceModels

ProgressCallback = Callable[[float, str], None]
FrameFilter = Callable[[np.ndarray], np.ndarray]
DETECT_EVERY = 4  # frames between full detections while every face is tracked


@dataclass(frozen=True)
class VideoInfo:
    """What ffprobe (or ffmpeg's header) says about a video's first video stream."""

    width: int
    height: int
    fps: str  # exact rational, e.g. "30000/1001": passed back to the encoder unchanged
    duration: float
    frames: int | None  # from the container; None when it does not say
    has_audio: bool

    @property
    def fps_value(self) -> float:
        return float(Fraction(self.fps))

    @property
    def expected_frames(self) -> int:
        return self.frames or max(1, round(self.duration * self.fps_value))


@dataclass
class VideoSwapStats:
    """What a video swap did."""

    frames: int = 0
    frames_swapped: int = 0
    faces_found: int = 0  # distinct face tracks seen
    width: int = 0
    height: int = 0
    fps: str = ""
    audio: str = "none"  # "original", "replaced" or "none"
    audio_cut_s: float = 0.0  # seconds of a replacement soundtrack cut at the video's end
    extended_s: float = 0.0  # seconds the last frame was held for a longer soundtrack
    # track id -> [(frame index, smoothed (68, 2) landmarks)], kept only if asked for
    tracks: dict[int, list[tuple[int, np.ndarray]]] = field(default_factory=dict)


# -- probing -----------------------------------------------------------------------------------
def _ffmpeg() -> str:
    found = ffmpeg_path()
    if found is None:
        raise MediaError("video needs ffmpeg: install ffmpeg (or pip install imageio-ffmpeg)")
    return found


def check_video_file(path: Path, config: FaceSwapConfig) -> None:
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise MediaError(
            f"the video {path.name} is not a supported type (use {', '.join(VIDEO_SUFFIXES)})"
        )
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MediaError(f"the video file {str(path)!r} does not exist") from None
    if size > config.max_video_bytes:
        raise MediaError(
            f"the video {path.name} is over the {config.max_video_bytes >> 20} MB video limit"
        )


def probe(path: str | Path, config: FaceSwapConfig | None = None) -> VideoInfo:
    """Size, frame rate, duration and audio of a video; MediaError in one line if unusable."""
    config = config or FaceSwapConfig()
    path = Path(path)
    check_video_file(path, config)
    ffprobe = shutil.which("ffprobe")
    info = _probe_ffprobe(path, ffprobe) if ffprobe else _probe_ffmpeg(path, _ffmpeg())
    if info is None or info.width <= 0 or info.height <= 0:
        raise MediaError(f"the video {path.name} has no video frames (or cannot be decoded)")
    if info.width * info.height > config.max_video_pixels:
        raise MediaError(
            f"the video {path.name} is {info.width}x{info.height}, over the "
            f"{config.max_video_pixels:,}-pixel frame limit"
        )
    if info.duration > config.max_video_seconds:
        raise MediaError(
            f"the video {path.name} is {info.duration:.0f} s long, over the "
            f"{config.max_video_seconds:.0f} s limit"
        )
    return info


def _probe_ffprobe(path: Path, ffprobe: str) -> VideoInfo | None:
    cmd = [
        ffprobe, "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
        f"file:{path}",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
        data = json.loads(proc.stdout or b"{}")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    streams = data.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None or video.get("disposition", {}).get("attached_pic"):
        return None
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    rotation = _rotation(video)
    if rotation % 180 == 90:  # ffmpeg rotates on decode: the frames come out transposed
        width, height = height, width
    fps = video.get("avg_frame_rate") or "0/0"
    if fps in ("0/0", "0/1"):
        fps = video.get("r_frame_rate") or "25/1"
    duration = float(video.get("duration") or data.get("format", {}).get("duration") or 0.0)
    frames = int(video["nb_frames"]) if str(video.get("nb_frames", "")).isdigit() else None
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    return VideoInfo(width, height, _clean_rate(fps), duration, frames, has_audio)


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return round(float(side["rotation"])) % 360
    tag = (stream.get("tags") or {}).get("rotate")
    return int(tag) % 360 if tag and str(tag).lstrip("-").isdigit() else 0


def _probe_ffmpeg(path: Path, ffmpeg: str) -> VideoInfo | None:
    """Without ffprobe (imageio-ffmpeg ships only ffmpeg): read `ffmpeg -i`'s header."""
    try:
        proc = subprocess.run(
            [ffmpeg, "-hide_banner", "-i", f"file:{path}"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = proc.stderr.decode(errors="replace")
    video = re.search(r"Stream #\S+.*?: Video: (.*)", text)
    if video is None or "attached pic" in video.group(1):
        return None
    size = re.search(r"\b(\d{2,5})x(\d{2,5})\b", video.group(1))
    rate = re.search(r"([\d.]+) (?:fps|tbr)", video.group(1))
    if size is None:
        return None
    width, height = int(size.group(1)), int(size.group(2))
    rotation = re.search(r"rotation of (-?[\d.]+) degrees", text)
    if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
        width, height = height, width
    dur = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0
    fps = str(Fraction(rate.group(1)).limit_denominator(1001)) if rate else "25"
    has_audio = re.search(r"Stream #\S+.*?: Audio:", text) is not None
    return VideoInfo(width, height, _clean_rate(fps), float(duration), None, has_audio)


def _clean_rate(rate: str) -> str:
    value = Fraction(rate) if "/" not in rate or not rate.endswith("/0") else Fraction(25)
    if value <= 0:
        value = Fraction(25)
    return f"{value.numerator}/{value.denominator}"


# -- decoding and encoding ----------------------------------------------------------------------
def read_frames(path: str | Path, info: VideoInfo) -> Iterator[np.ndarray]:
    """RGB frames (H, W, 3) uint8, one at a time, as ffmpeg decodes them."""
    cmd = [
        _ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error",
        "-i", f"file:{path}", "-map", "0:v:0", "-fps_mode", "passthrough",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
    ]  # fmt: skip
    size = info.width * info.height * 3
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errors: list[bytes] = []
    # Drain stderr in a thread: a chatty decoder would otherwise block on a full pipe.
    drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    drain.start()
    try:
        assert proc.stdout is not None
        while True:
            data = proc.stdout.read(size)
            if len(data) < size:
                break
            yield np.frombuffer(data, np.uint8).reshape(info.height, info.width, 3)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        drain.join(timeout=5)


class VideoWriter:
    """An ffmpeg H.264 encoder fed frames on a pipe, writing a temp file that replaces `out`
    only on `commit()` (so a failed or interrupted swap leaves nothing half-written)."""

    def __init__(
        self,
        out: Path,
        width: int,
        height: int,
        fps: str,
        crf: int,
        audio_from: Path | None,
        audio_limit_s: float | None = None,
        hold_last_s: float = 0.0,
    ) -> None:
        self.out = out
        self.tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp.mp4")
        cmd = [
            _ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", fps,
            "-i", "-",
        ]  # fmt: skip
        if audio_from is not None:
            if audio_limit_s is not None:
                cmd += ["-t", f"{audio_limit_s:.3f}"]
            cmd += ["-i", f"file:{audio_from}", "-map", "0:v:0", "-map", "1:a:0?"]
            cmd += ["-c:a", "aac", "-b:a", "192k"]
        # yuv420p needs even sizes: pad by one pixel when odd. tpad holds the last frame.
        video_filter = "pad=ceil(iw/2)*2:ceil(ih/2)*2"
        if hold_last_s > 0:
            video_filter += f",tpad=stop_mode=clone:stop_duration={hold_last_s:.3f}"
        cmd += [
            "-vf", video_filter,
            "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", "-f", "mp4", f"file:{self.tmp}",
        ]  # fmt: skip
        self._stderr: list[bytes] = []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self._drain = threading.Thread(
            target=lambda: self._stderr.append(self.proc.stderr.read()),  # type: ignore[union-attr]
            daemon=True,
        )
        self._drain.start()

    def write(self, rgb: np.ndarray) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(np.ascontiguousarray(rgb).tobytes())
        except BrokenPipeError:
            raise MediaError(f"ffmpeg stopped while encoding: {self._error()}") from None

    def commit(self) -> Path:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        code = self.proc.wait()
        self._drain.join(timeout=5)
        if code != 0:
            self.discard()
            raise MediaError(f"ffmpeg could not encode {self.out.name}: {self._error()}")
        with open(self.tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.out)
        return self.out

    def discard(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self.tmp.unlink(missing_ok=True)

    def _error(self) -> str:
        text = b"".join(self._stderr).decode(errors="replace").strip().splitlines()
        return text[-1] if text else f"exit code {self.proc.returncode}"


# -- tracking and smoothing --------------------------------------------------------------------
@dataclass
class _Track:
    id: int
    face: Face
    missed: int = 0


class FaceTracker:
    """Faces across frames: detection every few frames, landmark-only updates in between,
    association by distance, track ids in order of first appearance (left to right)."""

    def __init__(self, models: FaceModels, config: FaceSwapConfig, detect_every: int) -> None:
        self.models, self.config, self.detect_every = models, config, max(1, detect_every)
        self.tracks: list[_Track] = []
        self.next_id = 0
        self.frame = 0

    def update(self, rgb: np.ndarray) -> dict[int, np.ndarray]:
        """Landmarks of every live track in this frame (held ones included)."""
        detect = self.frame % self.detect_every == 0 or any(t.missed for t in self.tracks)
        self.frame += 1
        if detect or not self.tracks:
            faces = self.models.detect(rgb)
            self._associate(faces)
        else:
            for track in self.tracks:
                found = self.models.landmarks(rgb, _carried_box(track.face, rgb.shape))
                track.face = Face(_moved_box(track.face, found), found.landmarks)
        return {t.id: t.face.landmarks for t in self.tracks}

    def _associate(self, faces: list[Face]) -> None:
        unmatched = list(range(len(faces)))
        for track in self.tracks:
            best, best_d = None, math.inf
            for i in unmatched:
                d = float(np.linalg.norm(faces[i].center - track.face.center))
                if d < best_d:
                    best, best_d = i, d
            if best is not None and best_d < 0.5 * track.face.size:
                track.face, track.missed = faces[best], 0
                unmatched.remove(best)
            else:
                track.missed += 1  # held at its last landmarks for a few frames
        self.tracks = [t for t in self.tracks if t.missed <= self.config.max_missed_frames]
        for i in unmatched:  # detect() sorts left to right, so new ids follow that order
            self.tracks.append(_Track(self.next_id, faces[i]))
            self.next_id += 1


def _carried_box(face: Face, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The detector box moved and scaled with the landmarks, for the next frame's predictor."""
    h, w = shape[:2]
    x0, y0, x1, y1 = face.box
    x0, x1 = max(0, min(x0, w - 2)), max(1, min(x1, w - 1))
    y0, y1 = max(0, min(y0, h - 2)), max(1, min(y1, h - 1))
    return x0, y0, x1, y1


def _moved_box(before: Face, after: Face) -> tuple[int, int, int, int]:
    """`before.box` shifted and scaled as the landmarks moved from `before` to `after`: the
    predictor works best on boxes like the detector's, so keep that shape."""
    scale = after.size / max(before.size, 1.0)
    c0, c1 = before.center, after.center
    x0, y0, x1, y1 = before.box
    corners = (np.array([[x0, y0], [x1, y1]], np.float32) - c0) * scale + c1
    return tuple(round(float(v)) for v in corners.ravel())  # type: ignore[return-value]


def _smooth_weights(radius: int, sigma: float) -> np.ndarray:
    offsets = np.arange(-radius, radius + 1)
    return np.exp(-0.5 * (offsets / max(sigma, 1e-3)) ** 2)


# -- the swap -----------------------------------------------------------------------------------
def swap_video(
    source: SourceFace,
    target: str | Path,
    out: str | Path,
    models: FaceModels,
    config: FaceSwapConfig,
    *,
    face_index: int | None = None,
    audio: Path | None = None,
    frame_filter: FrameFilter | None = None,
    progress: ProgressCallback | None = None,
    keep_tracks: bool = False,
    detect_every: int = DETECT_EVERY,
    audio_seconds: float | None = None,
    extend: bool = False,
) -> VideoSwapStats:
    """Swap `source` onto the faces of the video `target`, writing `out` (.mp4) atomically.

    `audio`: a file whose first audio track replaces the original (None keeps the original).
    A replacement of `audio_seconds` longer than the video is cut at the video's end
    (`stats.audio_cut_s` says how much), or with `extend` the last frame is held until it ends.
    `frame_filter` runs on every output frame (the studio passes its watermark). FaceError if
    no frame has a face (or the face index never appears); MediaError for unusable files.
    """
    target, out = Path(target), Path(out)
    if out.suffix.lower() not in VIDEO_OUTPUT_SUFFIXES:
        raise MediaError(f"video output must be {', '.join(VIDEO_OUTPUT_SUFFIXES)}, not {out.name}")
    info = probe(target, config)
    stats = VideoSwapStats(width=info.width, height=info.height, fps=info.fps)
    if audio is not None:
        stats.audio, audio_from = "replaced", audio
    elif info.has_audio:
        stats.audio, audio_from = "original", target
    else:
        audio_from = None
    overrun = 0.0
    if audio is not None and audio_seconds is not None and info.duration > 0:
        overrun = max(0.0, audio_seconds - info.duration)
    if extend:
        stats.extended_s = round(overrun, 2)
    else:
        stats.audio_cut_s = round(overrun, 2)
    writer = VideoWriter(
        out,
        info.width,
        info.height,
        info.fps,
        config.video_crf,
        audio_from,
        audio_limit_s=info.duration
        if audio is not None and info.duration > 0 and not extend
        else None,
        hold_last_s=overrun if extend else 0.0,
    )
    tracker = FaceTracker(models, config, detect_every)
    radius = max(0, config.smooth_radius)
    weights = _smooth_weights(radius, config.smooth_sigma)
    # Look-ahead buffer: (frame index, frame, {track id: raw landmarks}).
    window: deque[tuple[int, np.ndarray, dict[int, np.ndarray]]] = deque()
    expected = info.expected_frames
    seen_ids: set[int] = set()

    def emit(index: int) -> None:
        """Swap and write frame `index`, its landmarks averaged over the window around it."""
        frame, raw = next((f, p) for i, f, p in window if i == index)
        smoothed: dict[int, np.ndarray] = {}
        for tid in raw:
            acc, total = np.zeros((68, 2), np.float64), 0.0
            for i, _, points in window:
                if abs(i - index) <= radius and tid in points:
                    acc += weights[i - index + radius] * points[tid]
                    total += weights[i - index + radius]
            smoothed[tid] = (acc / total).astype(np.float32)
        image = frame
        for tid, points in sorted(smoothed.items()):
            if face_index is not None and tid != face_index:
                continue
            image, _, _ = swap_one(image, source, points, config)
            if keep_tracks:
                stats.tracks.setdefault(tid, []).append((index, points))
        if image is not frame:
            stats.frames_swapped += 1
        writer.write(frame_filter(image) if frame_filter is not None else image)
        stats.frames += 1
        if progress is not None:
            progress(min(stats.frames / expected, 1.0), f"frame {stats.frames}/{expected}")
        while window and window[0][0] < index + 1 - radius:
            window.popleft()  # no later frame looks this far back

    try:
        next_out = 0
        for index, frame in enumerate(read_frames(target, info)):
            landmarks = tracker.update(frame)
            seen_ids.update(landmarks)
            window.append((index, frame, landmarks))
            if index - next_out >= radius:
                emit(next_out)
                next_out += 1
        while window and next_out <= window[-1][0]:
            emit(next_out)
            next_out += 1
        if stats.frames == 0:
            raise MediaError(f"the video {target.name} has no frames that can be decoded")
        stats.faces_found = len(seen_ids)
        if not seen_ids:
            raise FaceError(f"no face found in any frame of the target video {target.name}")
        if face_index is not None and face_index not in seen_ids:
            raise FaceError(
                f"--face {face_index} is out of range: the target video has "
                f"{len(seen_ids)} face track{'s' if len(seen_ids) != 1 else ''} "
                f"(0-{len(seen_ids) - 1})"
            )
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return stats
