"""The pieces every trainer shares: config files, checkpoints, resume rules, the loss log."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from deepfake_studio.synthesizer.tacotron import AudioConfig
from deepfake_studio.training.common import (
    TrainingError,
    TrainLog,
    TrainOptions,
    batch_rng,
    load_checkpoint,
    load_config,
    read_history,
    resume_or_start,
    save_run,
)


@dataclass(frozen=True)
class Sizes:
    dims: int = 8
    kernels: tuple[int, ...] = (3, 5)
    audio: AudioConfig = field(default_factory=AudioConfig)


def test_load_config_overrides_nested_fields_and_rejects_typos(tmp_path: Path) -> None:
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"dims": 4, "kernels": [7], "audio": {"hop_length": 100}}))
    config = load_config(Sizes, file)
    assert config == Sizes(dims=4, kernels=(7,), audio=AudioConfig(hop_length=100))
    assert load_config(Sizes, None) == Sizes()
    file.write_text(json.dumps({"audio": {"hop": 1}}))
    with pytest.raises(TrainingError, match="unknown field 'hop'"):
        load_config(Sizes, file)
    file.write_text("{not json")
    with pytest.raises(TrainingError, match="cannot read config"):
        load_config(Sizes, file)


def test_checkpoints_round_trip_and_resume_rules(tmp_path: Path) -> None:
    options = TrainOptions(data_dir=tmp_path, run_dir=tmp_path / "run")
    assert resume_or_start(options, "model.pt") is None
    with pytest.raises(TrainingError, match="no model.pt"):
        resume_or_start(TrainOptions(tmp_path, tmp_path / "run", resume=True), "model.pt")
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    state = {"model_state": model.state_dict(), "optimizer_state": optimizer.state_dict(),
             "step": 7, "config": {"dims": 3}}  # fmt: skip
    path = save_run(options, "model.pt", state, step=7)
    assert path == tmp_path / "run" / "model.pt"
    assert (tmp_path / "run" / "checkpoints" / "model-step0000007.pt").exists()
    assert not list((tmp_path / "run").rglob(".*.tmp"))
    loaded = load_checkpoint(path)
    assert loaded["step"] == 7 and loaded["config"] == {"dims": 3}
    assert torch.equal(loaded["model_state"]["weight"], model.weight)
    assert (
        loaded["optimizer_state"]["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    )
    with pytest.raises(TrainingError, match="pass --resume"):
        resume_or_start(options, "model.pt")
    resumed = resume_or_start(TrainOptions(tmp_path, tmp_path / "run", resume=True), "model.pt")
    assert resumed is not None and resumed["step"] == 7
    (tmp_path / "run" / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "run" / "broken.pt")


def test_batches_depend_only_on_seed_and_step() -> None:
    assert (batch_rng(3, 10).integers(0, 1000, 5) == batch_rng(3, 10).integers(0, 1000, 5)).all()
    assert (batch_rng(3, 10).integers(0, 1000, 5) != batch_rng(3, 11).integers(0, 1000, 5)).any()


def test_train_log_writes_history_and_tensorboard(tmp_path: Path) -> None:
    options = TrainOptions(data_dir=tmp_path, run_dir=tmp_path / "run", log_every=2)
    log = TrainLog(options, "stage")
    for step in range(1, 6):
        log.add(step, {"loss": float(step), "other": 1.0})
    log.close(5)
    history = read_history(tmp_path / "run" / "logs" / "stage" / "history.csv")
    assert history["step"] == [2.0, 4.0, 5.0]
    assert history["loss"] == [1.5, 3.5, 5.0]  # means over each logging window
    assert list((tmp_path / "run" / "logs" / "stage").glob("events.out.tfevents.*"))
    with pytest.raises(TrainingError, match="diverged"):
        TrainLog(options, "stage").add(1, {"loss": float("nan")})
