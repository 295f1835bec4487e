"""`train vocoder --model hifigan`: HiFi-GAN on a prepared 22.05 kHz corpus.

    train(TrainOptions(data_dir=Path("data-22k"), run_dir=Path("run")), config_path=None)

Each step takes random segments of `segment_frames` mel frames and the audio under them
(frame f is centred on sample f · hop), updates the two discriminators on real vs generated
audio, then the generator on mel L1 (×45) + adversarial + feature-matching losses, as in the
paper (AdamW, betas 0.8/0.99, learning rate decayed ×0.999 every `lr_decay_every` steps).
`discriminator_start_step` > 0 trains the generator on the mel loss alone at first, which
gets a CPU run to intelligible audio sooner; the default 0 follows the paper.

RUN/hifigan.pt holds the generator (`model_state`, `optimizer_state`, `step`, `config`) and
everything needed to resume: both discriminators, their optimizer and the two schedulers.
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
from deepfake_studio.training.dataset import PreparedData
from deepfake_studio.vocoder.hifigan import (
    Generator,
    HiFiGANConfig,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    mel_torch,
)

RUN_FILE = "hifigan.pt"
DEFAULT_OPTIONS = TrainDefaults(batch_size=16, learning_rate=2e-4)  # the paper's values


@dataclass(frozen=True)
class HiFiGANTrainConfig:
    model: HiFiGANConfig = field(default_factory=HiFiGANConfig)
    segment_frames: int = 32  # 16,384 samples at hop 512 (the paper: 8,192 at hop 256)
    discriminator_width: float = 1.0  # channel multiplier of both discriminators (tests: small)
    discriminator_start_step: int = 0
    mel_weight: float = 45.0
    feature_weight: float = 1.0  # feature_matching_loss already doubles, as the paper does
    betas: tuple[float, float] = (0.8, 0.99)
    lr_decay: float = 0.999
    lr_decay_every: int = 1000


class Segments:
    """Random (mel segment, audio segment) pairs from the prepared training utterances."""

    def __init__(self, data: PreparedData, config: HiFiGANTrainConfig) -> None:
        self.data, self.frames = data, config.segment_frames
        self.hop = config.model.hop_length
        self.pool = data.utterances("train")
        if not self.pool:
            raise TrainingError(f"{data.root}: the train split is empty")

    def batch(self, rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mels (B, n_mels, frames), audio (B, 1, frames · hop)); short clips padded."""
        silence = -self.data.audio.max_abs_value
        mels, wavs = [], []
        for index in rng.integers(0, len(self.pool), size):
            utterance = self.pool[index]
            mel, wav = self.data.mel(utterance), self.data.wav(utterance)
            start = int(rng.integers(0, max(1, mel.shape[1] - self.frames + 1)))
            mel = mel[:, start : start + self.frames]
            wav = wav[start * self.hop : (start + self.frames) * self.hop]
            mels.append(
                np.pad(mel, ((0, 0), (0, self.frames - mel.shape[1])), constant_values=silence)
            )
            wavs.append(np.pad(wav, (0, self.frames * self.hop - len(wav))))
        return torch.from_numpy(np.stack(mels)), torch.from_numpy(np.stack(wavs)).unsqueeze(1)


