"""Swap faces in one image: read/check files, pick faces, align, blend, write atomically.

Images are RGB uint8 arrays in memory (OpenCV's BGR only at the file boundary).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from deepfake_studio.errors import FaceError, MediaError
from deepfake_studio.faceswap.align import triangulate, warp_face
from deepfake_studio.faceswap.blend import (
    face_alpha,
    kept_regions,
    match_colors,
    seamless_clone,
)
from deepfake_studio.faceswap.config import (
    IMAGE_OUTPUT_SUFFIXES,
    IMAGE_SUFFIXES,
    FaceSwapConfig,
)
from deepfake_studio.faceswap.landmarks import Face, FaceModels, with_forehead


@dataclass(frozen=True)
class SourceFace:
    """The face to paste, prepared once (a video reuses it for every frame)."""

    image: np.ndarray  # RGB
    face: Face
    faces_found: int


@dataclass
class SwapResult:
    """A swapped image, its blend mask (0 = target pixel kept exactly) and what was done."""

    image: np.ndarray  # RGB uint8
    alpha: np.ndarray  # float32 (H, W), union of the per-face masks
    faces_found: int
    swapped: list[int] = field(default_factory=list)  # indices into the left-to-right faces
    kept: list[list[str]] = field(default_factory=list)  # expression regions kept per face


# -- files ------------------------------------------------------------------------------------
def read_image(path: str | Path, config: FaceSwapConfig, role: str = "image") -> np.ndarray:
    """An RGB uint8 image from a file, or MediaError in one line (type, size, corrupt)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise MediaError(
            f"the {role} {path.name} is not a supported image (use {', '.join(IMAGE_SUFFIXES)})"
        )
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MediaError(f"the {role} file {str(path)!r} does not exist") from None
    except OSError as e:
        raise MediaError(f"cannot read the {role} {path.name}: {e.strerror}") from None
    if size > config.max_image_bytes:
        raise MediaError(
            f"the {role} {path.name} is over the {config.max_image_bytes >> 20} MB image limit"
        )
    data = np.fromfile(path, np.uint8) if size else np.zeros(0, np.uint8)
    header = _image_size(data)
    if header is not None and header[0] * header[1] > config.max_image_pixels:
        raise MediaError(
            f"the {role} {path.name} is {header[0]}x{header[1]} pixels, over the "
            f"{config.max_image_pixels / 1e6:.0f}-megapixel limit"
        )
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if size else None
    if bgr is None:
        raise MediaError(f"cannot decode the {role} {path.name}: not a valid image file")
    if bgr.shape[0] * bgr.shape[1] > config.max_image_pixels:
        raise MediaError(
            f"the {role} {path.name} is {bgr.shape[1]}x{bgr.shape[0]} pixels, over the "
            f"{config.max_image_pixels / 1e6:.0f}-megapixel limit"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _image_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a PNG header without decoding (guards against decompression
    bombs); other formats are checked after decoding."""
    raw = data[:24].tobytes()
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    return None


def write_image(rgb: np.ndarray, path: str | Path, config: FaceSwapConfig) -> Path:
    """Write atomically (temp file in the same folder, fsync, rename); returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_OUTPUT_SUFFIXES:
        raise MediaError(
            f"cannot write {suffix or 'files without a suffix'} images: "
            f"use {', '.join(IMAGE_OUTPUT_SUFFIXES)}"
        )
    params: list[int] = []
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 101]  # 101: lossless (the watermark survives)
    ok, encoded = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise MediaError(f"cannot encode {path.name}")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(encoded.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise MediaError(f"cannot write {str(path)!r}: {e.strerror or type(e).__name__}") from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return path


# -- faces ------------------------------------------------------------------------------------
def prepare_source(rgb: np.ndarray, models: FaceModels, name: str = "source") -> SourceFace:
    """The largest face of the source image, or FaceError if it has none."""
    faces = models.detect(rgb)
    if not faces:
        raise FaceError(f"no face found in the {name} image")
    largest = max(faces, key=lambda f: f.size)
    return SourceFace(image=rgb, face=largest, faces_found=len(faces))


def choose_faces(faces: list[Face], index: int | None, name: str = "target") -> list[int]:
    """Indices to swap: all, or the one asked for (FaceError if there is none)."""
    if not faces:
        raise FaceError(f"no face found in the {name}")
    if index is None:
        return list(range(len(faces)))
    if not 0 <= index < len(faces):
        found = f"{len(faces)} face{'s' if len(faces) != 1 else ''}"
        raise FaceError(
            f"--face {index} is out of range: the {name} has {found} (0-{len(faces) - 1})"
        )
    return [index]


def swap_one(
    target: np.ndarray, source: SourceFace, target_points: np.ndarray, config: FaceSwapConfig
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Paste the source face onto one target face: (new image, alpha, kept regions)."""
    keep = kept_regions(source.face.landmarks, target_points, config.keep_expression_stretch)
    src_points = with_forehead(source.face.landmarks, config.forehead)
    target_points = with_forehead(np.asarray(target_points, np.float32), config.forehead)
    warped, covered, (x0, y0, x1, y1) = warp_face(
        source.image, src_points, target_points, target.shape, triangulate(target_points)
    )
    if warped.size == 0:
        return target, np.zeros(target.shape[:2], np.float32), keep
    # Work in a padded box around the face: cloning and blurs stay local (fast on big frames).
    h, w = target.shape[:2]
    pad = max(4, round(0.1 * max(x1 - x0, y1 - y0)))
    bx0, by0, bx1, by1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, w), min(y1 + pad, h)
    roi = target[by0:by1, bx0:bx1]
    face = roi.copy()
    face[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0][covered > 0] = warped[covered > 0]
    local_points = target_points - np.array([bx0, by0], np.float32)
    alpha = face_alpha(
        local_points, roi.shape[:2], feather=config.feather, erode=config.mask_erode, keep=keep
    )
    cover = np.zeros(roi.shape[:2], np.uint8)
    cover[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] = covered
    alpha[cover == 0] = 0.0
    if config.color_correct:
        face = match_colors(face, roi, alpha)
    if config.seamless:
        face = seamless_clone(face, roi, ((alpha > 0) * 255).astype(np.uint8))
    a = alpha[..., None]
    blended = np.round(roi * (1.0 - a) + face * a).astype(np.uint8)
    out = target.copy()
    out[by0:by1, bx0:bx1] = np.where(alpha[..., None] > 0, blended, roi)
    full_alpha = np.zeros(target.shape[:2], np.float32)
    full_alpha[by0:by1, bx0:bx1] = alpha
    return out, full_alpha, keep


def swap_faces(
    target: np.ndarray,
    source: SourceFace,
    models: FaceModels,
    config: FaceSwapConfig,
    face_index: int | None = None,
    faces: list[Face] | None = None,
) -> SwapResult:
    """Swap the source face onto every face of `target` (or the one at `face_index`)."""
    faces = models.detect(target) if faces is None else faces
    chosen = choose_faces(faces, face_index, "target image")
    image = target
    alpha = np.zeros(target.shape[:2], np.float32)
    kept = []
    for i in chosen:
        image, face_alpha_i, keep = swap_one(image, source, faces[i].landmarks, config)
        alpha = np.maximum(alpha, face_alpha_i)
        kept.append(keep)
    return SwapResult(image=image, alpha=alpha, faces_found=len(faces), swapped=chosen, kept=kept)
