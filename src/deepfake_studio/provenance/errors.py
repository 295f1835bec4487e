"""The one error type of the provenance package (a StudioError: one line for the user)."""

from __future__ import annotations

from deepfake_studio.errors import StudioError


class ProvenanceError(StudioError):
    """The watermark model or the signing key cannot be loaded or created."""
