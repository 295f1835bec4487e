"""`deepfake-studio detect`: real processes, exit codes, one-line errors, JSON fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tests.conftest import RunHere

CLI = [sys.executable, "-m", "deepfake_studio.cli"]


def run(*args: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEEPFAKE_STUDIO_HOME": str(home)}
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


def test_detect_json_with_segments_and_a_corrupt_file(
    tmp_path: Path,
    example_reference: Path,
    piper_engine,  # type: ignore[no-untyped-def]
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("this is not audio")
    made = tmp_path / "piper.wav"
    text = "A sentence spoken by Piper, for the detector."
    sf.write(made, piper_engine.synthesize(text, piper_engine.default_conditioning()), 22_050)
    result = run("detect", example_reference, bad, made, "--json", "--segments", home=tmp_path)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and "bad.wav" in errors[0]
    assert "Traceback" not in result.stderr
    report, synthetic = map(json.loads, result.stdout.splitlines())  # good files still reported
    assert report["file"] == str(example_reference) and synthetic["file"] == str(made)
    # Known answers: the LJ Speech recording is real (p 0.006 measured), Piper synthetic (0.99).
    assert report["label"] == "real" and report["probability_synthetic"] < report["threshold"]
    assert synthetic["label"] == "synthetic"
    assert synthetic["probability_synthetic"] >= synthetic["threshold"]
    assert set(report["watermark"]) == {"present", "score", "threshold", "confidence", "found_by"}
    assert report["watermark"]["threshold"] == 0.85  # the score's scale, beside it
    assert report["watermark"]["present"] is False  # a public-domain recording, never marked
    assert report["watermark"]["found_by"] == []  # neither layer
    assert len(report["segments"]) >= 2
    assert set(report["segments"][0]) == {"start", "end", "probability", "speech"}


def cli_in_process(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """`main()` in this process (no interpreter start-up): exit code, stdout, stderr."""
    from deepfake_studio import cli

    monkeypatch.setattr(sys, "argv", ["deepfake-studio", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_detect_text_output_with_a_corrupt_file(
    tmp_path: Path,
    example_reference: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEEPFAKE_STUDIO_HOME", str(tmp_path))
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"fLaC" + os.urandom(300))
    code, out, err = cli_in_process(
        ["detect", str(example_reference), str(bad)], capsys, monkeypatch
    )
    assert code == 1
    assert out.startswith(str(example_reference)) and "p(synthetic)" in out
    assert out.splitlines()[0].split("\t")[1] == "real"  # the label column, a known answer
    assert "watermark" in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "broken.flac" in lines[0]


def test_train_without_data_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["detector", "train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path)]
    code, _, err = cli_in_process(args, capsys, monkeypatch)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and "no clips" in lines[0], err


def test_train_takes_rawboost_and_holds_out_real_conditions(
    tiny_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "run"
    args = ["detector", "train", "--data", str(tiny_data), "--out", str(out), "--epochs", "1",
            "--rawboost", "0.5", "--hold-out-real"]  # fmt: skip
    code, _, err = cli_in_process(args, capsys, monkeypatch)
    assert code == 0, err
    card = json.loads((out / "detector.json").read_text(encoding="utf-8"))
    assert card["train"]["rawboost"] == 0.5
    held = card["train"]["exclude_real_sources"]
    assert held[0] == "alphanumeric/" and len(held) > 1
    assert all(s.startswith("speechocean762/SO_") for s in held[1:])


def test_build_data_refuses_an_unknown_codec_in_one_line(tmp_path: Path, run_here: RunHere) -> None:
    out = tmp_path / "set"
    result = run_here("detector", "build-data", "--out", out, "--codecs", "mp3,flac", home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: unknown codec 'flac' (known: mp3, opus, aac)"
    assert not out.exists()  # refused before anything was written


def test_train_init_onnx_starts_from_the_given_weights(
    tiny_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fine-tuning at learning rate 0 must export the starting model unchanged: the ONNX
    weights came back into torch whole, and the frozen BatchNorms kept their statistics."""
    import numpy as np
    import onnxruntime as ort

    from deepfake_studio.detector.infer import weights_dir

    shipped = weights_dir() / "detector.onnx"
    config = tmp_path / "lr0.json"
    config.write_text(json.dumps({"learning_rate": 0.0, "threads": 1}), encoding="utf-8")
    out = tmp_path / "run"
    args = ["detector", "train", "--data", str(tiny_data), "--out", str(out), "--epochs", "1",
            "--init-onnx", str(shipped), "--config", str(config)]  # fmt: skip
    code, _, err = cli_in_process(args, capsys, monkeypatch)
    assert code == 0, err
    card = json.loads((out / "detector.json").read_text(encoding="utf-8"))
    assert card["train"]["init_onnx"] == str(shipped)
    x = np.random.default_rng(2).standard_normal((2, 160, 301)).astype(np.float32) * 10
    before = ort.InferenceSession(str(shipped), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(out / "detector.onnx"), providers=["CPUExecutionProvider"])
    expected = before.run(None, {"lfcc": x})[0]
    assert np.abs(expected).max() > 0.5
    assert after.run(None, {"lfcc": x})[0] == pytest.approx(expected, abs=1e-4)


def test_build_data_refuses_malformed_clone_speaker_counts(
    tmp_path: Path, run_here: RunHere
) -> None:
    out = tmp_path / "set"
    result = run_here(
        "detector", "build-data", "--out", out, "--clone-speakers", "quick=16/4", home=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --clone-speakers quick=16/4: give train/dev/test"
    assert not out.exists()


def test_build_data_refuses_fewer_than_one_crop_per_recording(
    tmp_path: Path, run_here: RunHere
) -> None:
    out = tmp_path / "set"
    result = run_here(
        "detector", "build-data", "--out", out, "--crops-per-recording", "0", home=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --crops-per-recording must be at least 1"
    assert not out.exists()
