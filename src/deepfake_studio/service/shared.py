"""What the REST API (`api.py`) and the web studio (`web.py`) both use.

Kept apart so the two import this module rather than each other (the API mounts the web
studio; the web studio checks face-swap uploads the way the API does and routes around the
API's prefix)."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepfake_studio.errors import StudioError
from deepfake_studio.faceswap.config import VIDEO_SUFFIXES

if TYPE_CHECKING:
    from deepfake_studio.studio import Studio

API_PREFIX = "/api/v1"


class StreamKeys:
    """Keys the web studio gives its page (which is behind the login) so the page's own
    player can call POST /api/v1/synthesize/stream without holding the server's token. A key
    opens that route only, for `lifetime_s`; the newest `kept` keys stay valid. They live in
    memory: after a restart the page must be reloaded for a new one."""

    def __init__(self, lifetime_s: float = 12 * 3600, kept: int = 1000) -> None:
        self.lifetime_s, self.kept = lifetime_s, kept
        # sha256 of each key -> expiry (monotonic s): a lookup's timing tells nothing of a key
        self._expiry: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        key = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._expiry = {k: t for k, t in self._expiry.items() if t > now}
            while len(self._expiry) >= self.kept:  # dicts keep insertion order: oldest first
                del self._expiry[next(iter(self._expiry))]
            self._expiry[hashlib.sha256(key.encode()).digest()] = now + self.lifetime_s
        return key

    def valid(self, key: str) -> bool:
        digest = hashlib.sha256(key.encode()).digest()
        with self._lock:
            return self._expiry.get(digest, 0.0) > time.monotonic()


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
