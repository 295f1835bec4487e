"""`train synthesizer --model tacotron`: RTVC's Tacotron on a prepared 16 kHz corpus.

    train(TrainOptions(data_dir=Path("data-16k"), run_dir=Path("run")), config_path=None)

Teacher forcing as RTVC trains it: each decoder step gets the last target frame of the
previous step; every utterance is conditioned on its own d-vector (from `prepare`). The loss
is RTVC's: MSE + L1 on the decoder's mels, MSE on the postnet's, BCE on the stop token.
Clips longer than `max_frames` are left out rather than cropped: a cropped mel no longer
matches its whole transcript, which teaches the attention to skip text.

The run folder gets `synthesizer.pt` in RTVC's layout (plus the network `config`) and, when
it has none, the `encoder.pt` whose d-vectors the synthesizer learned, so that
`clone --engine sv2tts --models-dir RUN` finds all it needs (Griffin-Lim without a vocoder.pt).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias

from deepfake_studio.synthesizer.sv2tts_text import text_to_sequence
from deepfake_studio.synthesizer.tacotron import Tacotron, TacotronConfig
from deepfake_studio.training.common import (
    TrainDefaults,
    TrainingError,
    TrainLog,
    TrainOptions,
    batch_rng,
    run_state,
    save_checkpoint,
    save_run,
    start_run,
    steps,
)
from deepfake_studio.training.dataset import PreparedData, Utterance

RUN_FILE = "synthesizer.pt"
DEFAULT_OPTIONS = TrainDefaults(batch_size=12, learning_rate=1e-3)  # RTVC's first schedule stage


@dataclass(frozen=True)
class TacotronTrainConfig:
    """What `--config FILE` can change: the network and the data it sees."""

    model: TacotronConfig = field(default_factory=TacotronConfig)
    max_frames: int = 600  # 7.5 s of mel; longer clips are not used (see the module docstring)
    clip_grad_norm: float = 1.0


def make_batch(data: PreparedData, utterances: list[Utterance], r: int) -> dict[str, torch.Tensor]:
    """Padded tensors: text ids, target mels (silence-padded to whole steps), stop, d-vectors."""
    audio = data.audio
    ids = [text_to_sequence(u.text) for u in utterances]
    mels = [data.mel(u) for u in utterances]
    n, frames = max(map(len, ids)), max(m.shape[1] for m in mels)
    frames += -frames % r  # whole decoder steps
    text = torch.zeros(len(ids), n, dtype=torch.long)  # padding id 0
    target = torch.full((len(mels), audio.n_mels, frames), -audio.max_abs_value)  # silence
    stop = torch.ones(len(mels), frames)
    for i, (seq, mel) in enumerate(zip(ids, mels, strict=True)):
        text[i, : len(seq)] = torch.tensor(seq)
        target[i, :, : mel.shape[1]] = torch.from_numpy(mel)
        stop[i, : mel.shape[1] - 1] = 0.0  # 1 from the last real frame on, as RTVC labels it
    embeddings = torch.from_numpy(np.stack([data.embedding(u) for u in utterances]))
    return {"text": text, "mels": target, "stop": stop, "embeddings": embeddings}


def tacotron_loss(
    model: Tacotron, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """RTVC's synthesizer loss and its parts (for the log)."""
    mels, stop = batch["mels"], batch["stop"]
    decoded, post, _, stop_hat = model(batch["text"], mels, batch["embeddings"], generator)
    parts = {
        "decoder_mse": F.mse_loss(decoded, mels),
        "decoder_l1": F.l1_loss(decoded, mels),
        "postnet_mse": F.mse_loss(post, mels),
        "stop_bce": F.binary_cross_entropy(stop_hat, stop),
    }
    total = sum(parts.values())
    return total, {"loss": total.item(), **{k: v.item() for k, v in parts.items()}}  # type: ignore[union-attr]


def train(options: TrainOptions, config_path: Path | None) -> Path:
    """Train (or continue) RUN/synthesizer.pt; returns its path."""
    checkpoint, config = start_run(options, RUN_FILE, TacotronTrainConfig, config_path)
    data = PreparedData(options.data_dir)
    data.require_audio(config.model.audio, "tacotron")
    pool = [u for u in data.utterances("train") if u.n_frames <= config.max_frames]
    if not pool:
        raise TrainingError(
            f"{options.data_dir}: no training utterance is {config.max_frames} frames or shorter"
        )

    torch.manual_seed(options.seed)
    model = Tacotron(config.model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
    start = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model_state"])
        optimizer.load_state_dict(checkpoint["optimizer_state"])
        start = int(checkpoint["step"])
    write_encoder(options.run_dir, data)

    log = TrainLog(options, "synthesizer")
    step = start
    for step in steps(options, start):
        rng = batch_rng(options.seed, step)
        chosen = rng.choice(len(pool), size=min(options.batch_size, len(pool)), replace=False)
        batch = make_batch(data, [pool[i] for i in chosen], model.r)
        generator = torch.Generator().manual_seed(options.seed * 1_000_003 + step)  # prenet dropout
        loss, parts = tacotron_loss(model, batch, generator)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        model.step.fill_(step)  # RTVC keeps the step in the state dict too
        log.add(step, parts)
        if step % options.checkpoint_every == 0 or step == options.steps:
            save_run(options, RUN_FILE, run_state(model, optimizer, step, config), step)
    log.close(step)
    return options.run_dir / RUN_FILE


def write_encoder(run_dir: Path, data: PreparedData) -> None:
    """RUN/encoder.pt: the encoder whose d-vectors `prepare` computed (unless RUN has one)."""
    target = run_dir / "encoder.pt"
    if target.exists():
        return
    prepared_with = (data.info.get("config") or {}).get("encoder")  # type: ignore[union-attr]
    run_dir.mkdir(parents=True, exist_ok=True)
    if prepared_with:
        shutil.copyfile(prepared_with, target)
        return
    from deepfake_studio.encoder import load_encoder_weights

    state = {"model_state": load_encoder_weights(None), "optimizer_state": None, "step": 0}
    save_checkpoint(target, state)
