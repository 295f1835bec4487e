"""Speaker adaptation: the `best` enrollment quality, on top of the style fit.

The style fit (`reconstruct.py`) moves only the 256-d style; some of a speaker lies beyond what
the style can reach. Here the decoder itself learns the speaker, as low-rank deltas on its
weight matrices (LoRA-style: ΔW = up @ down, rank `AdaptConfig.rank`), together with the
style, by the same losses as the style fit (log-mel on random crops with the reference's own
F0; log-F0 and duration for the prosody half).

What keeps the adaptation from ruining the voice (the outside probe fine-tuned the whole
decoder and left one voice at 20 % WER, ../shared/FACTS.md):

- **a held-out slice**: the last `holdout_fraction` of the reference is never a training crop;
  its log-mel loss, measured every `check_every` steps, says whether the decoder still learns
  the speaker or only the training crops;
- **an intelligibility guard**: at the same checks Whisper-base transcribes a sentence the fit
  never saw (`HOLDOUT_SENTENCE`) spoken with the current weights; a check whose word error
  rate exceeds the start's by more than `max_wer_rise` is never kept;
- **early stop and rollback**: the fit stops after `patience` checks without a better held-out
  loss, and the kept weights are those of the best check — the start (no adaptation at all)
  when no check beat it.

Per voice only the low-rank factors are stored (float16): `decoder_lowrank.<weight>.up` and
`.down`, a few MB; `torch_path.py` expands them into decoder deltas when the voice speaks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor

from deepfake_studio.synthesizer.base import ProgressCallback
from deepfake_studio.synthesizer.kokoro.fit import HOLDOUT_SENTENCE
from deepfake_studio.synthesizer.kokoro.model import KokoroModel
from deepfake_studio.synthesizer.kokoro.reconstruct import FRAME, RATE, StyleFitter
from deepfake_studio.synthesizer.kokoro.torch_path import DECODER_DELTA_PREFIX, LOWRANK_PREFIX


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of the `best` enrollment (decoder adaptation after the style fit)."""

    steps: int = 40
    rank: int = 16  # of every adapted weight's delta; 0 = whole deltas (for measuring only)
    learning_rate: float = 1e-3  # of the low-rank factors
    style_learning_rate: float = 0.005  # the style keeps moving, gently
    crop_seconds: float = 2.0
    holdout_fraction: float = 0.2  # the reference's tail, never trained on
    max_holdout_seconds: float = 4.0
    check_every: int = 10
    patience: int = 2  # checks without a better held-out loss before stopping
    max_wer_rise: float = 0.08  # one word of the 13-word held-out sentence
    min_weight_size: int = 100_000  # smaller weights (norms, biases, alphas) stay shared
    seed: int = 0


@dataclass
class AdaptCheck:
    step: int
    holdout_loss: float | None  # None: the reference was too short to hold a slice out
    wer: float
    transcript: str


@dataclass
class AdaptResult:
    style: np.ndarray  # (256,) the style at the kept check
    factors: dict[str, tuple[np.ndarray, np.ndarray]]  # weight name → (up, down); {} = none
    whole: dict[str, np.ndarray]  # weight name → whole delta (rank 0 only)
    kept_step: int  # 0 = rolled back to the style fit
    checks: list[AdaptCheck] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    config: AdaptConfig = field(default_factory=AdaptConfig)

    def arrays(self) -> dict[str, np.ndarray]:
        """The conditioning arrays of the kept deltas, float16 (none if rolled back)."""
        arrays = factors_to_arrays(self.factors)
        for name, delta in self.whole.items():
            arrays[f"{DECODER_DELTA_PREFIX}decoder.{name}"] = delta.astype(np.float16)
        return arrays

    @property
    def stored_bytes(self) -> int:
        return sum(a.nbytes for a in self.arrays().values())

    def info(self) -> dict[str, object]:
        """What the voice records about its adaptation."""
        return {
            "kept_step": self.kept_step,
            "rolled_back": self.kept_step == 0,
            "checks": [asdict(c) for c in self.checks],
            "adapted_weights": len(self.factors),
            "stored_mb": round(self.stored_bytes / 1e6, 2),
            "adapt_seconds": round(self.seconds, 1),
            "settings": asdict(self.config),
        }


def adaptable_weights(model: KokoroModel, min_size: int) -> dict[str, Tensor]:
    """The decoder's weight matrices and kernels worth a low-rank delta (name → weight)."""
    return {
        name: p
        for name, p in model.decoder.named_parameters()
        if p.ndim >= 2 and p.numel() >= min_size
    }


def lowrank_delta(up: Tensor, down: Tensor, shape: torch.Size | tuple[int, ...]) -> Tensor:
    """up [out, r] @ down [r, rest] reshaped to the weight's shape."""
    return (up @ down).reshape(shape)


