"""The transformer synthesizer: the seeds' sizes, training on the tiny corpus, the engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from deepfake_studio.configs import config_from_dict
from deepfake_studio.synthesizer.sv2tts import SV2TTSModelError
from deepfake_studio.synthesizer.train_transformer import (
    TransformerTrainConfig,
    make_batch,
    train,
    transformer_loss,
)
from deepfake_studio.synthesizer.transformer import EMOTIONS, TransformerTTS, TransformerTTSConfig
from deepfake_studio.synthesizer.transformer_engine import TransformerEngine, load_transformer
from deepfake_studio.training.common import TrainingError, TrainOptions, load_checkpoint
from deepfake_studio.training.dataset import PreparedData

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = {"d_model": 32, "heads": 2, "encoder_layers": 1, "decoder_layers": 1,
              "ffn_dims": 64, "emotion_dims": 8, "prenet_dims": 32, "postnet_dims": 16,
              "postnet_layers": 2, "dropout": 0.0}  # fmt: skip
TINY = {"model": TINY_MODEL, "warmup_steps": 1}


def _options(data: Path, run: Path, steps: int, **kw: object) -> TrainOptions:
    return TrainOptions(data_dir=data, run_dir=run, steps=steps, batch_size=3, learning_rate=1e-3,
                        checkpoint_every=2, log_every=1, threads=1, progress=False, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_the_default_model_has_the_seeds_shape() -> None:
    c = TransformerTTSConfig()
    assert (c.encoder_layers, c.decoder_layers, c.heads) == (6, 6, 8)
    assert (c.speaker_dims, c.emotion_dims, c.n_emotions) == (256, 128, 6)
    model = TransformerTTS(c)
    assert model.speaker_proj.in_features == 256 and model.emotion_table.weight.shape == (6, 128)
    parameters = sum(p.numel() for p in model.parameters())
    assert 10_000_000 < parameters < 14_000_000, parameters  # 11.5 M
    mel, post, stop, attention = model(
        torch.tensor([[5, 6, 7, 1]]), torch.randn(1, 256), torch.tensor([2]), torch.zeros(1, 9, 80)
    )
    assert mel.shape == post.shape == (1, 9, 80) and stop.shape == (1, 9)
    assert attention.shape == (1, 9, 4)


def test_overfitting_one_batch_lowers_the_loss_and_emotion_matters(prepared_data) -> None:  # type: ignore[no-untyped-def]
    data = PreparedData(prepared_data(22_050))
    config = config_from_dict(TransformerTrainConfig, TINY)
    batch = make_batch(data, data.utterances("train")[:2])
    torch.manual_seed(0)
    model = TransformerTTS(config.model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, parts = transformer_loss(model, batch, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(parts["mel_l1"])
    assert losses[-1] < 0.75 * losses[0], losses

    model.eval()
    speaker = torch.from_numpy(data.embedding(data.utterances("train")[0]))
    torch.manual_seed(0)
    neutral = model.generate([10, 20, 30, 1], speaker, EMOTIONS.index("neutral"), max_frames=8)
    torch.manual_seed(0)
    angry = model.generate([10, 20, 30, 1], speaker, EMOTIONS.index("angry"), max_frames=8)
    assert neutral.shape[0] == 80
    assert not torch.allclose(neutral[:, : angry.shape[1]], angry[:, : neutral.shape[1]])


def test_resume_continues_exactly_and_the_engine_speaks(  # type: ignore[no-untyped-def]
    prepared_data, tmp_path: Path
) -> None:
    data = prepared_data(22_050)
    config = tmp_path / "transformer.json"
    config.write_text(json.dumps(TINY))
    straight = train(_options(data, tmp_path / "a", 4), config)
    train(_options(data, tmp_path / "b", 2), config)
    resumed = train(_options(data, tmp_path / "b", 4, resume=True), None)
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["step"] == b["step"] == 4
    for key, value in a["model_state"].items():
        assert torch.allclose(value.float(), b["model_state"][key].float(), atol=1e-5), key
    assert a["optimizer_state"]["state"][0]["step"] == b["optimizer_state"]["state"][0]["step"]
    history = (tmp_path / "a" / "logs" / "transformer" / "history.csv").read_text().splitlines()
    assert history[0].startswith("step,seconds,loss,mel_l1") and len(history) == 5
    assert list((tmp_path / "a" / "logs" / "transformer").glob("events.out.tfevents.*"))
    assert load_transformer(straight).config == config_from_dict(TransformerTTSConfig, TINY_MODEL)

    engine = TransformerEngine(tmp_path / "a")  # no hifigan.pt: Griffin-Lim
    assert engine.vocoder_name == "griffinlim" and engine.sample_rate == 22_050
    from deepfake_studio.encoder import SpeakerEncoder

    voice = engine.condition(_reference(data), SpeakerEncoder())
    wav = engine.synthesize("Hi there.", voice)
    assert wav.dtype == np.float32 and np.isfinite(wav).all()
    assert 512 <= len(wav) <= (8 * 10 + 20) * 512  # at most 8 frames per symbol (+20)
    voice.info["emotion"] = "bored"
    with pytest.raises(Exception, match="unknown emotion"):
        engine.synthesize("Hi there.", voice)

    # with a HiFi-GAN from the same run, through the CLI
    from deepfake_studio.vocoder import train_hifigan

    vocoder_config = tmp_path / "hifigan.json"
    vocoder_config.write_text(json.dumps({"model": {"upsample_initial_channel": 16,
        "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1]]}, "segment_frames": 4,
        "discriminator_width": 0.0625}))  # fmt: skip
    train_hifigan.train(_options(data, tmp_path / "a", 1), vocoder_config)
    out = tmp_path / "clone.wav"
    cli = subprocess.run(
        [sys.executable, "-m", "deepfake_studio.cli", "clone", "--engine", "transformer",
         "--models-dir", str(tmp_path / "a"), "--reference", str(ROOT / "examples" /
         "lj_reference.flac"), "--text", "Hi there.", "--emotion", "happy",
         "--consent", "LJ, public domain", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
        env={"DEEPFAKE_STUDIO_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert sf.info(out).samplerate == 22_050 and sf.info(out).duration > 0.02
    record = json.loads(out.with_name("clone.wav.provenance.json").read_text())
    assert '"emotion": "happy"' in json.dumps(record)


def test_the_studio_emotions_and_strength_reach_the_transformer() -> None:
    from deepfake_studio.synthesizer.base import Conditioning
    from deepfake_studio.synthesizer.emotion import EMOTIONS as STUDIO_EMOTIONS
    from deepfake_studio.synthesizer.emotion import emotion_of, with_emotion
    from deepfake_studio.synthesizer.transformer_engine import TABLE_ROW_NAMES

    rows = {name: EMOTIONS.index(TABLE_ROW_NAMES.get(name, name)) for name in STUDIO_EMOTIONS}
    assert rows["fearful"] == EMOTIONS.index("fear") and len(set(rows.values())) == 6
    voice = Conditioning("transformer", info={"emotion": "neutral"})
    assert emotion_of(with_emotion(voice, "transformer", "fearful", 0.5)) == ("fearful", 0.5)
    assert with_emotion(voice, "transformer", "sad", 0.0) is voice  # strength 0: neutral

    torch.manual_seed(0)
    model = TransformerTTS(config_from_dict(TransformerTTSConfig, TINY_MODEL)).eval()
    text, speaker = torch.tensor([[10, 20, 30, 1]]), torch.randn(1, 256)
    angry = torch.tensor([EMOTIONS.index("angry")])
    neutral, _ = model.encode(text, speaker, torch.tensor([EMOTIONS.index("neutral")]))
    full, _ = model.encode(text, speaker, angry)
    assert torch.allclose(model.encode(text, speaker, angry, 0.0)[0], neutral)
    half, _ = model.encode(text, speaker, angry, 0.5)  # the embedding halfway to neutral's
    assert torch.allclose(half, (neutral + full) / 2, atol=1e-5)
    assert not torch.allclose(full, neutral)


def test_errors_are_one_line(prepared_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "t.json"
    config.write_text(json.dumps(TINY))
    with pytest.raises(TrainingError, match="--sample-rate 22050"):
        train(_options(prepared_data(16_000), tmp_path / "r", 1), config)
    with pytest.raises(SV2TTSModelError, match="models folder not found"):
        TransformerEngine(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SV2TTSModelError, match="transformer checkpoint not found"):
        TransformerEngine(tmp_path / "empty")


def _reference(data: Path):  # type: ignore[no-untyped-def]
    from deepfake_studio.audio import Audio

    prepared = PreparedData(data)
    return Audio(prepared.wav(prepared.utterances("test")[0]), 22_050)
