"""`train vocoder --model wavernn`: RTVC's WaveRNN on a prepared 16 kHz corpus.

    train(TrainOptions(data_dir=Path("data-16k"), run_dir=Path("run")), config_path=None)

As RTVC trains it (RAW mode, 9-bit mu-law): each example is a window of `seq_frames` mel
frames (plus `pad` frames of context on each side) and the `seq_frames · hop` samples under
it; the network sees the previous sample's companded value and predicts the class of the
next one (cross-entropy). The waveform is pre-emphasised first, as the generator undoes it.

RTVC can train on ground-truth-aligned (GTA) mels, the synthesizer's own teacher-forced
output, so the vocoder learns to correct its errors. Here the targets are the prepared
ground-truth mels: simpler, and independent of any synthesizer run; a GTA pass would only
change what `PreparedData.mel` returns.

RUN/vocoder.pt is RTVC's layout (`model_state`, `optimizer_state`, `step`) plus the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias

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
from deepfake_studio.vocoder.audio import encode_mu_law, preemphasis
from deepfake_studio.vocoder.wavernn import WaveRNN, WaveRNNConfig

RUN_FILE = "vocoder.pt"
# RTVC: batch 100, lr 1e-4. 32 keeps a step near a second on a laptop CPU.
DEFAULT_OPTIONS = TrainDefaults(batch_size=32, learning_rate=1e-4)


@dataclass(frozen=True)
class WaveRNNTrainConfig:
    model: WaveRNNConfig = field(default_factory=WaveRNNConfig)
    seq_frames: int = 5  # RTVC's voc_seq_len = 5 hops (1000 samples at 16 kHz)
    clip_grad_norm: float = 4.0


class Windows:
    """Random (mel window, samples) training examples from the prepared utterances."""

    def __init__(self, data: PreparedData, config: WaveRNNTrainConfig) -> None:
        self.data, self.config = data, config
        c = config.model
        self.mel_frames = config.seq_frames + 2 * c.pad
        # A window needs `pad` frames before and after, plus one sample of history.
        self.pool = [u for u in data.utterances("train") if u.n_frames > self.mel_frames + 2]
        if not self.pool:
            raise TrainingError(f"{data.root}: no training utterance is long enough for WaveRNN")
        self._labels: dict[str, np.ndarray] = {}

    def labels(self, utterance: Utterance) -> np.ndarray:
        """Mu-law class of every (pre-emphasised) sample of an utterance, cached."""
        if utterance.id not in self._labels:
            c = self.config.model
            wav = np.clip(preemphasis(self.data.wav(utterance), c.audio.preemphasis), -1, 1)
            companded = encode_mu_law(wav, c.n_classes)
            self._labels[utterance.id] = np.round((companded + 1) * (c.n_classes - 1) / 2)
        return self._labels[utterance.id]

    def batch(self, rng: np.random.Generator, size: int) -> tuple[torch.Tensor, ...]:
        """(previous values (B, L), mel windows (B, 80, frames), target classes (B, L))."""
        c, hop = self.config.model, self.config.model.hop_length
        length = self.config.seq_frames * hop
        mels, labels = [], []
        for index in rng.integers(0, len(self.pool), size):
            utterance = self.pool[index]
            mel, classes = self.data.mel(utterance), self.labels(utterance)
            start = int(rng.integers(0, utterance.n_frames - self.mel_frames - 1))
            mels.append(mel[:, start : start + self.mel_frames])
            first = (start + c.pad) * hop  # the sample under the first frame after the context
            window = classes[first : first + length + 1]
            labels.append(np.pad(window, (0, length + 1 - len(window))))  # a clip's very end
        classes = torch.from_numpy(np.stack(labels)).long()
        previous = 2 * classes[:, :-1].float() / (c.n_classes - 1) - 1
        return previous, torch.from_numpy(np.stack(mels)), classes[:, 1:]


def wavernn_loss(model: WaveRNN, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    previous, mels, targets = batch
    logits = model(previous, mels)
    return F.cross_entropy(logits.transpose(1, 2), targets)


def train(options: TrainOptions, config_path: Path | None) -> Path:
    """Train (or continue) RUN/vocoder.pt; returns its path."""
    checkpoint, config = start_run(options, RUN_FILE, WaveRNNTrainConfig, config_path)
    data = PreparedData(options.data_dir)
    data.require_audio(config.model.audio, "wavernn")
    windows = Windows(data, config)

    torch.manual_seed(options.seed)
    model = WaveRNN(config.model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
    start = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model_state"])
        optimizer.load_state_dict(checkpoint["optimizer_state"])
        start = int(checkpoint["step"])

    log = TrainLog(options, "vocoder")
    step = start
    for step in steps(options, start):
        loss = wavernn_loss(model, windows.batch(batch_rng(options.seed, step), options.batch_size))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        model.step.fill_(step)
        log.add(step, {"loss": loss.item()})
        if step % options.checkpoint_every == 0 or step == options.steps:
            state = run_state(model, optimizer, step, config)
            save_run(options, RUN_FILE, state, step)
    log.close(step)
    return options.run_dir / RUN_FILE
