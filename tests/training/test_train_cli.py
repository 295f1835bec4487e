"""`deepfake-studio train ...`: the commands reach the trainers, resume, and fail in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from deepfake_studio.training.common import load_checkpoint
from tests.conftest import RunHere

CLI = [sys.executable, "-m", "deepfake_studio.cli", "train"]


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_train_cli_runs_resumes_and_reports_errors(  # type: ignore[no-untyped-def]
    prepared_data, tmp_path: Path, run_here: RunHere
) -> None:
    data = prepared_data(22_050)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"model": {"d_model": 32, "heads": 2, "encoder_layers": 1,
                      "decoder_layers": 1, "ffn_dims": 64, "postnet_dims": 16}}))  # fmt: skip
    run_dir = tmp_path / "run"
    common = ["--data", data, "--out", run_dir, "--batch-size", 2, "--checkpoint-every", 1]
    first = run("synthesizer", "--model", "transformer", *common, "--steps", 2, "--config", config)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == str(run_dir / "transformer.pt")
    # The time estimate comes first, before any training output.
    assert first.stderr.startswith("training transformer for 2 steps at batch 2: about 5 s on")
    resumed = run("synthesizer", "--model", "transformer", *common, "--steps", 3, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run_dir / "transformer.pt")["step"] == 3
    assert len(list((run_dir / "checkpoints").glob("transformer-step*.pt"))) == 3

    # The refusals through main() in-process (no interpreter start-up for a one-line error).
    x, y = tmp_path / "x", tmp_path / "y"
    unknown = run_here("train", "vocoder", "--model", "melgan", "--data", data, "--out", x,
                       home=tmp_path)  # fmt: skip
    assert unknown.returncode == 1 and "unknown vocoder model 'melgan'" in unknown.stderr
    missing = run_here("train", "encoder", "--data", tmp_path / "nothing", "--out", y,
                       home=tmp_path)  # fmt: skip
    assert missing.returncode == 1 and "run 'deepfake-studio prepare' first" in missing.stderr
    assert missing.stderr.strip().count("\n") == 0


def test_a_long_run_is_announced_with_its_measured_duration() -> None:
    from deepfake_studio.cli import training_estimate

    # The default Tacotron run: 1000 steps at batch 12, measured 0.024 steps/s at batch 8.
    line = training_estimate("tacotron", 1000, 12)
    assert line.startswith("training tacotron for 1000 steps at batch 12: about 17 h 22 min")
    assert "--steps N for fewer" in line
    assert "long run" not in training_estimate("ge2e", 100, 16)  # 6 min