def factors_to_arrays(factors: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Conditioning arrays of the factors (`decoder_lowrank.decoder.<weight>.up` / `.down`),
    as `torch_path.py` reads them."""
    arrays: dict[str, np.ndarray] = {}
    for name, (up, down) in factors.items():
        arrays[f"{LOWRANK_PREFIX}decoder.{name}.up"] = up.astype(np.float16)
        arrays[f"{LOWRANK_PREFIX}decoder.{name}.down"] = down.astype(np.float16)
    return arrays


class DecoderAdapter:
    """Trains low-rank decoder deltas and the style for one reference (see module docstring).

    `fitter` holds the reference prepared by the style fit; `speak_and_transcribe(style,
    deltas)` speaks HOLDOUT_SENTENCE with those weights and returns Whisper's transcript."""

    def __init__(
        self,
        model: KokoroModel,
        fitter: StyleFitter,
        speak_and_transcribe: Callable[[np.ndarray, dict[str, Tensor]], str],
        config: AdaptConfig,
    ) -> None:
        self.model, self.fitter, self.config = model, fitter, config
        self.speak_and_transcribe = speak_and_transcribe
        self.weights = adaptable_weights(model, config.min_weight_size)
        frames = fitter.frames
        crop = max(8, round(config.crop_seconds * RATE / FRAME))
        most = round(config.max_holdout_seconds * RATE / FRAME)
        holdout = min(round(frames * config.holdout_fraction), most)
        if frames - holdout < crop:  # too short to hold anything out: train on all of it
            holdout = 0
        self.crop = min(crop, frames - holdout)
        self.train_frames = frames - holdout
        self.holdout = holdout

    def _decode_with(self, deltas: dict[str, Tensor]) -> Callable[..., Tensor]:
        params = {n: w + deltas[n] for n, w in self.weights.items() if n in deltas}
        model = self.model

        def decode(aligned: Tensor, f0: Tensor, energy: Tensor, style: Tensor) -> Tensor:
            decoder_style, _ = model.split_style(style)
            return torch.func.functional_call(
                model.decoder, params, (aligned, f0, energy, decoder_style), strict=False
            )

        return decode

    def _holdout_loss(self, style: Tensor, deltas: dict[str, Tensor]) -> float | None:
        if not self.holdout:
            return None
        with torch.no_grad():
            loss = self.fitter.losses(
                style, self.train_frames, self.holdout, decode=self._decode_with(deltas)
            )
        return float(loss["mel"])

    def adapt(
        self, start_style: np.ndarray, progress: ProgressCallback | None = None
    ) -> AdaptResult:
        from deepfake_studio.evaluation.asr import word_error_rate

        cfg = self.config
        t0 = time.monotonic()
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        style = torch.tensor(np.asarray(start_style, np.float32)[None], requires_grad=True)
        ups: dict[str, Tensor] = {}  # rank 0: the whole deltas
        downs: dict[str, Tensor] = {}
        for name, w in self.weights.items():
            rest = int(np.prod(w.shape[1:]))
            if cfg.rank == 0:
                ups[name] = torch.zeros(w.shape, requires_grad=True)
                continue
            # LoRA's start: the product is zero, and `down` spreads the gradient at unit scale.
            ups[name] = torch.zeros(w.shape[0], cfg.rank, requires_grad=True)
            downs[name] = (torch.randn(cfg.rank, rest) / np.sqrt(rest)).requires_grad_(True)
        optimiser = torch.optim.Adam(
            [
                {"params": [style], "lr": cfg.style_learning_rate},
                {"params": [*ups.values(), *downs.values()], "lr": cfg.learning_rate},
            ]
        )

        def deltas() -> dict[str, Tensor]:
            if cfg.rank == 0:
                return ups
            return {n: lowrank_delta(ups[n], downs[n], w.shape) for n, w in self.weights.items()}

        def check(step: int) -> AdaptCheck:
            current = {n: d.detach() for n, d in deltas().items()}
            loss = self._holdout_loss(style.detach(), current)
            with torch.no_grad():
                heard = self.speak_and_transcribe(style.detach()[0].numpy(), current)
            wer = word_error_rate(HOLDOUT_SENTENCE, heard)
            return AdaptCheck(step, None if loss is None else round(loss, 4), round(wer, 4), heard)

        def snapshot() -> tuple[np.ndarray, dict[str, tuple[np.ndarray, ...]]]:
            return style.detach()[0].numpy().copy(), {
                n: tuple(t[n].detach().numpy().copy() for t in (ups, downs) if n in t)
                for n in self.weights
            }

        trainable = [p for p in self.model.parameters() if p.requires_grad]
        for p in trainable:  # the shared model stays as it is; only the factors learn
            p.requires_grad_(False)
        checks = [check(0)]
        best_check, (best_style, _) = checks[0], snapshot()
        best_factors: dict[str, tuple[np.ndarray, ...]] = {}
        allowed_wer = checks[0].wer + cfg.max_wer_rise
        history: list[float] = []
        stale = 0
        try:
            for step in range(1, cfg.steps + 1):
                a = int(rng.integers(0, self.train_frames - self.crop + 1))
                loss = self.fitter.losses(style, a, self.crop, decode=self._decode_with(deltas()))
                optimiser.zero_grad()
                loss["total"].backward()
                optimiser.step()
                history.append(round(loss["total"].item(), 4))
                if progress:
                    progress(step / cfg.steps, f"adapting the decoder: step {step}/{cfg.steps}")
                if step % cfg.check_every and step != cfg.steps:
                    continue
                result = check(step)
                checks.append(result)
                # Without a held-out slice (a short reference) only the guard can say no.
                closer = (
                    result.holdout_loss is None
                    or best_check.holdout_loss is None
                    or result.holdout_loss < best_check.holdout_loss
                )
                if result.wer <= allowed_wer and closer:
                    best_check, stale = result, 0
                    best_style, best_factors = snapshot()
                else:
                    stale += 1
                    if stale >= cfg.patience:
                        break
        finally:
            for p in trainable:
                p.requires_grad_(True)
        whole = {n: f[0] for n, f in best_factors.items() if len(f) == 1}
        return AdaptResult(
            style=best_style,
            factors={n: (f[0], f[1]) for n, f in best_factors.items() if len(f) == 2},
            whole=whole,
            kept_step=best_check.step,
            checks=checks,
            train_losses=history,
            seconds=time.monotonic() - t0,
            config=cfg,
        )
