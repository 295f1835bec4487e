"""`train encoder`: the GE2E speaker encoder (Wan et al., 2018) on a prepared corpus.

    train(TrainOptions(data_dir=Path("data-16k"), run_dir=Path("run")), config_path=None)

Each step takes `batch_size` speakers × `utterances_per_speaker` random crops of
`crop_frames` mel frames (1.6 s by default, the partial length the encoder embeds at
inference), embeds them, and applies the softmax GE2E loss as Real-Time-Voice-Cloning does:
cosine similarity of every embedding to every speaker's centroid — its own speaker's centroid
computed *without* it — scaled by the learnable w and b, then cross-entropy towards its own
speaker. w and b learn 100× slower (RTVC's gradient scale) and gradients are clipped at norm 3.

By default training starts from the bundled pretrained weights (resemblyzer's GE2E, the same
network as RTVC's encoder.pt): on a laptop that is fine-tuning; `init: "random"` in the config
trains from scratch. RUN/encoder.pt is written in RTVC's layout (`model_state` with RTVC's
parameter names and shapes, `optimizer_state`, `step`), so it loads into `SpeakerEncoder`, the
sv2tts engine and `prepare --config {"encoder": ...}`; RTVC's own code expects the same layout
(not run here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias

from deepfake_studio.encoder.features import mel_spectrogram
from deepfake_studio.encoder.model import EncoderConfig, SpeakerEncoderModel
from deepfake_studio.encoder.preprocess import preprocess_wav
from deepfake_studio.errors import AudioError
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
from deepfake_studio.training.dataset import PreparedData

RUN_FILE = "encoder.pt"
# batch_size = speakers per batch (RTVC: 64 speakers × 10 utterances, lr 1e-4).
DEFAULT_OPTIONS = TrainDefaults(batch_size=64, learning_rate=1e-4)


@dataclass(frozen=True)
class EncoderTrainConfig:
    model: EncoderConfig = field(default_factory=EncoderConfig)
    utterances_per_speaker: int = 10  # drawn with replacement when a speaker has fewer
    crop_frames: int = 160  # 1.6 s of 10 ms frames; utterances shorter than this are not used
    init: Literal["pretrained", "random"] = "pretrained"
    clip_grad_norm: float = 3.0
    similarity_grad_scale: float = 0.01


def ge2e_loss(
    embeddings: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax GE2E loss of (speakers, utterances, dims) unit embeddings, and the scaled
    (speakers × utterances, speakers) similarity matrix it was computed from."""
    speakers, utterances, _ = embeddings.shape
    total = embeddings.sum(dim=1, keepdim=True)
    centroids = F.normalize(total / utterances, dim=2)  # (S, 1, D)
    # Each utterance's own centroid leaves it out, so it cannot simply match itself.
    excluded = F.normalize((total - embeddings) / (utterances - 1), dim=2)  # (S, U, D)
    similarity = torch.einsum("sud,kd->suk", embeddings, centroids[:, 0])
    own = (embeddings * excluded).sum(dim=2)  # (S, U)
    mask = torch.eye(speakers, dtype=torch.bool).unsqueeze(1).expand(-1, utterances, -1)
    similarity = torch.where(mask, own.unsqueeze(2).expand_as(similarity), similarity)
    scores = (similarity * weight + bias).reshape(speakers * utterances, speakers)
    labels = torch.arange(speakers).repeat_interleave(utterances)
    return F.cross_entropy(scores, labels), scores


def batch_eer(scores: torch.Tensor, utterances: int) -> float:
    """EER of same- vs other-speaker similarities in one batch (what RTVC logs)."""
    from deepfake_studio.detector.metrics import equal_error_rate

    speakers = scores.shape[1]
    same = torch.eye(speakers, dtype=torch.bool).repeat_interleave(utterances, dim=0)
    values = scores.detach().numpy()
    # equal_error_rate takes "higher = spoof": here higher = same speaker.
    eer, _ = equal_error_rate(bona_fide=values[~same.numpy()], spoof=values[same.numpy()])
    return eer


class SpeakerMels:
    """The encoder's 40-band mels of every usable training utterance, grouped by speaker."""

    def __init__(self, data: PreparedData, config: EncoderTrainConfig) -> None:
        self.by_speaker: dict[str, list[np.ndarray]] = {}
        for speaker, utterances in data.speakers("train").items():
            mels = []
            for utterance in utterances:
                try:
                    wav = preprocess_wav(data.wav(utterance), data.sample_rate, config.model)
                except AudioError:
                    continue  # no speech left after the encoder's own trimming
                mel = mel_spectrogram(wav, config.model)
                if len(mel) >= config.crop_frames:
                    mels.append(mel)
            if mels:
                self.by_speaker[speaker] = mels
        self.speakers = sorted(self.by_speaker)
        if len(self.speakers) < 2:
            raise TrainingError(
                f"{data.root}: GE2E needs at least 2 training speakers with an utterance of "
                f"{config.crop_frames / 100:g} s or more; found {len(self.speakers)}"
            )

    def batch(
        self, rng: np.random.Generator, speakers: int, utterances: int, frames: int
    ) -> torch.Tensor:
        """(speakers × utterances, frames, n_mels) random crops, speaker-major."""
        chosen = rng.choice(
            len(self.speakers), size=min(speakers, len(self.speakers)), replace=False
        )
        crops = []
        for index in chosen:
            mels = self.by_speaker[self.speakers[index]]
            picks = rng.choice(len(mels), size=utterances, replace=len(mels) < utterances)
            for pick in picks:
                start = int(rng.integers(0, len(mels[pick]) - frames + 1))
                crops.append(mels[pick][start : start + frames])
        return torch.from_numpy(np.stack(crops))


def train(options: TrainOptions, config_path: Path | None) -> Path:
    """Train (or continue) RUN/encoder.pt; returns its path."""
    checkpoint, config = start_run(options, RUN_FILE, EncoderTrainConfig, config_path)
    if config.utterances_per_speaker < 2:
        raise TrainingError("utterances_per_speaker must be at least 2 (GE2E leaves one out)")
    mels = SpeakerMels(PreparedData(options.data_dir), config)

    torch.manual_seed(options.seed)
    model = SpeakerEncoderModel(config.model)
    if config.init == "pretrained" and checkpoint is None:
        from deepfake_studio.encoder.weights import load_encoder_weights

        model.load_state_dict(load_encoder_weights(None, config.model))
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
    start = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model_state"])
        optimizer.load_state_dict(checkpoint["optimizer_state"])
        start = int(checkpoint["step"])
    model.train()

    log = TrainLog(options, "encoder")
    step, utterances = start, config.utterances_per_speaker
    for step in steps(options, start):
        crops = mels.batch(batch_rng(options.seed, step), options.batch_size, utterances,
                           config.crop_frames)  # fmt: skip
        embeddings = model(crops).reshape(-1, utterances, config.model.embedding_size)
        loss, scores = ge2e_loss(embeddings, model.similarity_weight, model.similarity_bias)
        optimizer.zero_grad()
        loss.backward()
        for parameter in (model.similarity_weight, model.similarity_bias):
            parameter.grad *= config.similarity_grad_scale  # type: ignore[operator]
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        log.add(step, {"loss": loss.item(), "eer": batch_eer(scores, utterances)})
        if step % options.checkpoint_every == 0 or step == options.steps:
            state = run_state(model, optimizer, step, config)
            save_run(options, RUN_FILE, state, step)
    log.close(step)
    return options.run_dir / RUN_FILE
