"""The studio's Ed25519 signing key: created once per data directory, never shared.

Location: ``DATA_DIR/keys/provenance_ed25519.pem`` (PKCS#8 PEM, unencrypted, mode 0600, in a
0700 directory). Unencrypted because the studio signs unattended (CLI, server, workers); the file
permissions are what protect it, as with an SSH host key.

Creation is atomic and race-free: the key is written and fsynced under a unique temporary name,
then *hard-linked* to the final name. ``link`` fails if the name exists, so when two processes
create the key at once exactly one wins and the other discards its own key and loads the
winner's; nobody ever reads a half-written file or signs with a key that is then overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from deepfake_studio.paths import default_data_dir
from deepfake_studio.provenance.errors import ProvenanceError

log = logging.getLogger(__name__)

KEY_FILE = Path("keys") / "provenance_ed25519.pem"
_MAX_KEY_BYTES = 16 * 1024  # a PEM Ed25519 key is 119 bytes; anything huge is not ours


@dataclass(frozen=True, eq=False)
class SigningKey:
    """A loaded private key and where it lives."""

    private_key: Ed25519PrivateKey
    path: Path

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte public key (what records carry, base64-encoded)."""
        return public_key_bytes(self.public_key)

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


def public_key_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    """SHA-256 (hex) of the raw 32-byte public key."""
    raw = public_key if isinstance(public_key, bytes) else public_key_bytes(public_key)
    return hashlib.sha256(raw).hexdigest()


def key_path(data_dir: Path | None = None) -> Path:
    """Where the signing key of ``data_dir`` (default: the studio's data directory) lives."""
    if data_dir is None:
        data_dir = default_data_dir()
    return Path(data_dir) / KEY_FILE


def load_public_key(data_dir: Path | None = None) -> Ed25519PublicKey | None:
    """The local studio's public key, or None if no key was created yet (never creates one)."""
    path = key_path(data_dir)
    try:
        return _read_key(path).public_key()
    except FileNotFoundError:
        return None


def load_or_create_key(data_dir: Path | None = None) -> SigningKey:
    """The signing key of ``data_dir``, created on first use (safe across processes)."""
    path = key_path(data_dir)
    try:
        return SigningKey(_read_key(path), path)
    except FileNotFoundError:
        pass
    try:
        _make_private_dir(path.parent)
        _create_key_file(path)
        return SigningKey(_read_key(path), path)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ProvenanceError(f"cannot create the signing key {str(path)!r}: {reason}") from exc


def _make_private_dir(folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    # mkdir's mode is filtered by the umask, and an older folder may be looser: set it exactly.
    # Best effort: a folder owned by someone else (or Windows) keeps its mode.
    with contextlib.suppress(OSError):
        os.chmod(folder, 0o700)


def _create_key_file(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    # 0600 from the first byte: the key is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # exactly 0600 whatever the umask
        try:
            os.link(tmp, path)  # atomic and never overwrites: the first creator wins
        except FileExistsError:
            log.debug("another process created %s first; using its key", path)
        except OSError:
            # A file system without hard links: rename if still absent. Two processes racing
            # here could both rename (the later key wins); both then reload the file below.
            if not path.exists():
                os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """Make the new directory entry durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _read_key(path: Path) -> Ed25519PrivateKey:
    """Load the PEM key; FileNotFoundError if absent, ProvenanceError if unusable."""

    def unusable(reason: str) -> ProvenanceError:
        return ProvenanceError(
            f"the signing key {str(path)!r} {reason}; move it away to create a new one "
            "(files signed with it will then no longer verify as this studio's)"
        )

    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = f.read(_MAX_KEY_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ProvenanceError(
            f"cannot read the signing key {str(path)!r}: {exc.strerror or type(exc).__name__}"
        ) from exc
    if os.name == "posix" and mode & 0o077:
        log.warning("signing key %s is readable by other users (mode %o)", path, mode & 0o777)
    if len(data) > _MAX_KEY_BYTES:
        raise unusable("is not a key file (too large)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise unusable("is corrupt or password-protected") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise unusable("is not an Ed25519 key")
    return key
