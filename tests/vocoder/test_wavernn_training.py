"""`train vocoder --model wavernn` on the tiny prepared corpus, and the engine using its output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_studio.configs import config_dict
from deepfake_studio.synthesizer.sv2tts import SV2TTSEngine, load_wavernn
from deepfake_studio.training.common import TrainingError, TrainOptions, batch_rng, load_checkpoint
from deepfake_studio.training.dataset import PreparedData
from deepfake_studio.vocoder.train_wavernn import WaveRNNTrainConfig, Windows, train, wavernn_loss
from deepfake_studio.vocoder.wavernn import WaveRNN, WaveRNNConfig, WaveRNNVocoder

TINY = WaveRNNConfig(rnn_dims=32, fc_dims=32, compute_dims=16, res_out_dims=16, res_blocks=1,
                     target=800, overlap=80)  # fmt: skip


def _options(data: Path, run: Path, steps: int, **kw: object) -> TrainOptions:
    return TrainOptions(data_dir=data, run_dir=run, steps=steps, batch_size=4, learning_rate=1e-3,
                        checkpoint_every=2, log_every=1, threads=1, progress=False, **kw)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "wavernn.json"
    path.write_text(json.dumps({"model": config_dict(TINY)}))
    return path


def test_windows_line_up_samples_with_frames(prepared_data) -> None:  # type: ignore[no-untyped-def]
    windows = Windows(PreparedData(prepared_data(16_000)), WaveRNNTrainConfig(model=TINY))
    previous, mels, targets = windows.batch(batch_rng(0, 1), 3)
    assert previous.shape == targets.shape == (3, 5 * 200)
    assert mels.shape == (3, 80, 5 + 2 * TINY.pad)
    assert targets.min() >= 0 and targets.max() < 512
    # teacher forcing: each input is the previous target's companded value
    assert torch.allclose(previous[:, 1:], 2 * targets[:, :-1].float() / 511 - 1)


def test_overfitting_one_batch_lowers_the_loss(prepared_data) -> None:  # type: ignore[no-untyped-def]
    config = WaveRNNTrainConfig(model=TINY, seq_frames=2)
    batch = Windows(PreparedData(prepared_data(16_000)), config).batch(batch_rng(0, 1), 2)
    torch.manual_seed(0)
    model = WaveRNN(TINY).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = wavernn_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 5.5  # about ln 512 = 6.24 untrained
    assert losses[-1] < 0.75 * losses[0], losses


def test_resume_continues_exactly_and_the_engine_uses_the_vocoder(  # type: ignore[no-untyped-def]
    prepared_data, tiny_config: Path, tmp_path: Path
) -> None:
    data = prepared_data(16_000)
    straight = train(_options(data, tmp_path / "a", 4), tiny_config)
    train(_options(data, tmp_path / "b", 2), tiny_config)
    resumed = train(_options(data, tmp_path / "b", 4, resume=True), None)
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["step"] == b["step"] == 4
    for key, value in a["model_state"].items():
        assert torch.allclose(value.float(), b["model_state"][key].float(), atol=1e-6), key
    assert a["optimizer_state"]["state"][0]["step"] == b["optimizer_state"]["state"][0]["step"]
    assert (tmp_path / "a" / "checkpoints" / "vocoder-step0000002.pt").exists()

    model = load_wavernn(straight)  # tiny sizes from the checkpoint's config, strict keys
    assert model.config == TINY
    mel = PreparedData(data).mel(PreparedData(data).utterances("test")[0])
    wav = WaveRNNVocoder(model)(mel)
    assert wav.dtype == np.float32 and len(wav) == (mel.shape[1] - 1) * 200
    assert np.isfinite(wav).all()  # (an untrained net's de-emphasised noise may exceed ±1)

    # A full sv2tts run folder: a few tacotron steps next to this vocoder.
    from deepfake_studio.synthesizer import train_tacotron
    from deepfake_studio.synthesizer.tacotron import TacotronConfig

    tiny_tacotron = TacotronConfig(embed_dims=32, encoder_dims=16, decoder_dims=16,
                                   postnet_dims=32, encoder_k=3, postnet_k=3, lstm_dims=64,
                                   num_highways=1, r=5)  # fmt: skip
    config = tmp_path / "tacotron.json"
    config.write_text(json.dumps({"model": config_dict(tiny_tacotron)}))
    train_tacotron.train(_options(data, tmp_path / "a", 1), config)
    engine = SV2TTSEngine(tmp_path / "a")  # wavernn: RUN/vocoder.pt
    assert engine.vocoder_name == "wavernn"
    voice = engine.condition(_reference(data), engine.encoder)
    speech = engine.synthesize("Hi.", voice)
    assert speech.dtype == np.float32 and 200 < len(speech) < 16_000 * 3


def test_a_22_khz_folder_is_refused(prepared_data, tiny_config: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TrainingError, match="--sample-rate 16000"):
        train(_options(prepared_data(22_050), tmp_path / "r", 1), tiny_config)


def _reference(data: Path):  # type: ignore[no-untyped-def]
    from deepfake_studio.audio import Audio

    prepared = PreparedData(data)
    return Audio(prepared.wav(prepared.utterances("test")[0]), 16_000)
