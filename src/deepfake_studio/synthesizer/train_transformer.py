"""`train synthesizer --model transformer`: the transformer TTS on a prepared 22.05 kHz corpus.

    train(TrainOptions(data_dir=Path("data-22k"), run_dir=Path("run")), config_path=None)

Teacher forcing on whole utterances (clips longer than `max_frames` are left out: a crop
would no longer match its transcript), each conditioned on its own d-vector and emotion.
Loss: L1 on the mel before and after the postnet (padding masked out), BCE on the stop
token (positive frames weighted: there is one per utterance), and the guided-attention loss
of `transformer.py`. Adam with a linear warm-up of the learning rate.

RUN/transformer.pt = `model_state`, `optimizer_state`, `step`, `config` (the network, read by
the transformer engine) and `train_config`. Pair it with `train vocoder --model hifigan` in
the same RUN, then `clone --engine transformer --models-dir RUN`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias

from deepfake_studio.synthesizer.sv2tts_text import text_to_sequence
from deepfake_studio.synthesizer.transformer import (
    EMOTIONS,
    TransformerTTS,
    TransformerTTSConfig,
    guided_attention_loss,
)
from deepfake_studio.training.common import (
    TrainDefaults,
    TrainingError,
    TrainLog,
    TrainOptions,
    batch_rng,
    run_state,
    save_run,
    start_run,
    steps,
)
from deepfake_studio.training.dataset import PreparedData, Utterance

RUN_FILE = "transformer.pt"
DEFAULT_OPTIONS = TrainDefaults(batch_size=16, learning_rate=5e-4)


@dataclass(frozen=True)
class TransformerTrainConfig:
    model: TransformerTTSConfig = field(default_factory=TransformerTTSConfig)
    max_frames: int = 400  # 9.3 s at hop 512
    guided_attention_weight: float = 10.0
    guided_attention_sigma: float = 0.2
    stop_positive_weight: float = 5.0
    warmup_steps: int = 1000
    clip_grad_norm: float = 1.0


def make_batch(data: PreparedData, utterances: list[Utterance]) -> dict[str, torch.Tensor]:
    """Padded text ids, mels (B, T, n_mels; silence padding), stop targets, lengths, conditions."""
    ids = [text_to_sequence(u.text) for u in utterances]
    mels = [data.mel(u).T for u in utterances]
    n, frames = max(map(len, ids)), max(len(m) for m in mels)
    text = torch.zeros(len(ids), n, dtype=torch.long)
    target = torch.full((len(mels), frames, data.audio.n_mels), -data.audio.max_abs_value)
    stop = torch.zeros(len(mels), frames)
    for i, (seq, mel) in enumerate(zip(ids, mels, strict=True)):
        text[i, : len(seq)] = torch.tensor(seq)
        target[i, : len(mel)] = torch.from_numpy(mel)
        stop[i, len(mel) - 1 :] = 1.0
    return {
        "text": text,
        "mels": target,
        "stop": stop,
        "text_lengths": torch.tensor([len(s) for s in ids], dtype=torch.float32),
        "mel_lengths": torch.tensor([len(m) for m in mels], dtype=torch.float32),
        "speaker": torch.from_numpy(np.stack([data.embedding(u) for u in utterances])),
        "emotion": torch.tensor([EMOTIONS.index(u.emotion) for u in utterances]),
    }


def transformer_loss(
    model: TransformerTTS, batch: dict[str, torch.Tensor], config: TransformerTrainConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    mels = batch["mels"]
    mel, post, stop, attention = model(batch["text"], batch["speaker"], batch["emotion"], mels)
    frames = torch.arange(mels.size(1))[None, :]
    valid = (frames < batch["mel_lengths"][:, None]).float()  # (B, T)
    per_frame = valid[:, :, None].expand_as(mels)
    mel_l1 = (torch.abs(mel - mels) * per_frame).sum() / per_frame.sum()
    post_l1 = (torch.abs(post - mels) * per_frame).sum() / per_frame.sum()
    stop_bce = F.binary_cross_entropy_with_logits(
        stop, batch["stop"], weight=valid, pos_weight=torch.tensor(config.stop_positive_weight)
    )
    guided = guided_attention_loss(
        attention, batch["text_lengths"], batch["mel_lengths"], config.guided_attention_sigma
    )
    total = mel_l1 + post_l1 + stop_bce + config.guided_attention_weight * guided
    parts = {"loss": total, "mel_l1": mel_l1, "postnet_l1": post_l1, "stop_bce": stop_bce,
             "guided_attention": guided}  # fmt: skip
    return total, {k: v.item() for k, v in parts.items()}


def train(options: TrainOptions, config_path: Path | None) -> Path:
    """Train (or continue) RUN/transformer.pt; returns its path."""
    checkpoint, config = start_run(options, RUN_FILE, TransformerTrainConfig, config_path)
    data = PreparedData(options.data_dir)
    data.require_audio(config.model.audio, "the transformer synthesizer")
    pool = [u for u in data.utterances("train") if u.n_frames <= config.max_frames]
    if not pool:
        raise TrainingError(
            f"{options.data_dir}: no training utterance is {config.max_frames} frames or shorter"
        )

    torch.manual_seed(options.seed)
    model = TransformerTTS(config.model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate, betas=(0.9, 0.98))
    warmup = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, config.warmup_steps))
    )
    start = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model_state"])
        optimizer.load_state_dict(checkpoint["optimizer_state"])
        warmup.load_state_dict(checkpoint["scheduler_state"])
        start = int(checkpoint["step"])

    log = TrainLog(options, "transformer")
    step = start
    for step in steps(options, start):
        rng = batch_rng(options.seed, step)
        chosen = rng.choice(len(pool), size=min(options.batch_size, len(pool)), replace=False)
        torch.manual_seed(options.seed * 1_000_003 + step)  # dropout
        loss, parts = transformer_loss(model, make_batch(data, [pool[i] for i in chosen]), config)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        warmup.step()
        log.add(step, parts)
        if step % options.checkpoint_every == 0 or step == options.steps:
            state = run_state(model, optimizer, step, config, scheduler_state=warmup.state_dict())
            save_run(options, RUN_FILE, state, step)
    log.close(step)
    return options.run_dir / RUN_FILE
