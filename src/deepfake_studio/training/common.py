"""What every trainer shares: options, seeding, checkpoints, logging, config files.

A trainer is a plain function `train(options, config) -> Path`. It builds its model and
optimizer, calls `resume_or_start`, then loops `for step in steps(options, start)`, logs with
`TrainLog` and saves with `save_checkpoint`. Batches are drawn with `batch_rng(seed, step)`, so
a resumed run sees exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "TrainDefaults",
    "TrainLog",
    "TrainOptions",
    "TrainingError",
    "batch_rng",
    "config_dict",
    "config_from_dict",
    "load_checkpoint",
    "load_config",
    "read_history",
    "resume_or_start",
    "run_state",
    "save_checkpoint",
    "save_run",
    "seed_everything",
    "set_threads",
    "start_run",
    "steps",
]

import numpy as np
import torch

from deepfake_studio import configs
from deepfake_studio.configs import config_dict
from deepfake_studio.errors import StudioError

T = TypeVar("T")


class TrainingError(StudioError):
    """A training or preparation run cannot start or continue (one line for the user)."""


@dataclass(frozen=True)
class TrainDefaults:
    """A trainer's own defaults for the options the CLI leaves open (`DEFAULT_OPTIONS`)."""

    batch_size: int
    learning_rate: float


@dataclass(frozen=True)
class TrainOptions:
    """How long and where to train; the same for every stage. Model sizes live in its config."""

    data_dir: Path
    run_dir: Path
    steps: int = 1000  # total optimizer steps (a resumed run continues up to this)
    batch_size: int = 16
    learning_rate: float = 1e-3
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0
    resume: bool = False
    threads: int = 0  # torch threads; 0: every available core
    progress: bool = True  # a tqdm bar on stderr (off in tests)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def batch_rng(seed: int, step: int) -> np.random.Generator:
    """The random source for one step's batch: a function of (seed, step) only."""
    return np.random.default_rng([seed, step])


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads or len(os.sched_getaffinity(0)))


def steps(options: TrainOptions, start: int) -> Iterator[int]:
    """Steps start+1 .. options.steps, with a progress bar when asked for."""
    if start >= options.steps:
        return iter(())
    if not options.progress:
        return iter(range(start + 1, options.steps + 1))
    from tqdm import tqdm

    return iter(
        tqdm(
            range(start + 1, options.steps + 1),
            initial=start,
            total=options.steps,
            file=sys.stderr,
            dynamic_ncols=True,
            desc=options.run_dir.name,
        )
    )


# --- checkpoints ---------------------------------------------------------------------------------


def save_checkpoint(path: Path, state: Mapping[str, object]) -> Path:
    """Write a checkpoint atomically: a crash mid-write never leaves a half file behind.

    `state` is RTVC's layout: at least `model_state`, `optimizer_state`, `step`; trainers add
    `config` (a plain dict) and, for GANs, the second model and optimizer.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(dict(state), tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by `save_checkpoint` (tensors and plain data only)."""
    if not path.is_file():
        raise TrainingError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for damaged files
        raise TrainingError(f"cannot read checkpoint {path}: {type(exc).__name__}") from exc
    if not isinstance(checkpoint, dict) or "model_state" not in checkpoint:
        raise TrainingError(f"{path} is not a training checkpoint (no model_state)")
    return checkpoint


def save_run(options: TrainOptions, name: str, state: Mapping[str, object], step: int) -> Path:
    """The stage's file in the run folder (RUN/NAME.pt) plus a numbered copy in checkpoints/."""
    stem = Path(name).stem
    save_checkpoint(options.run_dir / "checkpoints" / f"{stem}-step{step:07d}.pt", state)
    return save_checkpoint(options.run_dir / name, state)


def resume_or_start(options: TrainOptions, name: str) -> dict[str, Any] | None:
    """The checkpoint to continue from (`--resume`), or None for a fresh start.

    A fresh start refuses to overwrite an existing RUN/NAME.pt: losing a long run to a
    forgotten `--resume` is worse than one extra flag.
    """
    path = options.run_dir / name
    if options.resume:
        if not path.exists():
            raise TrainingError(f"--resume: no {name} in {options.run_dir} to continue from")
        return load_checkpoint(path)
    if path.exists():
        raise TrainingError(f"{path} exists: pass --resume to continue it, or choose another --out")
    return None


