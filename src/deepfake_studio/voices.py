"""The voice library on disk: one folder per enrolled voice, written atomically.

Layout under the data directory::

    voices/<id>/voice.json     name, engine, consent, source hash, speed, info, arrays' hash
    voices/<id>/arrays.npz     d-vector (256) and the engine's conditioning arrays

A voice folder is first written under a temporary name and renamed into place, so a crash
never leaves a half-enrolled voice that looks complete. On load, a missing file, bad JSON,
missing field or hash mismatch is reported as a corrupt voice, never silently used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_studio.errors import VoiceError
from deepfake_studio.synthesizer.base import Conditioning

FORMAT_VERSION = 1
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$")
_REQUIRED = (
    "format",
    "id",
    "name",
    "engine",
    "created",
    "consent",
    "source_sha256",
    "arrays_sha256",
)


@dataclass
class Voice:
    """A speaker the studio can speak as: the reference's d-vector plus engine conditioning."""

    name: str
    embedding: np.ndarray
    conditioning: Conditioning
    consent: str
    source_sha256: str
    source_name: str = ""
    reference_seconds: float = 0.0
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    # Consent proven by voice (consent.ConsentEvidence.as_dict()); None for a typed statement.
    consent_evidence: dict[str, Any] | None = None

    @property
    def engine(self) -> str:
        return self.conditioning.engine

    @property
    def id(self) -> str:
        return voice_id(self.name)


def voice_id(name: str) -> str:
    """Folder-safe id of a voice name (case-insensitive)."""
    return re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")


def check_name(name: str) -> str:
    name = name.strip()
    if not _NAME_PATTERN.match(name) or not voice_id(name):
        raise VoiceError(
            f"invalid voice name {name!r}: use 1-64 letters, digits, spaces, '.', '_' or '-'"
        )
    return name


class VoiceLibrary:
    """Enrolled voices stored under `root/voices`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "voices"

    def save(self, voice: Voice, overwrite: bool = False) -> Path:
        """Store a voice; refuses to replace an existing one unless `overwrite`."""
        check_name(voice.name)
        if not voice.consent.strip():
            raise VoiceError("a consent statement is required to enroll a voice")
        final = self.root / voice.id
        if final.exists() and not overwrite:
            raise VoiceError(f"a voice named {voice.name!r} already exists (use --overwrite)")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".tmp-{voice.id}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            meta, blob = _encode(voice)
            _write_synced(staging / "arrays.npz", blob)
            _write_synced(staging / "voice.json", json.dumps(meta, indent=2).encode())
            if final.exists():
                trash = self.root / f".old-{voice.id}-{uuid.uuid4().hex[:8]}"
                final.rename(trash)
                staging.rename(final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                staging.rename(final)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return final

    def load(self, name: str) -> Voice:
        """Load a voice by name or id; VoiceError if unknown or corrupt."""
        folder = self.root / voice_id(name)
        if not voice_id(name) or not folder.is_dir():
            known = ", ".join(self.names()) or "none enrolled yet"
            raise VoiceError(f"unknown voice {name!r} (known: {known})")
        return _read_voice(folder)

    def delete(self, name: str) -> None:
        folder = self.root / voice_id(name)
        if not voice_id(name) or not folder.is_dir():
            raise VoiceError(f"unknown voice {name!r}")
        shutil.rmtree(folder)

    def names(self) -> list[str]:
        """Ids of the voice folders (complete or not)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def scan(self) -> list[Voice | VoiceError]:
        """Every voice folder: a Voice, or the error that makes it unusable."""
        results: list[Voice | VoiceError] = []
        for name in self.names():
            try:
                results.append(_read_voice(self.root / name))
            except VoiceError as e:
                results.append(e)
        return results


