"""Face detection and 68-point landmarks with dlib, from weights shipped in registry packages.

`dlib-bin` supplies dlib (prebuilt) with its HOG frontal-face detector built in;
`face_recognition_models` supplies the 68-point shape predictor and the 128-d ResNet face
descriptor. `FaceModels` loads them once; one instance serves a whole process.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_studio.errors import StudioError
from deepfake_studio.faceswap.config import FaceSwapConfig

# 68-point layout (iBUG 300-W): index ranges of the regions used for masks.
JAW = slice(0, 17)
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
INNER_MOUTH = slice(60, 68)
BROWS = slice(17, 27)
NOSE_TOP, CHIN = 27, 8


def with_forehead(points: np.ndarray, height: float) -> np.ndarray:
    """The 68 landmarks plus the 10 brow points raised by `height` x the nose-top-to-chin
    distance, along the face's own vertical axis: the 68 points stop at the brows, and the
    forehead carries much of a face's identity."""
    up = points[NOSE_TOP] - points[CHIN]
    raised = points[BROWS] + height * up
    return np.concatenate([points, raised.astype(points.dtype)])


@dataclass(frozen=True)
class Face:
    """One detected face: its box (x0, y0, x1, y1) and 68 landmarks (x, y) in image pixels."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray  # (68, 2) float32

    @property
    def center(self) -> np.ndarray:
        return self.landmarks.mean(axis=0)

    @property
    def size(self) -> float:
        """Geometric mean of the landmark extent: a scale for masks and tracking."""
        extent = self.landmarks.max(axis=0) - self.landmarks.min(axis=0)
        return float(np.sqrt(max(extent[0], 1.0) * max(extent[1], 1.0)))


def models_dir() -> Path:
    """The `face_recognition_models` data folder, found without importing the package (its
    `__init__` imports the deprecated `pkg_resources` just to build these paths)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise StudioError(
            "face swap needs the face_recognition_models package (pip install "
            "face_recognition_models==0.3.0)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class FaceModels:
    """dlib's detector, 68-point predictor and (on first use) face descriptor.

    Thread-safe loading; dlib's calls themselves may run from several threads.
    """

    def __init__(self, config: FaceSwapConfig | None = None) -> None:
        self.config = config or FaceSwapConfig()
        try:
            import dlib
        except ImportError as e:
            raise StudioError("face swap needs dlib (pip install dlib-bin==20.0.1.post1)") from e
        self._dlib = dlib
        folder = models_dir()
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(folder / "shape_predictor_68_face_landmarks.dat"))
        self._descriptor: Any = None
        self._folder = folder
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Every frontal face in an RGB uint8 image, sorted left to right (stable indices)."""
        boxes = self.detect_boxes(rgb)
        faces = [self.landmarks(rgb, box) for box in boxes]
        return sorted(faces, key=lambda f: (f.box[0], f.box[1]))

    def detect_boxes(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes in full-resolution pixels; detection runs on a reduced copy."""
        import cv2

        h, w = rgb.shape[:2]
        scale = min(1.0, self.config.detect_max_side / max(h, w))
        small = rgb
        if scale < 1.0:
            small = cv2.resize(rgb, (round(w * scale), round(h * scale)), cv2.INTER_AREA)
        found, _, _ = self.detector.run(
            np.ascontiguousarray(small), self.config.detect_upsample, self.config.detect_threshold
        )
        return [
            (
                round(r.left() / scale),
                round(r.top() / scale),
                round(r.right() / scale),
                round(r.bottom() / scale),
            )
            for r in found
        ]

    def landmarks(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Face:
        """The 68 landmarks inside `box` (which may come from detection or from tracking)."""
        rect = self._dlib.rectangle(*(int(v) for v in box))
        shape = self.predictor(np.ascontiguousarray(rgb), rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
        return Face(box=tuple(int(v) for v in box), landmarks=points)  # type: ignore[arg-type]

    def descriptor(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """dlib's 128-d ResNet face descriptor (distance < 0.6: probably the same person)."""
        if self._descriptor is None:
            with self._lock:
                if self._descriptor is None:
                    path = self._folder / "dlib_face_recognition_resnet_model_v1.dat"
                    self._descriptor = self._dlib.face_recognition_model_v1(str(path))
        shape = self.predictor(np.ascontiguousarray(rgb), self._dlib.rectangle(*face.box))
        return np.array(self._descriptor.compute_face_descriptor(rgb, shape), np.float32)