def start_run(
    options: TrainOptions, name: str, config_class: type[T], config_path: Path | None
) -> tuple[dict[str, Any] | None, T]:
    """Set the threads and find (checkpoint to resume or None, the run's training config).

    A resumed run keeps the config it was started with (its `train_config`); a new one reads
    the defaults of `config_class` overridden by the JSON file at `config_path`.
    """
    set_threads(options.threads)
    checkpoint = resume_or_start(options, name)
    if checkpoint is not None:
        return checkpoint, config_from_dict(config_class, checkpoint["train_config"])
    return None, load_config(config_class, config_path)


def run_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    config: object,
    **extra: object,
) -> dict[str, object]:
    """A checkpoint in RTVC's layout plus the configs: `config` is the network's (`config.model`,
    what the engines' loaders read), `train_config` the whole training config (for --resume)."""
    return {
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "step": step,
        "config": config_dict(config.model),  # type: ignore[attr-defined]
        "train_config": config_dict(config),
        **extra,
    }


# --- logs ----------------------------------------------------------------------------------------


class TrainLog:
    """Losses to TensorBoard (RUN/logs/STAGE) and to history.csv (for plots without TensorBoard)."""

    def __init__(self, options: TrainOptions, stage: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.directory = options.run_dir / "logs" / stage
        self.directory.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(self.directory))
        self.every = options.log_every
        self.history = self.directory / "history.csv"
        self.started = time.perf_counter()
        self._sums: dict[str, float] = {}
        self._count = 0

    def add(self, step: int, values: Mapping[str, float]) -> None:
        """Record one step's losses; every `log_every` steps write their means."""
        for key, value in values.items():
            if not math.isfinite(value):
                raise TrainingError(f"step {step}: {key} is {value} (diverged; lower the rate?)")
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1
        if step % self.every == 0:
            self.flush(step)

    def flush(self, step: int) -> None:
        if not self._count:
            return
        means = {key: total / self._count for key, total in self._sums.items()}
        for key, value in means.items():
            self.writer.add_scalar(key, value, step)
        new = not self.history.exists()
        with self.history.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["step", "seconds", *means])
            writer.writerow([step, f"{time.perf_counter() - self.started:.2f}", *means.values()])
        self.writer.flush()
        self._sums, self._count = {}, 0

    def close(self, step: int) -> None:
        self.flush(step)
        self.writer.close()


def read_history(path: Path) -> dict[str, list[float]]:
    """history.csv → column name → values (step and seconds included)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    # A resumed run appends a new header-less block; columns stay those of the first block.
    return (
        {key: [float(row[key]) for row in rows if row.get(key)] for key in rows[0]} if rows else {}
    )


# --- config files --------------------------------------------------------------------------------


def load_config(cls: type[T], path: Path | None, **defaults: object) -> T:
    """A config dataclass from `defaults`, overridden by the fields in a JSON file.

    Nested dataclass fields (e.g. `audio`) take a nested object. Unknown names are an error,
    so a typo never silently trains the wrong model.
    """
    config = cls(**defaults)  # type: ignore[arg-type]
    if path is None:
        return config
    try:
        overrides = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TrainingError(f"cannot read config {path}: {exc}") from exc
    if not isinstance(overrides, dict):
        raise TrainingError(f"config {path}: expected a JSON object")
    try:
        return configs.apply_overrides(config, overrides, str(path))
    except configs.ConfigError as exc:
        raise TrainingError(str(exc)) from exc


def config_from_dict(cls: type[T], values: Mapping[str, object]) -> T:
    """Rebuild a config dataclass saved with `config_dict` (e.g. from a checkpoint)."""
    try:
        return configs.config_from_dict(cls, values)
    except configs.ConfigError as exc:
        raise TrainingError(str(exc)) from exc
