"""Face-swap speed on this machine; medians go to benchmarks/faceswap.{md,json}.

    .venv/bin/python benchmarks/bench_faceswap.py [--runs 5] [--video-runs 3] [--seconds 2]

Measures, in one warm process, with the bundled example faces (obama.jpg onto astronaut.jpg):
* one image swap (detection + alignment + blending), the watermark, and the whole
  `Studio.faceswap` call (read, swap, watermark, write PNG, signed record), in ms;
* video swap throughput (decode, track, swap, watermark every frame, encode H.264, mux audio)
  at 640x480 and 1280x720, in frames per second, on clips made here from the still (the face
  moving and growing, as in the tests) with a sine soundtrack.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from _output import add_overwrite_flag, refuse_to_overwrite

from deepfake_studio import Studio, StudioConfig
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.faceswap import FaceSwapConfig
from deepfake_studio.faceswap.image import prepare_source, read_image, swap_faces

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "examples" / "faces"
OUT = Path(__file__).resolve().parent


def machine() -> dict[str, object]:
    cpu = cpu_model()
    import dlib

    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "memory_gib": round(mem_gib),
        "os": platform.platform(),
        "python": platform.python_version(),
        "dlib": dlib.__version__,
        "opencv": cv2.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def timed(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    """Median wall time of `runs` calls, in seconds (one untimed warm-up call first)."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_clip(still: np.ndarray, size: tuple[int, int], seconds: float, out: Path) -> Path:
    """A clip of `still` moving right and growing, `size` (w, h), 25 fps, with a sine track."""
    w, h = size
    fps = 25
    frames = round(seconds * fps)
    cmd = [
        "ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
        "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    base = 0.6 * h / still.shape[0]
    for i in range(frames):
        scale = base * (1 + 0.1 * i / frames)
        m = np.array([[scale, 0, 0.2 * w + 0.2 * w * i / frames], [0, scale, 0.05 * h]])
        proc.stdin.write(cv2.warpAffine(still, m.astype(np.float32), (w, h)).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("ffmpeg failed to make the clip")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--video-runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    refuse_to_overwrite([OUT / "faceswap.json", OUT / "faceswap.md"], args.overwrite)

    config = FaceSwapConfig()
    results: dict[str, object] = {"machine": machine(), "runs": args.runs}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        studio = Studio(StudioConfig(data_dir=tmp / "home"))
        models = studio.face_models
        source_path, target_path = FACES / "obama.jpg", FACES / "astronaut.jpg"
        target = read_image(target_path, config)
        source = prepare_source(read_image(source_path, config), models)
        marker = studio.image_watermarker

        image: dict[str, float] = {
            "detect_ms": 1000 * timed(lambda: models.detect(target), args.runs),
            "swap_ms": 1000 * timed(lambda: swap_faces(target, source, models, config), args.runs),
            "watermark_512_ms": 1000 * timed(lambda: marker.embed(target), args.runs),
            "studio_faceswap_png_ms": 1000
            * timed(lambda: studio.faceswap(source_path, target_path, tmp / "out.png"), args.runs),
        }
        results["image_512x512"] = {k: round(v, 1) for k, v in image.items()}
        print("image 512x512:", results["image_512x512"], flush=True)

        video: dict[str, dict[str, float]] = {}
        for w, h in ((640, 480), (1280, 720)):
            clip = make_clip(target, (w, h), args.seconds, tmp / f"clip{w}.mp4")
            frames = round(args.seconds * 25)
            frame = np.zeros((h, w, 3), np.uint8)
            wm_ms = 1000 * timed(lambda frame=frame: marker.embed(frame), 3)
            seconds = timed(
                lambda clip=clip, w=w: studio.faceswap(source_path, clip, tmp / f"out{w}.mp4"),
                args.video_runs,
            )
            video[f"{w}x{h}"] = {
                "frames": frames,
                "seconds": round(seconds, 2),
                "fps": round(frames / seconds, 2),
                "watermark_ms_per_frame": round(wm_ms, 1),
            }
            print(f"video {w}x{h}:", video[f"{w}x{h}"], flush=True)
        results["video"] = video
        results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]

    (OUT / "faceswap.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    lines = [
        "# Face-swap speed",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; "  # type: ignore[index]
        f"dlib {m['dlib']}, OpenCV {m['opencv']}. Load average at start "  # type: ignore[index]
        f"{m['load_average_at_start']}, at end {results['load_average_at_end']}.",  # type: ignore[index]
        "",
        f"Medians of {args.runs} runs (image) and {args.video_runs} runs (video), warm process.",
        "",
        "## One image (obama.jpg onto astronaut.jpg, 512 x 512)",
        "",
        "| step | ms |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in results["image_512x512"].items()]  # type: ignore[union-attr]
    lines += [
        "",
        f"## Video ({args.seconds:.0f} s clips at 25 fps, one face, with audio)",
        "",
        "Everything included: decode, tracking (full detection every 4 frames), swap, "
        "watermark on every frame, H.264 encode, audio mux.",
        "",
        "| size | frames | seconds | frames/s | watermark ms/frame |",
        "|---|---|---|---|---|",
    ]
    for size, row in video.items():
        lines.append(
            f"| {size} | {row['frames']} | {row['seconds']} | {row['fps']} | "
            f"{row['watermark_ms_per_frame']} |"
        )
    (OUT / "faceswap.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
