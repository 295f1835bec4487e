"""Finding, reading and checking GE2E encoder weights (resemblyzer's file or an RTVC encoder.pt)."""

from __future__ import annotations

import importlib.util
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import StudioError
from .model import EncoderConfig, expected_shapes

_LFS_MAGIC = b"version https://git-lfs"


class EncoderWeightsError(StudioError):
    """Encoder weights that are missing, unreadable, or do not fit the encoder network."""


def default_weights_path() -> Path:
    """Path of `resemblyzer/pretrained.pt`, found without importing resemblyzer.

    Importing resemblyzer pulls in librosa (several seconds); `find_spec` on a top-level
    package only locates it on disk.
    """
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderWeightsError(
            "default encoder weights need the 'resemblyzer' package (pip install resemblyzer)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


def load_encoder_weights(
    path: str | os.PathLike[str] | None = None, config: EncoderConfig | None = None
) -> dict[str, torch.Tensor]:
    """Read and validate a state dict for `SpeakerEncoderModel`.

    path: None for resemblyzer's shipped weights, else a `torch.save`d bare state dict or an
    RTVC checkpoint (`{"step", "model_state", "optimizer_state"}`).
    Raises EncoderWeightsError with a one-line reason if the file cannot be used.
    """
    file = default_weights_path() if path is None else Path(path)
    if not file.is_file():
        raise EncoderWeightsError(f"encoder weights not found: {file}")
    _reject_lfs_pointer(file)

    try:
        # weights_only: a checkpoint is data; never let it run code while unpickling.
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses pickled code/objects; its message is a long paragraph.
        raise EncoderWeightsError(
            f"encoder weights {file} hold Python objects other than tensors; refusing to load them"
        ) from exc
    except Exception as exc:  # torch.load raises many types (EOFError, KeyError, RuntimeError…)
        raise EncoderWeightsError(
            f"cannot read encoder weights {file} (truncated or not a torch checkpoint?): "
            f"{_first_line(exc)}"
        ) from exc

    state = _extract_state_dict(checkpoint, file)
    check_state_dict(state, config, source=str(file))
    return state


def check_state_dict(
    state: Mapping[str, object], config: EncoderConfig | None = None, source: str = "state dict"
) -> None:
    """Raise EncoderWeightsError naming the first key that is missing, extra or mis-shaped."""
    expected = expected_shapes(config)
    for key, shape in expected.items():
        if key not in state:
            raise EncoderWeightsError(f"encoder weights {source}: missing key '{key}'")
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise EncoderWeightsError(
                f"encoder weights {source}: '{key}' is a {type(value).__name__}, not a tensor"
            )
        if tuple(value.shape) != shape:
            raise EncoderWeightsError(
                f"encoder weights {source}: '{key}' has shape {tuple(value.shape)}, "
                f"expected {shape}"
            )
    extra = [key for key in state if key not in expected]
    if extra:
        raise EncoderWeightsError(f"encoder weights {source}: unexpected key '{extra[0]}'")


def _reject_lfs_pointer(file: Path) -> None:
    """A clone without `git lfs pull` leaves a ~130-byte text stub where the weights should be."""
    if file.stat().st_size < 1024:
        with file.open("rb") as handle:
            head = handle.read(len(_LFS_MAGIC))
        if head == _LFS_MAGIC:
            raise EncoderWeightsError(
                f"encoder weights {file} is a Git LFS pointer, not the weights; "
                "run 'git lfs pull' or download the real file"
            )


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception message, short enough for a one-line error."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _extract_state_dict(checkpoint: object, file: Path) -> dict[str, torch.Tensor]:
    """Accept both an RTVC/resemblyzer checkpoint and a bare state dict."""
    if isinstance(checkpoint, Mapping) and "model_state" in checkpoint:
        checkpoint = checkpoint["model_state"]
    if not isinstance(checkpoint, Mapping):
        raise EncoderWeightsError(
            f"encoder weights {file}: expected a state dict, got {type(checkpoint).__name__}"
        )
    return dict(checkpoint)