class HiFiGANTraining:
    """The generator, both discriminators, their optimizers and schedulers, and one step."""

    def __init__(self, config: HiFiGANTrainConfig, learning_rate: float) -> None:
        self.config = config
        self.generator = Generator(config.model).train()
        self.mpd = MultiPeriodDiscriminator(width=config.discriminator_width).train()
        self.msd = MultiScaleDiscriminator(width=config.discriminator_width).train()
        betas = config.betas
        self.optim_g = torch.optim.AdamW(self.generator.parameters(), learning_rate, betas)
        discriminators = [*self.mpd.parameters(), *self.msd.parameters()]
        self.optim_d = torch.optim.AdamW(discriminators, learning_rate, betas)
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.optim_g, config.lr_decay)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.optim_d, config.lr_decay)

    def step(self, step: int, mel: torch.Tensor, wav: torch.Tensor) -> dict[str, float]:
        c, audio = self.config, self.config.model.audio
        generated = self.generator(mel)
        # The adversarial columns read 0 before the discriminators start (one CSV header).
        parts = {"discriminator": 0.0, "generator_adv": 0.0, "feature_matching": 0.0}
        adversarial = step > c.discriminator_start_step
        if adversarial:
            loss_d = discriminator_loss(self.mpd(wav), self.mpd(generated.detach()))
            loss_d = loss_d + discriminator_loss(self.msd(wav), self.msd(generated.detach()))
            self.optim_d.zero_grad()
            loss_d.backward()
            self.optim_d.step()
            parts["discriminator"] = loss_d.item()

        mel_loss = F.l1_loss(mel_torch(generated[:, 0], audio), mel_torch(wav[:, 0], audio))
        loss_g = c.mel_weight * mel_loss
        if adversarial:
            real_p, fake_p = self.mpd(wav), self.mpd(generated)
            real_s, fake_s = self.msd(wav), self.msd(generated)
            adv = generator_loss(fake_p) + generator_loss(fake_s)
            fm = feature_matching_loss(real_p, fake_p) + feature_matching_loss(real_s, fake_s)
            loss_g = loss_g + adv + c.feature_weight * fm
            parts |= {"generator_adv": adv.item(), "feature_matching": fm.item()}
        self.optim_g.zero_grad()
        loss_g.backward()
        self.optim_g.step()
        if step % c.lr_decay_every == 0:
            self.sched_g.step()
            self.sched_d.step()
        return {"mel_l1": mel_loss.item(), "generator_total": loss_g.item(), **parts}

    def state(self, step: int) -> dict[str, object]:
        return run_state(
            self.generator,
            self.optim_g,
            step,
            self.config,
            discriminator_state={"mpd": self.mpd.state_dict(), "msd": self.msd.state_dict()},
            discriminator_optimizer_state=self.optim_d.state_dict(),
            scheduler_state={"g": self.sched_g.state_dict(), "d": self.sched_d.state_dict()},
        )

    def load(self, checkpoint: dict) -> int:  # type: ignore[type-arg]
        self.generator.load_state_dict(checkpoint["model_state"])
        self.optim_g.load_state_dict(checkpoint["optimizer_state"])
        self.mpd.load_state_dict(checkpoint["discriminator_state"]["mpd"])
        self.msd.load_state_dict(checkpoint["discriminator_state"]["msd"])
        self.optim_d.load_state_dict(checkpoint["discriminator_optimizer_state"])
        self.sched_g.load_state_dict(checkpoint["scheduler_state"]["g"])
        self.sched_d.load_state_dict(checkpoint["scheduler_state"]["d"])
        return int(checkpoint["step"])


def train(options: TrainOptions, config_path: Path | None) -> Path:
    """Train (or continue) RUN/hifigan.pt; returns its path."""
    checkpoint, config = start_run(options, RUN_FILE, HiFiGANTrainConfig, config_path)
    data = PreparedData(options.data_dir)
    data.require_audio(config.model.audio, "hifigan")
    segments = Segments(data, config)

    torch.manual_seed(options.seed)
    training = HiFiGANTraining(config, options.learning_rate)
    start = training.load(checkpoint) if checkpoint is not None else 0

    log = TrainLog(options, "hifigan")
    step = start
    for step in steps(options, start):
        mel, wav = segments.batch(batch_rng(options.seed, step), options.batch_size)
        log.add(step, training.step(step, mel, wav))
        if step % options.checkpoint_every == 0 or step == options.steps:
            save_run(options, RUN_FILE, training.state(step), step)
    log.close(step)
    return options.run_dir / RUN_FILE
