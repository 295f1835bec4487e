"""`train synthesizer --model tacotron` on the tiny prepared corpus (3 speakers × 3 clips).

That its loss falls when overfitting real clips is checked in test_sv2tts_training.py, which
uses this trainer's loss function.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from deepfake_studio.configs import config_dict
from deepfake_studio.synthesizer.sv2tts import SV2TTSEngine, load_tacotron
from deepfake_studio.synthesizer.tacotron import TacotronConfig
from deepfake_studio.synthesizer.train_tacotron import train
from deepfake_studio.training.common import TrainingError, TrainOptions, load_checkpoint
from deepfake_studio.training.dataset import PreparedData

TINY = TacotronConfig(embed_dims=32, encoder_dims=16, decoder_dims=16, postnet_dims=32,
                      encoder_k=3, postnet_k=3, lstm_dims=64, num_highways=1, r=5)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tacotron.json"
    path.write_text(json.dumps({"model": config_dict(TINY)}))
    return path


def _options(data: Path, run: Path, steps: int, **kw: object) -> TrainOptions:
    return TrainOptions(data_dir=data, run_dir=run, steps=steps, batch_size=3, learning_rate=2e-3,
                        checkpoint_every=2, log_every=1, threads=1, progress=False, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_resume_continues_exactly_and_the_run_speaks(  # type: ignore[no-untyped-def]
    prepared_data, tiny_config: Path, tmp_path: Path
) -> None:
    data = prepared_data(16_000)
    straight = train(_options(data, tmp_path / "a", 4), tiny_config)
    train(_options(data, tmp_path / "b", 2), tiny_config)
    resumed = train(_options(data, tmp_path / "b", 4, resume=True), None)
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["step"] == b["step"] == 4
    for key, value in a["model_state"].items():
        assert torch.allclose(value.float(), b["model_state"][key].float(), atol=1e-5), key
    assert a["optimizer_state"]["state"][0]["step"] == b["optimizer_state"]["state"][0]["step"]
    assert torch.allclose(a["optimizer_state"]["state"][0]["exp_avg"],
                          b["optimizer_state"]["state"][0]["exp_avg"], atol=1e-6)  # fmt: skip
    run = tmp_path / "a"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "synthesizer-step0000002.pt", "synthesizer-step0000004.pt"]  # fmt: skip
    assert (run / "encoder.pt").exists()
    history = (run / "logs" / "synthesizer" / "history.csv").read_text().splitlines()
    assert history[0].startswith("step,seconds,loss,decoder_mse") and len(history) == 5
    assert list((run / "logs" / "synthesizer").glob("events.out.tfevents.*"))

    model = load_tacotron(straight)  # the tiny sizes come from the checkpoint's config
    assert model.config == TINY and model.r == 5
    engine = SV2TTSEngine(run, vocoder="griffinlim")
    voice = engine.condition(_reference(data), engine.encoder)
    wav = engine.synthesize("Hello there.", voice)
    assert engine.sample_rate == 16_000 and wav.dtype == np.float32 and np.isfinite(wav).all()
    assert 0 < len(wav) < 16_000 * 5  # an untrained decoder stops at its frames-per-symbol cap

    out = tmp_path / "clone.wav"
    cli = subprocess.run(
        [sys.executable, "-m", "deepfake_studio.cli", "clone", "--engine", "sv2tts",
         "--models-dir", str(run), "--vocoder", "griffinlim", "--reference",
         str(Path(__file__).parents[2] / "examples" / "lj_reference.flac"),
         "--text", "Hello there.", "--consent", "LJ, public domain", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
        env={"DEEPFAKE_STUDIO_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    info = sf.info(out)
    assert info.samplerate == 16_000 and info.duration > 0.05


def test_wrong_format_and_config_errors(  # type: ignore[no-untyped-def]
    prepared_data, tiny_config: Path, tmp_path: Path
) -> None:
    with pytest.raises(TrainingError, match="22050 Hz.*--sample-rate 16000"):
        train(_options(prepared_data(22_050), tmp_path / "r", 1), tiny_config)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"lstm": 3}}))
    with pytest.raises(TrainingError, match="unknown field 'lstm'"):
        train(_options(prepared_data(16_000), tmp_path / "r2", 1), bad)
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"model": config_dict(replace(TINY)), "max_frames": 5}))
    with pytest.raises(TrainingError, match="5 frames or shorter"):
        train(_options(prepared_data(16_000), tmp_path / "r3", 1), short)


def _reference(data: Path):  # type: ignore[no-untyped-def]
    from deepfake_studio.audio import Audio

    prepared = PreparedData(data)
    return Audio(prepared.wav(prepared.utterances("test")[0]), 16_000)