def _encode(voice: Voice) -> tuple[dict[str, Any], bytes]:
    """A voice as its two stored parts: the voice.json fields and the arrays.npz bytes."""
    arrays = {"embedding": np.asarray(voice.embedding, np.float32)}
    arrays.update({f"cond_{k}": np.asarray(v) for k, v in voice.conditioning.arrays.items()})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    blob = buffer.getvalue()
    meta = {
        "format": FORMAT_VERSION,
        "id": voice.id,
        "name": voice.name,
        "engine": voice.engine,
        "speed": voice.conditioning.speed,
        "info": voice.conditioning.info,
        "created": voice.created,
        "consent": voice.consent,
        "source_sha256": voice.source_sha256,
        "source_name": voice.source_name,
        "reference_seconds": voice.reference_seconds,
        "arrays_sha256": hashlib.sha256(blob).hexdigest(),
    }
    if voice.consent_evidence is not None:
        meta["consent_evidence"] = voice.consent_evidence
    return meta, blob


def pack_voice(voice: Voice) -> dict[str, Any]:
    """A voice as plain JSON (its stored form, arrays base64): to send it to another machine."""
    meta, blob = _encode(voice)
    return {"meta": meta, "arrays": base64.b64encode(blob).decode("ascii")}


def unpack_voice(packed: Any) -> Voice:
    """The inverse of `pack_voice`, with the same checks as loading from disk."""
    if not isinstance(packed, dict) or not isinstance(packed.get("meta"), dict):
        raise VoiceError("a packed voice must be an object with 'meta' and 'arrays'")
    try:
        blob = base64.b64decode(str(packed.get("arrays", "")), validate=True)
    except binascii.Error:
        raise VoiceError("a packed voice's arrays are not valid base64") from None
    label = str(packed["meta"].get("id", "?"))
    return _decode(packed["meta"], blob, label)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _corrupt(label: str, reason: str) -> VoiceError:
    return VoiceError(f"voice {label!r} is corrupt ({reason}); delete it and enroll again")


def _read_voice(folder: Path) -> Voice:
    label = folder.name
    try:
        meta = json.loads((folder / "voice.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _corrupt(label, "voice.json is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _corrupt(label, "voice.json is not valid JSON") from None
    _check_meta(meta, label)
    try:
        blob = (folder / "arrays.npz").read_bytes()
    except FileNotFoundError:
        raise _corrupt(label, "arrays.npz is missing") from None
    return _decode(meta, blob, label)


def _check_meta(meta: Any, label: str) -> None:
    if not isinstance(meta, dict):
        raise _corrupt(label, "voice.json is not an object")
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise _corrupt(label, f"voice.json lacks {', '.join(missing)}")
    if meta["format"] != FORMAT_VERSION:
        raise _corrupt(
            label, f"format {meta['format']} is not supported (expected {FORMAT_VERSION})"
        )


def _decode(meta: Any, blob: bytes, label: str) -> Voice:
    """A Voice from its voice.json fields and arrays.npz bytes; VoiceError if corrupt."""

    def corrupt(reason: str) -> VoiceError:
        return _corrupt(label, reason)

    _check_meta(meta, label)
    if hashlib.sha256(blob).hexdigest() != meta["arrays_sha256"]:
        raise corrupt("arrays.npz does not match its recorded hash")
    try:
        with np.load(io.BytesIO(blob)) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as e:  # a hash-valid but unreadable archive: still corruption
        raise corrupt(f"arrays.npz cannot be read: {type(e).__name__}") from None
    embedding = arrays.pop("embedding", None)
    if embedding is None or embedding.shape != (256,) or not np.all(np.isfinite(embedding)):
        raise corrupt("the speaker embedding is missing or invalid")
    conditioning = Conditioning(
        engine=str(meta["engine"]),
        speed=float(meta.get("speed", 1.0)),
        arrays={k.removeprefix("cond_"): v for k, v in arrays.items()},
        info=dict(meta.get("info", {})),
    )
    return Voice(
        name=str(meta["name"]),
        embedding=embedding.astype(np.float32),
        conditioning=conditioning,
        consent=str(meta["consent"]),
        source_sha256=str(meta["source_sha256"]),
        source_name=str(meta.get("source_name", "")),
        reference_seconds=float(meta.get("reference_seconds", 0.0)),
        created=str(meta["created"]),
        consent_evidence=_evidence(meta.get("consent_evidence"), label),
    )


def _evidence(value: Any, label: str) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise _corrupt(label, "consent_evidence is not an object")
    return value
