"""Reading a folder made by `deepfake-studio prepare` (the layout is in `training/__init__.py`)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from deepfake_studio.synthesizer.tacotron import AudioConfig
from deepfake_studio.synthesizer.transformer import EMOTIONS
from deepfake_studio.training.common import TrainingError, config_from_dict

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")
__all__ = ["EMOTIONS", "METADATA_COLUMNS", "SPLITS", "PreparedData", "Utterance"]
METADATA_COLUMNS = ("id", "speaker", "text", "emotion", "n_samples", "n_frames")


@dataclass(frozen=True)
class Utterance:
    id: str
    speaker: str
    text: str
    emotion: str  # one of EMOTIONS; "neutral" when the corpus has none
    n_samples: int
    n_frames: int


class PreparedData:
    """One prepared folder: its mel format, its splits, and the arrays of each utterance."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        info_path = self.root / "prepare.json"
        if not info_path.is_file():
            raise TrainingError(
                f"{self.root} is not a prepared data folder (no prepare.json): "
                "run 'deepfake-studio prepare' first"
            )
        self.info: dict[str, object] = json.loads(info_path.read_text())
        self.audio = config_from_dict(AudioConfig, self.info["audio"])  # type: ignore[arg-type]

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    @cached_property
    def splits(self) -> dict[Split, list[Utterance]]:
        return {split: self._read(split) for split in SPLITS}

    def utterances(self, split: Split = "train") -> list[Utterance]:
        return self.splits[split]

    def speakers(self, split: Split = "train") -> dict[str, list[Utterance]]:
        """Speaker → their utterances in `split` (insertion-ordered, so deterministic)."""
        by_speaker: dict[str, list[Utterance]] = {}
        for utterance in self.splits[split]:
            by_speaker.setdefault(utterance.speaker, []).append(utterance)
        return by_speaker

    def wav(self, utterance: Utterance) -> np.ndarray:
        return np.load(self.root / "audio" / f"{utterance.id}.npy")

    def mel(self, utterance: Utterance) -> np.ndarray:
        return np.load(self.root / "mels" / f"{utterance.id}.npy")

    def embedding(self, utterance: Utterance) -> np.ndarray:
        return np.load(self.root / "embeds" / f"{utterance.id}.npy")

    def require_audio(self, expected: AudioConfig, model: str) -> None:
        """One-line error when the folder's mel format is not the one `model` is built for."""
        if self.audio != expected:
            hint = f"--sample-rate {expected.sample_rate}"
            raise TrainingError(
                f"{self.root} was prepared at {self.audio.sample_rate} Hz with hop "
                f"{self.audio.hop_length}; {model} needs {expected.sample_rate} Hz with hop "
                f"{expected.hop_length}: run prepare again with {hint}"
            )

    def _read(self, split: Split) -> list[Utterance]:
        path = self.root / f"{split}.csv"
        if not path.is_file():
            raise TrainingError(f"{self.root}: missing {path.name} (an interrupted prepare?)")
        with path.open(newline="") as handle:
            return [
                Utterance(
                    id=row["id"],
                    speaker=row["speaker"],
                    text=row["text"],
                    emotion=row["emotion"] or "neutral",
                    n_samples=int(row["n_samples"]),
                    n_frames=int(row["n_frames"]),
                )
                for row in csv.DictReader(handle)
            ]
