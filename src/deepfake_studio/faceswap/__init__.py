"""Face swap for images and video: a stage of its own beside the voice pipeline.

Modules, one job each: `config` (`FaceSwapConfig`, limits), `landmarks` (dlib detector and
68-point predictor, loaded once), `align` (Delaunay triangulation + piecewise affine warp),
`blend` (mask, colour transfer, seamless cloning, kept expression regions), `image` (one image,
file reading/writing) and `video` (ffmpeg pipes, tracking, temporal smoothing).
`Studio.faceswap` adds the watermark and the signed provenance record.

Importing this package is light: OpenCV and dlib load with the modules that need them.
"""

from deepfake_studio.faceswap.config import (
    IMAGE_OUTPUT_SUFFIXES,
    IMAGE_SUFFIXES,
    VIDEO_OUTPUT_SUFFIXES,
    VIDEO_SUFFIXES,
    FaceSwapConfig,
)

__all__ = [
    "IMAGE_OUTPUT_SUFFIXES",
    "IMAGE_SUFFIXES",
    "VIDEO_OUTPUT_SUFFIXES",
    "VIDEO_SUFFIXES",
    "FaceSwapConfig",
]
