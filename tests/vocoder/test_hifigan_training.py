"""HiFi-GAN: shapes of the seeds' configuration, the torch mel, and training on the tiny corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_studio.configs import ConfigError
from deepfake_studio.synthesizer.sv2tts import SV2TTSModelError
from deepfake_studio.synthesizer.tacotron import HIFIGAN_AUDIO
from deepfake_studio.training.common import TrainOptions, batch_rng, load_checkpoint
from deepfake_studio.training.dataset import PreparedData
from deepfake_studio.vocoder.audio import melspectrogram
from deepfake_studio.vocoder.hifigan import (
    Generator,
    HiFiGANConfig,
    load_hifigan_vocoder,
    mel_torch,
)
from deepfake_studio.vocoder.train_hifigan import (
    HiFiGANTrainConfig,
    HiFiGANTraining,
    Segments,
    train,
)

TINY = {"model": {"upsample_initial_channel": 16, "resblock_kernel_sizes": [3],
                  "resblock_dilation_sizes": [[1, 3]]},
        "segment_frames": 4, "discriminator_width": 0.0625}  # fmt: skip


def _options(data: Path, run: Path, steps: int, **kw: object) -> TrainOptions:
    return TrainOptions(data_dir=data, run_dir=run, steps=steps, batch_size=2, learning_rate=2e-4,
                        checkpoint_every=2, log_every=1, threads=1, progress=False, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_the_seeds_generator_upsamples_by_the_mel_hop() -> None:
    generator = Generator(HiFiGANConfig())
    parameters = sum(p.numel() for p in generator.parameters())
    assert 13_000_000 < parameters < 15_000_000  # HiFi-GAN V1: 13.9 M
    with torch.no_grad():
        wav = generator(torch.zeros(1, 80, 3))
    assert wav.shape == (1, 1, 3 * 512)
    with pytest.raises(ConfigError, match="multiply to 256"):
        HiFiGANConfig(upsample_rates=(8, 8, 2, 2))


def test_torch_mel_equals_the_prepared_mel(prepared_data) -> None:  # type: ignore[no-untyped-def]
    data = PreparedData(prepared_data(22_050))
    utterance = data.utterances("train")[0]
    wav = data.wav(utterance)
    ours = mel_torch(torch.from_numpy(wav)[None], HIFIGAN_AUDIO)[0].numpy()
    assert ours.shape == data.mel(utterance).shape
    assert np.abs(ours - melspectrogram(wav, HIFIGAN_AUDIO)).max() < 1e-3


def test_overfitting_one_batch_lowers_the_mel_loss(prepared_data) -> None:  # type: ignore[no-untyped-def]
    from deepfake_studio.configs import config_from_dict

    config = config_from_dict(HiFiGANTrainConfig, {**TINY, "discriminator_start_step": 100})
    mel, wav = Segments(PreparedData(prepared_data(22_050)), config).batch(batch_rng(0, 1), 2)
    torch.manual_seed(0)
    training = HiFiGANTraining(config, learning_rate=2e-3)
    losses = [training.step(step, mel, wav)["mel_l1"] for step in range(1, 61)]
    assert losses[-1] < 0.6 * losses[0], losses


def test_resume_continues_exactly_and_the_vocoder_loads(  # type: ignore[no-untyped-def]
    prepared_data, tmp_path: Path
) -> None:
    data = prepared_data(22_050)
    config = tmp_path / "hifigan.json"
    config.write_text(json.dumps(TINY))
    straight = train(_options(data, tmp_path / "a", 4), config)
    train(_options(data, tmp_path / "b", 2), config)
    resumed = train(_options(data, tmp_path / "b", 4, resume=True), None)
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["step"] == b["step"] == 4
    for key, value in a["model_state"].items():
        assert torch.allclose(value, b["model_state"][key], atol=1e-6), key
    for key, value in a["discriminator_state"]["mpd"].items():
        assert torch.allclose(value, b["discriminator_state"]["mpd"][key], atol=1e-6), key
    for name in ("optimizer_state", "discriminator_optimizer_state"):
        assert a[name]["state"][0]["step"] == b[name]["state"][0]["step"] == 4
    history = (tmp_path / "a" / "logs" / "hifigan" / "history.csv").read_text().splitlines()
    assert history[0].startswith("step,seconds,mel_l1,generator_total,discriminator")
    assert len(history) == 5

    vocoder = load_hifigan_vocoder(straight)
    mel = PreparedData(data).mel(PreparedData(data).utterances("test")[0])
    wav = vocoder(mel)
    assert vocoder.sample_rate == 22_050
    assert wav.dtype == np.float32 and len(wav) == mel.shape[1] * 512
    assert np.isfinite(wav).all() and np.abs(wav).max() <= 1.0


def test_unusable_checkpoints_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(SV2TTSModelError, match="not found"):
        load_hifigan_vocoder(tmp_path / "hifigan.pt")
    pointer = tmp_path / "pointer.pt"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n")
    with pytest.raises(SV2TTSModelError, match="Git LFS pointer"):
        load_hifigan_vocoder(pointer)
    wrong = tmp_path / "wrong.pt"
    config = {"upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4]}
    torch.save({"model_state": {}, "config": config}, wrong)
    with pytest.raises(SV2TTSModelError, match="multiply to 256"):
        load_hifigan_vocoder(wrong)
