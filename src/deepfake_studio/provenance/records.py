"""Signed provenance records: what made an output file, verifiable offline by anyone.

A record is a JSON object (see :func:`make_record` for the fields) signed with the studio's
Ed25519 key (:mod:`.keys`). The signature covers the canonical serialisation of the record
without its ``signature`` field: ``json.dumps(record, sort_keys=True, separators=(",", ":"),
ensure_ascii=True, allow_nan=False)`` encoded as ASCII. (Python's own float formatting is part
of that definition; it is not RFC 8785.) The ``signer`` field, which carries the raw public key
and its id, is itself signed, so a verifier needs nothing but the record: whether that key is
*this* studio's (or another trusted one) is reported separately.

The audio hash (``audio.sha256``, method ``sha256-pcm-s16le``) is SHA-256 over the samples as
decoded by libsndfile (soundfile) to 16-bit signed little-endian PCM, channels interleaved.
Why samples and not file bytes: tags can then be added (the record itself is stored in FLAC
Vorbis comments) and a lossless WAV <-> FLAC conversion keeps the hash, while changing any
sample, the length, gain, or sample rate breaks it. The studio writes 16-bit PCM, which
decodes bit-exactly; for MP3 the decoded samples depend on the decoder (libsndfile's mpg123),
so an MP3 may fail to verify on a machine with a different decoder build.

Images and videos (face swap) get the same kind of record with ``"media": "image"`` or
``"video"`` and an ``image``/``video`` field instead of ``audio``: SHA-256 of the file's bytes
(method ``sha256-file``) with its size, frames and frame rate. Audio records carry no
``media`` field, so records written before this extension verify unchanged.

Files: ``OUT.wav`` -> sidecar ``OUT.wav.provenance.json`` (:func:`write_sidecar`); for FLAC the
same record can also be stored in the file (:func:`embed_in_flac`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from deepfake_studio.paths import __version__
from deepfake_studio.provenance import keys
from deepfake_studio.provenance.errors import ProvenanceError
from deepfake_studio.provenance.keys import SigningKey

FORMAT = "deepfake-studio/provenance"
FORMAT_VERSION = 1
HASH_METHOD = "sha256-pcm-s16le"
MEDIA_HASH_METHOD = "sha256-file"  # image and video records: the file's bytes
MEDIA_TYPES = ("image", "video")
SIDECAR_SUFFIX = ".provenance.json"
FLAC_TAG = "DEEPFAKE_STUDIO_PROVENANCE"
SIGNATURE_ALGORITHM = "Ed25519"
_MAX_RECORD_BYTES = 1 << 20  # a record is ~1-2 KB; refuse to parse anything absurd
_BLOCK_FRAMES = 1 << 16


class VoiceLike(Protocol):
    """What a record needs from a voice (``deepfake_studio.voices.Voice`` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...

    consent: str
    source_sha256: str
    created: str


def consent_block(voice: VoiceLike | None) -> dict[str, Any] | None:
    """A record's ``consent``: {statement, time, reference_sha256}, plus ``evidence`` (what the
    voice check of consent.py saw) when consent was proven by the speaker's voice; None
    without a statement."""
    if voice is None or not voice.consent.strip():
        return None
    block: dict[str, Any] = {
        "statement": voice.consent,
        "time": voice.created,
        "reference_sha256": voice.source_sha256,
    }
    evidence = getattr(voice, "consent_evidence", None)  # voices before issue 22 have none
    if evidence is not None:
        block["evidence"] = evidence
    return block


class Failure(StrEnum):
    """What can fail in :func:`verify`; the value is the user-facing label."""

    MISSING_RECORD = "missing record"
    BAD_JSON = "bad JSON"
    MALFORMED_RECORD = "malformed record"
    SIGNATURE_INVALID = "signature invalid"
    AUDIO_UNREADABLE = "audio unreadable"
    AUDIO_MISMATCH = "audio hash mismatch"
    MEDIA_UNREADABLE = "file unreadable"  # image and video records
    MEDIA_MISMATCH = "file hash mismatch"
    UNKNOWN_KEY = "unknown signing key"


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify`. ``ok`` only when every check passed.

    ``intact``: the record is authentic as issued by its key and the audio is the one it
    describes, whoever the key belongs to. ``key_trusted``: the signer is the trusted key (the
    local studio's unless one was given); ``key_is_local``: the signer is this studio's key.
    ``failures`` lists what failed, in check order, with one explanatory line each in
    ``details``; :meth:`summary` is a one-line text for the CLI.
    """

    audio_path: Path
    record_path: Path | None = None
    record: dict[str, Any] | None = None
    failures: tuple[Failure, ...] = ()
    details: tuple[str, ...] = ()
    signature_valid: bool = False
    audio_matches: bool = False
    key_id: str | None = None
    key_trusted: bool = False
    key_is_local: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def intact(self) -> bool:
        return self.signature_valid and self.audio_matches

    def summary(self) -> str:
        if self.ok:
            whose = "this studio's key" if self.key_is_local else "a trusted key"
            media = (self.record or {}).get("media", "audio")
            return f"verified: signed by {whose} ({self.key_id}), {media} unchanged"
        return "; ".join(self.details)


# -- building and signing -------------------------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    """The exact bytes that are signed (see the module docstring)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def text_sha256(text: str) -> str:
    """SHA-256 of the UTF-8 text exactly as given (no normalisation); the text itself is not
    stored, so a record does not leak it but can confirm a claimed text."""
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def audio_fingerprint(path: str | Path) -> dict[str, Any]:
    """``{hash_method, sha256, sample_rate, channels, frames}`` of an audio file's samples.

    Raises soundfile's errors (``sf.LibsndfileError``, a RuntimeError) or OSError when the file
    cannot be decoded.
    """
    digest = hashlib.sha256()
    frames = 0
    with sf.SoundFile(str(path)) as f:
        rate, channels = int(f.samplerate), int(f.channels)
        # Frames are counted as decoded: the header count of some formats (MP3) is an estimate.
        for block in f.blocks(blocksize=_BLOCK_FRAMES, dtype="int16", always_2d=True):
            digest.update(np.ascontiguousarray(block, dtype="<i2").tobytes())
            frames += len(block)
    return {
        "hash_method": HASH_METHOD,
        "sha256": digest.hexdigest(),
        "sample_rate": rate,
        "channels": channels,
        "frames": frames,
    }


def make_record(
    audio_path: str | Path,
    *,
    key: SigningKey,
    text: str,
    engine: str,
    voice: VoiceLike | None = None,
    watermarked: bool,
    parameters: Mapping[str, Any] | None = None,
    created: datetime | None = None,
    watermark_layers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A signed record for the output file at ``audio_path`` (hash it after it is written).

    Fields: ``format``/``version``; ``tool`` {name, version}; ``created`` (UTC ISO 8601);
    ``engine``; ``voice`` {id, name, source_sha256} or null; ``consent`` {statement, time,
    reference_sha256[, evidence]} or null when the voice carries no consent statement (an
    ad-hoc reference; ``evidence``: consent proven by voice, see consent.py);
    ``text_sha256``; ``audio`` (:func:`audio_fingerprint`); ``watermark`` {applied, method,
    model, layers}: ``method`` is PerthNet's, ``layers`` every layer embedded
    (``watermark_layers``, default PerthNet alone; `AudioWatermarker.methods`);
    ``parameters`` (free-form JSON, e.g. speed and seed);
    ``signer`` {algorithm, public_key (base64 raw), key_id}; ``signature`` (base64).
    ``consent.time`` is the voice's creation time, i.e. when the consent was recorded.
    """
    from deepfake_studio.provenance.watermark import METHOD, layer_methods, model_version

    layers = list(layer_methods(keyed=False) if watermark_layers is None else watermark_layers)

    when = (created or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    consent = consent_block(voice)
    record: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "tool": {"name": "deepfake-studio", "version": __version__},
        "created": when,
        "engine": engine,
        "voice": None
        if voice is None
        else {"id": voice.id, "name": voice.name, "source_sha256": voice.source_sha256},
        "consent": consent,
        "text_sha256": text_sha256(text),
        "audio": audio_fingerprint(audio_path),
        "watermark": {
            "applied": bool(watermarked),
            "method": METHOD if watermarked else None,
            "model": model_version() if watermarked else None,
            "layers": layers if watermarked else [],
        },
        "parameters": dict(parameters or {}),
    }
    return sign_record(record, key)


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """``{hash_method, sha256, bytes}`` of a file's exact bytes (image and video records).

    Bytes rather than decoded pixels: video decoders differ between builds, and a re-encoded
    file is a different file. Raises OSError when the file cannot be read.
    """
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"hash_method": MEDIA_HASH_METHOD, "sha256": digest.hexdigest(), "bytes": size}


def make_media_record(
    path: str | Path,
    *,
    media: str,
    key: SigningKey,
    engine: str,
    details: Mapping[str, Any],
    watermark: Mapping[str, Any],
    inputs: Mapping[str, Any] | None = None,
    voice: VoiceLike | None = None,
    text: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    created: datetime | None = None,
) -> dict[str, Any]:
    """A signed record for an image or video output (``media`` is "image" or "video").

    Like :func:`make_record`, with ``media`` naming the kind and a ``<media>`` field holding
    :func:`file_fingerprint` plus ``details`` (size, frames, fps...); ``inputs`` hashes the
    source and target files; ``voice``/``consent``/``text_sha256`` describe a cloned
    soundtrack (null otherwise); ``watermark`` says what marks were applied, and how.
    """
    if media not in MEDIA_TYPES:
        raise ValueError(f"media must be one of {MEDIA_TYPES}, not {media!r}")
    when = (created or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    consent = consent_block(voice)
    record: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "media": media,
        "tool": {"name": "deepfake-studio", "version": __version__},
        "created": when,
        "engine": engine,
        "voice": None
        if voice is None
        else {"id": voice.id, "name": voice.name, "source_sha256": voice.source_sha256},
        "consent": consent,
        "text_sha256": None if text is None else text_sha256(text),
        media: {**file_fingerprint(path), **dict(details)},
        "inputs": dict(inputs or {}),
        "watermark": dict(watermark),
        "parameters": dict(parameters or {}),
    }
    return sign_record(record, key)


def sign_record(record: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    """A copy of ``record`` with ``signer`` set to ``key`` and a fresh ``signature``."""
    signed = {k: v for k, v in record.items() if k != "signature"}
    signed["signer"] = {
        "algorithm": SIGNATURE_ALGORITHM,
        "public_key": base64.b64encode(key.public_bytes).decode("ascii"),
        "key_id": key.key_id,
    }
    try:
        message = canonical_json(signed)
    except (TypeError, ValueError) as exc:  # e.g. a numpy value or NaN in `parameters`
        raise ValueError(f"the record is not plain JSON: {exc}") from exc
    signed["signature"] = base64.b64encode(key.sign(message)).decode("ascii")
    return signed


# -- storing --------------------------------------------------------------------------------


def sidecar_path(audio_path: str | Path) -> Path:
    """``OUT.wav`` -> ``OUT.wav.provenance.json`` (the full name is kept so that OUT.wav and
    OUT.flac never share a record)."""
    audio_path = Path(audio_path)
    return audio_path.with_name(audio_path.name + SIDECAR_SUFFIX)


def write_sidecar(out_path: str | Path, record: Mapping[str, Any]) -> Path:
    """Write the record next to ``out_path`` atomically (temp file, fsync, rename); returns
    the sidecar's path. ProvenanceError (one line) if it cannot be written."""
    target = sidecar_path(out_path)
    data = (json.dumps(record, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ProvenanceError(f"cannot write {str(target)!r}: {reason}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return target


def embed_in_flac(path: str | Path, record: Mapping[str, Any]) -> None:
    """Store the record in a FLAC file's Vorbis comment ``DEEPFAKE_STUDIO_PROVENANCE``.

    The samples (and so the audio hash) are unchanged. Atomic: a tagged copy replaces the file.
    ProvenanceError (one line) if the file is not a FLAC or cannot be rewritten.
    """
    from mutagen import MutagenError
    from mutagen.flac import FLAC, FLACNoHeaderError

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        shutil.copyfile(path, tmp)
        tagged = FLAC(tmp)
        if tagged.tags is None:
            tagged.add_tags()
        tagged[FLAC_TAG] = canonical_json(dict(record)).decode("ascii")
        tagged.save()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except FLACNoHeaderError as exc:
        raise ProvenanceError(f"cannot tag {str(path)!r}: it is not a FLAC file") from exc
    except (OSError, MutagenError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
        raise ProvenanceError(f"cannot tag {str(path)!r}: {reason.splitlines()[0]}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _flac_record_text(path: Path) -> str | None:
    """The embedded record of a FLAC file, or None (not FLAC, no tag, unreadable)."""
    if path.suffix.lower() != ".flac":
        return None
    try:
        from mutagen import MutagenError
        from mutagen.flac import FLAC

        values = (FLAC(path).tags or {}).get(FLAC_TAG)
    except (ImportError, MutagenError, OSError):
        return None
    return values[0] if values else None


# -- verifying ------------------------------------------------------------------------------


def verify(
    audio_path: str | Path,
    record_path: str | Path | None = None,
    trusted_key: Ed25519PublicKey | bytes | str | None = None,
    *,
    data_dir: Path | None = None,
) -> VerifyReport:
    """Check an output file against its provenance record and say exactly what fails.

    The record is ``record_path``, else the sidecar ``AUDIO.provenance.json``, else (FLAC) the
    record embedded in the file. ``trusted_key`` is a public key, its raw 32 bytes, its key id
    (hex) or its base64 form (ValueError if it is none of these); by default the local studio's
    key in ``data_dir`` is trusted (it is only read, never created here).

    Checks, in order: record present; valid JSON; well-formed; signature; audio hash (and rate,
    channels, length); signer trusted. An unknown key is only reported when the signature
    itself is valid: for a tampered record the claimed signer means nothing.
    """
    audio_path = Path(audio_path)
    # Parsed first: a malformed trusted_key is the caller's error (ValueError), not a finding.
    given_trusted_id = None if trusted_key is None else _trusted_key_id(trusted_key)
    failures: list[Failure] = []
    details: list[str] = []

    def fail(what: Failure, detail: str) -> None:
        failures.append(what)
        details.append(f"{what.value}: {detail}")

    def report(**fields: Any) -> VerifyReport:
        return VerifyReport(audio_path, failures=tuple(failures), details=tuple(details), **fields)

    # 1. find and parse the record
    data, source = _find_record(audio_path, None if record_path is None else Path(record_path))
    if data is None:
        where = source if source is not None else sidecar_path(audio_path)
        fail(Failure.MISSING_RECORD, f"no provenance record at {str(where)!r}")
        return report(record_path=source)
    try:
        if len(data) > _MAX_RECORD_BYTES:
            raise ValueError(f"over {_MAX_RECORD_BYTES // 1024} KB")
        record = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        fail(Failure.BAD_JSON, f"{str(source)!r} is not valid JSON ({_first_line(exc)})")
        return report(record_path=source)
    problem = _malformed(record)
    if problem:
        fail(Failure.MALFORMED_RECORD, problem)
        return report(record_path=source, record=record if isinstance(record, dict) else None)

    # 2. signature (over everything but the signature, including the signer block)
    signer = record["signer"]
    public_raw = base64.b64decode(signer["public_key"], validate=True)
    signer_id = keys.key_id(public_raw)
    unsigned = {k: v for k, v in record.items() if k != "signature"}
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(
            base64.b64decode(record["signature"], validate=True), canonical_json(unsigned)
        )
        signature_valid = True
    except (InvalidSignature, ValueError):  # ValueError: bytes that are not a curve point
        signature_valid = False
        fail(Failure.SIGNATURE_INVALID, "the record was altered after it was signed")

    # 3. the file's content (audio samples; image and video bytes)
    audio_matches = False
    media = record.get("media", "audio")
    if media in MEDIA_TYPES:
        expected, fields = record[media], ("bytes", "sha256")
        unreadable, mismatch = Failure.MEDIA_UNREADABLE, Failure.MEDIA_MISMATCH
        fingerprint: Any = file_fingerprint
    else:
        expected, fields = record["audio"], ("sample_rate", "channels", "frames", "sha256")
        unreadable, mismatch = Failure.AUDIO_UNREADABLE, Failure.AUDIO_MISMATCH
        fingerprint = audio_fingerprint
    try:
        actual = fingerprint(audio_path)
    except (OSError, RuntimeError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        fail(unreadable, f"cannot read {str(audio_path)!r} ({_first_line(exc)})")
    else:
        changed = [name for name in fields if actual[name] != expected.get(name)]
        if changed:
            what = ", ".join(changed)
            fail(mismatch, f"the {media} differs from the recorded one ({what})")
        else:
            audio_matches = True

    # 4. whose key
    local = keys.load_public_key(data_dir)
    local_id = keys.key_id(local) if local is not None else None
    trusted_id = local_id if given_trusted_id is None else given_trusted_id
    key_is_local = signer_id == local_id
    key_trusted = trusted_id is not None and signer_id == trusted_id
    if signature_valid and not key_trusted:
        whose = "the local studio's key" if trusted_key is None else "the trusted key"
        if trusted_key is None and local_id is None:
            whose += " (none exists yet)"
        fail(Failure.UNKNOWN_KEY, f"signed by key {signer_id}, which is not {whose}")

    return report(
        record_path=source,
        record=record,
        signature_valid=signature_valid,
        audio_matches=audio_matches,
        key_id=signer_id,
        key_trusted=key_trusted,
        key_is_local=key_is_local,
    )


def _find_record(audio_path: Path, record_path: Path | None) -> tuple[bytes | None, Path | None]:
    """(raw record or None, where it was found or looked for). Reads at most one byte more
    than the size limit, so a huge file is rejected without loading it."""
    path = record_path if record_path is not None else sidecar_path(audio_path)
    try:
        with open(path, "rb") as f:
            return f.read(_MAX_RECORD_BYTES + 1), path
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass
    if record_path is not None:
        return None, record_path
    embedded = _flac_record_text(audio_path)
    return (embedded.encode("utf-8"), audio_path) if embedded is not None else (None, None)


def _malformed(record: Any) -> str | None:
    """Why the record cannot be checked at all, or None."""
    if not isinstance(record, dict):
        return "the record is not a JSON object"
    if record.get("format") != FORMAT:
        return f"not a {FORMAT} record"
    if record.get("version") != FORMAT_VERSION:
        return f"record version {record.get('version')!r} is not supported"
    signer = record.get("signer")
    if not isinstance(signer, dict) or signer.get("algorithm") != SIGNATURE_ALGORITHM:
        return f"the record has no {SIGNATURE_ALGORITHM} signer"
    raw = _b64(signer.get("public_key"))
    if raw is None or len(raw) != 32:
        return "the signer's public key is not 32 bytes of base64"
    if signer.get("key_id") != keys.key_id(raw):
        # Covered by the signature anyway, but a wrong id must never be displayed as the signer.
        return "the signer's key_id is not the SHA-256 of its public key"
    signature = _b64(record.get("signature"))
    if signature is None or len(signature) != 64:
        return "the signature is not 64 bytes of base64"
    media = record.get("media", "audio")
    if media in MEDIA_TYPES:
        content = record.get(media)
        if not isinstance(content, dict) or content.get("hash_method") != MEDIA_HASH_METHOD:
            return f"the record has no {MEDIA_HASH_METHOD} {media} hash"
    elif media != "audio":
        return f"unknown media type {media!r}"
    else:
        audio = record.get("audio")
        if not isinstance(audio, dict) or audio.get("hash_method") != HASH_METHOD:
            return f"the record has no {HASH_METHOD} audio hash"
    try:
        canonical_json({k: v for k, v in record.items() if k != "signature"})
    except ValueError:  # NaN/Infinity: json.loads accepts them, canonical JSON does not
        return "the record contains NaN or infinite numbers"
    return None


def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _trusted_key_id(trusted: Ed25519PublicKey | bytes | str) -> str:
    if isinstance(trusted, str):
        text = trusted.strip()
        if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
            return text.lower()  # a key id, as printed by the studio
        raw = _b64(text)  # the public key as a record carries it
        if raw is None or len(raw) != 32:
            raise ValueError("trusted_key must be a key id (64 hex digits) or a base64 public key")
        return keys.key_id(raw)
    return keys.key_id(trusted)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
