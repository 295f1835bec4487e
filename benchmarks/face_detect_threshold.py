"""Does the face detector's threshold (FaceSwapConfig.detect_threshold) hold beyond the image
it was tuned on? (issue 16, item 6)

    .venv/bin/python benchmarks/face_detect_threshold.py

The threshold (0.4 on dlib's HOG score; dlib's own default is 0) was chosen on astronaut.jpg,
where a badge scored 0.16 and the face 1.2 to 2.4. This script runs the project's detection
path (the same downscaled copy and upsampling as `FaceModels.detect_boxes`) with every
candidate dlib reports down to a score of -0.5, on:

* the portraits not used for the choice: shared/data/faces (obama.jpg, biden.jpg; the
  example obama.jpg is the same photograph), the only other portraits on this machine;
* the tuning image itself (examples/faces/astronaut.jpg), for reference;
* photographs that hold no human face (gradio's bundled demo images: cheetahs, a lion, a
  tower, a bus), where every detection is a false one.

Each image is also tried at half size and flipped left-right (cheap variants of the same
photograph; not independent images). Writes benchmarks/face_detect_threshold.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from deepfake_studio.faceswap import FaceSwapConfig
from deepfake_studio.faceswap.image import read_image
from deepfake_studio.faceswap.landmarks import FaceModels

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402

DATA = Path(os.environ.get("DEEPFAKE_STUDIO_DATA", ROOT.parent / "shared" / "data"))
FLOOR = -0.5  # report candidates down to this HOG score


def images() -> list[tuple[str, str, np.ndarray]]:
    """(name, role, RGB image): role is "held-out face", "tuning image" or "no face"."""
    import gradio

    config = FaceSwapConfig()
    out: list[tuple[str, str, np.ndarray]] = []
    for path in (DATA / "faces" / "obama.jpg", DATA / "faces" / "biden.jpg"):
        if path.exists():
            out.append((f"shared/{path.name}", "held-out face", read_image(path, config)))
    tuning = ROOT / "examples" / "faces" / "astronaut.jpg"
    out.append(("examples/astronaut.jpg", "tuning image", read_image(tuning, config)))
    # Photographs without a human face that ship with an installed package (gradio's demo
    # media): animals and street scenes, where every detection is a false one.
    media = Path(gradio.__file__).parent / "media_assets" / "images"
    for name in ("cheetah.jpg", "cheetah1.jpg", "lion.jpg", "tower.jpg", "bus.png"):
        if (media / name).exists():
            out.append((f"gradio {name}", "no face", read_image(media / name, config)))
    return out


def candidates(models: FaceModels, rgb: np.ndarray) -> list[tuple[float, list[int]]]:
    """(HOG score, box) of every candidate above FLOOR, on the copy `detect_boxes` uses."""
    config = models.config
    h, w = rgb.shape[:2]
    scale = min(1.0, config.detect_max_side / max(h, w))
    small = rgb
    if scale < 1.0:
        small = cv2.resize(rgb, (round(w * scale), round(h * scale)), cv2.INTER_AREA)
    rects, scores, _ = models.detector.run(
        np.ascontiguousarray(small), config.detect_upsample, FLOOR
    )
    return [
        (
            round(float(s), 3),
            [round(v / scale) for v in (r.left(), r.top(), r.right(), r.bottom())],
        )
        for r, s in zip(rects, scores, strict=True)
    ]


def main() -> None:
    config = FaceSwapConfig()
    models = FaceModels(config)
    threshold = config.detect_threshold
    rows = []
    for name, role, rgb in images():
        variants = {
            "original": rgb,
            "half size": cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), cv2.INTER_AREA),
            "flipped": rgb[:, ::-1],
        }
        for variant, image in variants.items():
            found = candidates(models, np.ascontiguousarray(image))
            rows.append(
                {
                    "image": name,
                    "role": role,
                    "variant": variant,
                    "size": list(image.shape[:2]),
                    "scores": [s for s, _ in found],
                    "boxes": [b for _, b in found],
                    "detected_at_threshold": sum(s >= threshold for s, _ in found),
                    "detected_at_0": sum(s >= 0 for s, _ in found),
                }
            )
            print(name, variant, [s for s, _ in found], flush=True)
    result = {"threshold": threshold, "floor": FLOOR, "rows": rows}
    (OUT / "face_detect_threshold.json").write_text(json.dumps(result, indent=1) + "\n")
    (OUT / "face_detect_threshold.md").write_text(markdown(result), encoding="utf-8")


def markdown(result: dict) -> str:
    t = result["threshold"]
    lines = [
        "# Face detector threshold beyond its tuning image (issue 16, item 6)",
        "",
        "Generated by `benchmarks/face_detect_threshold.py`. `FaceSwapConfig.detect_threshold` "
        f"= {t} on dlib's HOG score was **tuned on the test image** (scikit-image's astronaut: a "
        "badge scored 0.16, the face 1.2 to 2.4), so that image's result is in-sample. Below: "
        f"every candidate dlib reports down to {result['floor']}, on the same downscaled copy "
        "the studio detects on. Half-size and flipped rows are variants of the same photograph, "
        "not independent images.",
        "",
        "| image | role | variant | size | candidate scores | faces ≥ "
        f"{t} | faces ≥ 0 (dlib default) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        scores = ", ".join(f"{s:.2f}" for s in r["scores"]) or "none"
        lines.append(
            f"| {r['image']} | {r['role']} | {r['variant']} | {r['size'][1]}×{r['size'][0]} "
            f"| {scores} | {r['detected_at_threshold']} | {r['detected_at_0']} |"
        )
    faces = [s for r in result["rows"] if r["role"] == "held-out face" for s in r["scores"]]
    false = [s for r in result["rows"] if r["role"] == "no face" for s in r["scores"]]
    held = [r for r in result["rows"] if r["role"] == "held-out face"]
    lines += [
        "",
        f"Held-out portraits: {len({r['image'] for r in held})} photographs "
        f"({len(held)} rows with variants), one face each; found at {t}: "
        f"{sum(r['detected_at_threshold'] == 1 for r in held)} of {len(held)} rows, face "
        f"scores {min(faces):.2f} to {max(faces):.2f}. Photographs without a face: highest "
        f"candidate {max(false):.2f}."
        if faces and false
        else "",
        "So on these images the threshold sits in a wide gap (no candidate between "
        "0.0 and 1.0 outside the tuning image); with two held-out portraits this is a sanity "
        "check, not a measured false-positive or miss rate.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_overwrite_flag(parser)
    written = [OUT / "face_detect_threshold.json", OUT / "face_detect_threshold.md"]
    refuse_to_overwrite(written, parser.parse_args().overwrite)
    main()
