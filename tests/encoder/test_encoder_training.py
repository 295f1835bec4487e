"""`train encoder`: the GE2E loss, and a few fine-tuning steps on the tiny prepared corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_studio.encoder import SpeakerEncoder
from deepfake_studio.encoder.model import SpeakerEncoderModel
from deepfake_studio.encoder.train import EncoderTrainConfig, SpeakerMels, ge2e_loss, train
from deepfake_studio.training.common import TrainingError, TrainOptions, batch_rng, load_checkpoint
from deepfake_studio.training.dataset import PreparedData

SMALL = {"utterances_per_speaker": 3, "crop_frames": 60}


def _options(data: Path, run: Path, steps: int, **kw: object) -> TrainOptions:
    return TrainOptions(data_dir=data, run_dir=run, steps=steps, batch_size=3, learning_rate=1e-4,
                        checkpoint_every=2, log_every=1, threads=1, progress=False, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_ge2e_loss_is_low_for_separated_speakers_and_high_for_mixed_ones() -> None:
    weight, bias = torch.tensor([10.0]), torch.tensor([-5.0])
    separated = torch.eye(4)[:, None, :].expand(4, 3, 4).clone()  # speaker k = unit vector k
    loss, scores = ge2e_loss(separated, weight, bias)
    assert scores.shape == (12, 4) and float(loss) < 1e-3
    mixed = torch.nn.functional.normalize(
        torch.randn(4, 3, 4, generator=torch.manual_seed(0)), dim=2
    )
    assert float(ge2e_loss(mixed, weight, bias)[0]) > 1.0


def test_overfitting_one_batch_lowers_the_loss(prepared_data) -> None:  # type: ignore[no-untyped-def]
    config = EncoderTrainConfig(**SMALL)  # type: ignore[arg-type]
    mels = SpeakerMels(PreparedData(prepared_data(16_000)), config)
    crops = mels.batch(batch_rng(0, 1), 3, 3, config.crop_frames)
    assert crops.shape == (9, 60, 40)
    torch.manual_seed(0)
    model = SpeakerEncoderModel().train()  # random weights: the loss starts high
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss, _ = ge2e_loss(model(crops).reshape(3, 3, -1), model.similarity_weight,
                            model.similarity_bias)  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_resume_continues_exactly_and_the_checkpoint_loads(  # type: ignore[no-untyped-def]
    prepared_data, tmp_path: Path
) -> None:
    data = prepared_data(16_000)
    config = tmp_path / "encoder.json"
    config.write_text(json.dumps(SMALL))
    straight = train(_options(data, tmp_path / "a", 4), config)
    train(_options(data, tmp_path / "b", 2), config)
    resumed = train(_options(data, tmp_path / "b", 4, resume=True), None)
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["step"] == b["step"] == 4
    for key, value in a["model_state"].items():
        assert torch.allclose(value, b["model_state"][key], atol=1e-6), key
    assert a["optimizer_state"]["state"][0]["step"] == b["optimizer_state"]["state"][0]["step"] == 4
    history = (tmp_path / "a" / "logs" / "encoder" / "history.csv").read_text().splitlines()
    assert history[0] == "step,seconds,loss,eer" and len(history) == 5

    tuned = SpeakerEncoder(straight)  # RTVC layout: model_state with RTVC's parameter names
    wav = PreparedData(data).wav(PreparedData(data).utterances("test")[0])
    embedding = tuned.embed(wav, 16_000)
    assert embedding.shape == (256,) and abs(np.linalg.norm(embedding) - 1) < 1e-5
    pretrained = SpeakerEncoder().embed(wav, 16_000)
    assert 0.9 < float(embedding @ pretrained) < 1.0  # fine-tuned: moved, but not far


def test_too_few_speakers_is_a_one_line_error(prepared_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "long.json"
    config.write_text(json.dumps({"crop_frames": 100_000}))
    with pytest.raises(TrainingError, match="at least 2 training speakers"):
        train(_options(prepared_data(16_000), tmp_path / "r", 1), config)
