"""What the REST API (`api.py`) and the web studio (`web.py`) both use.

Kept apart so the two import this module rather than each other (the API mounts the web
studio; the web studio checks face-swap uploads the way the API does and routes around the
API's prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepfake_studio.errors import StudioError
from deepfake_studio.faceswap.config import VIDEO_SUFFIXES

if TYPE_CHECKING:
    from deepfake_studio.studio import Studio

API_PREFIX = "/api/v1"


def check_faceswap(
    studio: Studio, source: Path, target: Path, face: int | None, names: dict[Path, str]
) -> dict[str, Any]:
    """Decode both uploads and find their faces now, so a bad request fails with a 4xx instead
    of a failed job. Errors name the client's files, never server paths."""
    from deepfake_studio.faceswap import image as fs_image
    from deepfake_studio.faceswap import video as fs_video

    cfg = studio.config.faceswap
    try:
        src = fs_image.prepare_source(
            fs_image.read_image(source, cfg, "source"), studio.face_models, "source"
        )
        if target.suffix.lower() in VIDEO_SUFFIXES:
            info = fs_video.probe(target, cfg)
            return {"source_faces": src.faces_found, "frames": info.expected_frames}
        faces = studio.face_models.detect(fs_image.read_image(target, cfg, "target"))
        fs_image.choose_faces(faces, face, "target image")
        return {"source_faces": src.faces_found, "target_faces": len(faces)}
    except StudioError as e:
        message = str(e)
        for path, display in names.items():
            message = message.replace(str(path), display).replace(path.name, display)
        raise type(e)(message) from None
