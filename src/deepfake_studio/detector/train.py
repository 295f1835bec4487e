"""Train SpecRNet-lite on a built data set, calibrate it on dev, export the ONNX model.

    train clips (waveforms, in memory) ─► random 3 s crops ─► cheap random augmentation
    (augment_online) ─► LFCC (torch twin of features.lfcc) ─► random time masks
    ─► AdamW, class-balanced BCE ─► after every epoch: dev EER, `last.pt` (+ `best.pt`)
    ─► best epoch ─► Platt calibration + threshold on dev ─► detector.onnx + detector.json

Dev clips are scored from features.npy (cached in the data dir, computed once), and so are the
training crops when `online_augment` is off.

Seeded (torch, numpy, crop order), so the same data and config give the same weights on the
same machine; `resume=True` continues from `last.pt` after an interruption.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from deepfake_studio.audio import Audio
from deepfake_studio.configs import config_from_dict
from deepfake_studio.detector.augment import augment_online
from deepfake_studio.detector.data import read_manifest
from deepfake_studio.detector.features import (
    FeatureConfig,
    fit_frames,
    lfcc,
    lfcc_batch,
    window_starts,
)
from deepfake_studio.detector.metrics import equal_error_rate, rates_at
from deepfake_studio.detector.model import (
    ModelConfig,
    SpecRNetLite,
    count_parameters,
    freeze_batchnorm,
    load_onnx_weights,
    one_class_loss,
)
from deepfake_studio.errors import StudioError
from deepfake_studio.text import plural

Log = Callable[[str], None]


@dataclass(frozen=True)
class WindowConfig:
    """How audio is cut into the windows the network scores (training crops and inference)."""

    window_s: float = 3.0
    hop_s: float = 1.5
    min_speech_s: float = 0.5  # windows with less detected speech do not count toward a file

    def frames(self, features: FeatureConfig) -> tuple[int, int]:
        """(window, hop) in feature frames."""
        per_s = features.sample_rate / features.hop_length
        return round(self.window_s * per_s) + 1, round(self.hop_s * per_s)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults trained the shipped model."""

    epochs: int = 30
    clips_per_epoch: int | None = 2400  # a random subset each epoch (None: all train clips)
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2
    exclude_generators: tuple[str, ...] = ()  # left out of train and dev (leave-one-out runs)
    augmented: bool = True  # also train on the augmented copies
    online_augment: bool = True  # augment every training crop afresh (noise, pitch, band, ...)
    rawboost: float = 0.0  # share of training crops first distorted by RawBoost (augment.py)
    # Real clips whose manifest `source` starts with one of these are left out of train and dev
    # (e.g. "alphanumeric/": held-out recording conditions for measuring false positives).
    exclude_real_sources: tuple[str, ...] = ()
    time_masks: int = 2  # SpecAugment-style masks per crop (0: none) ...
    time_mask_frames: int = 20  # ... each up to this many frames (10 ms each) wide
    # Threshold: the lowest with at most this share of real dev clips flagged (issue 5's FPR
    # target; at 1 % the threshold sat on two odd dev recordings and missed 26 % of test fakes).
    max_dev_fpr: float = 0.02
    # Fine-tuning: start from an exported detector.onnx (e.g. the shipped weights, which exist
    # only as ONNX) instead of random weights; its BatchNorm statistics stay frozen, because
    # the export folded four BatchNorms into convolutions (model.load_onnx_weights).
    init_onnx: str = ""
    # Top-level modules of the network that learn (empty: all), e.g. ("gru", "head"): a
    # fine-tune that keeps the shipped convolutional front end, and with it the features real
    # speech gets, and adapts only the recurrent part and the head. The rest stay in eval mode.
    trainable: tuple[str, ...] = ()
    model: ModelConfig = field(default_factory=ModelConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    windows: WindowConfig = field(default_factory=WindowConfig)


def config_of(card: dict[str, object]) -> TrainConfig:
    """The TrainConfig a model card (detector.json) was trained with (leave-one-out runs of an
    evaluated model are trained the same way)."""
    values = {**card["train"], "model": card["model"], "features": card["features"]}  # type: ignore[dict-item]
    return config_from_dict(TrainConfig, values, "detector.json")


# -- features ----------------------------------------------------------------------------------
def load_features(
    data_dir: Path, config: FeatureConfig, log: Log = print
) -> tuple[list[dict[str, object]], np.ndarray]:
    """Usable manifest rows and their LFCCs (N, n_lfcc, frames), cached as features.npy."""
    data_dir = Path(data_dir)
    rows = [r for r in read_manifest(data_dir) if "error" not in r]
    if not rows:
        raise StudioError(f"no clips in {data_dir} (run: deepfake-studio detector build-data)")
    cache, index_file = data_dir / "features.npy", data_dir / "features.json"
    ids = [str(r["id"]) for r in rows]
    meta = {"ids": ids, "features": asdict(config)}
    if cache.exists() and index_file.exists() and json.loads(index_file.read_text()) == meta:
        return rows, np.load(cache, mmap_mode="r")
    import soundfile as sf

    log(f"computing LFCCs of {plural(len(rows), 'clip')} (cached in {cache.name})")
    first = lfcc(sf.read(str(data_dir / str(rows[0]["path"])), dtype="float32")[0], config)
    feats = np.zeros((len(rows), *first.shape), np.float16)
    for i, row in enumerate(rows):
        samples, _ = sf.read(str(data_dir / str(row["path"])), dtype="float32")
        f = lfcc(samples, config)[:, : first.shape[1]]
        feats[i, :, : f.shape[1]] = f
    np.save(cache, feats)
    index_file.write_text(json.dumps(meta) + "\n", encoding="utf-8")
    return rows, feats


def select(rows: list[dict[str, object]], split: str, config: TrainConfig) -> np.ndarray:
    """Indices of a split's rows, without excluded generators (and augmented copies, if off)."""
    keep = [
        i
        for i, r in enumerate(rows)
        if r["split"] == split
        and r["generator"] not in config.exclude_generators
        and (config.augmented or r["augment"] == "none")
        and not (
            r["label"] == "bonafide"
            and str(r.get("source", "")).startswith(tuple(config.exclude_real_sources))
        )
    ]
    return np.array(keep, dtype=np.int64)


def load_waveforms(data_dir: Path, rows: list[dict[str, object]], indices: np.ndarray) -> list:
    """The clips of `indices` as float32 arrays (a few hundred MB for thousands of 4 s clips)."""
    import soundfile as sf

    folder = Path(data_dir)
    return [sf.read(str(folder / str(rows[i]["path"])), dtype="float32")[0] for i in indices]


# -- batches -----------------------------------------------------------------------------------
def cached_crops(
    feats: np.ndarray, batch: np.ndarray, window: int, rng: np.random.Generator
) -> torch.Tensor:
    """A random window of every clip's cached LFCCs (time shift is the only augmentation)."""
    crops = []
    for i in batch:
        f = fit_frames(np.asarray(feats[i], np.float32), window)
        s = int(rng.integers(0, f.shape[1] - window + 1))
        crops.append(f[:, s : s + window])
    return torch.from_numpy(np.stack(crops))


def augmented_crops(
    waves: list[np.ndarray], positions: np.ndarray, config: TrainConfig, rng: np.random.Generator
) -> torch.Tensor:
    """LFCCs of a random, freshly augmented window of every clip (at `positions` in `waves`)."""
    features = config.features
    window, _ = config.windows.frames(features)
    length = (window - 1) * features.hop_length  # centred framing: this gives `window` frames
    crops = []
    for k in positions:
        w = waves[k]
        if len(w) < length:  # short clips are repeated, as everywhere else
            w = np.tile(w, -(-length // len(w)))
        s = int(rng.integers(0, len(w) - length + 1))
        crop = augment_online(Audio(w[s : s + length], features.sample_rate), rng, config.rawboost)
        crops.append(crop.samples[:length])
    return lfcc_batch(torch.from_numpy(np.stack(crops)), features)


def mask_time(x: torch.Tensor, config: TrainConfig, rng: np.random.Generator) -> torch.Tensor:
    """SpecAugment time masks: spans of frames set to the crop's mean (per coefficient)."""
    if config.time_masks <= 0:
        return x
    x = x.clone()
    mean = x.mean(dim=2, keepdim=True)
    frames = x.shape[2]
    for b in range(x.shape[0]):
        for _ in range(config.time_masks):
            width = int(rng.integers(0, config.time_mask_frames + 1))
            start = int(rng.integers(0, frames - width + 1))
            x[b, :, start : start + width] = mean[b]
    return x


# -- scoring -----------------------------------------------------------------------------------
def clip_logits(
    model: nn.Module, feats: np.ndarray, indices: np.ndarray, config: TrainConfig
) -> np.ndarray:
    """Mean window logit per clip (the same windows `infer.Detector` uses)."""
    window, hop = config.windows.frames(config.features)
    model.eval()
    out = np.zeros(len(indices), np.float32)
    with torch.inference_mode():
        for start in range(0, len(indices), 64):
            batch = indices[start : start + 64]
            x = np.stack([fit_frames(np.asarray(feats[i], np.float32), window) for i in batch])
            starts = window_starts(x.shape[-1], window, hop)
            logits = [model(torch.from_numpy(x[:, :, s : s + window])) for s in starts]
            out[start : start + len(batch)] = torch.stack(logits).mean(0).numpy()
    return out


def labels_of(rows: list[dict[str, object]], indices: np.ndarray) -> np.ndarray:
    return np.array([rows[i]["label"] == "spoof" for i in indices], dtype=bool)


# -- calibration -------------------------------------------------------------------------------
def fit_calibration(logits: np.ndarray, is_spoof: np.ndarray) -> tuple[float, float]:
    """Platt scaling p = sigmoid(a·logit + b), fitted on dev with both classes weighted equally
    (the dev set's spoof share says nothing about the share a user will see)."""
    x = torch.tensor(logits, dtype=torch.float64)
    y = torch.tensor(is_spoof, dtype=torch.float64)
    weight = torch.where(y > 0, 0.5 / y.sum(), 0.5 / (1 - y).sum())
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=200)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        z = params[0] * x + params[1]
        loss = (
            weight * nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
        ).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(params[0].item()), float(params[1].item())


def probability(logits: np.ndarray, calibration: tuple[float, float]) -> np.ndarray:
    a, b = calibration
    return 1.0 / (1.0 + np.exp(-(a * np.asarray(logits, np.float64) + b)))


def choose_threshold(bona_fide_p: np.ndarray, max_fpr: float) -> float:
    """The lowest probability threshold (≥ 0.5) that flags at most `max_fpr` of real dev clips:
    calling real speech fake is the costlier error."""
    allowed = int(np.floor(max_fpr * len(bona_fide_p)))
    ranked = np.sort(bona_fide_p)[::-1]
    above = float(ranked[allowed]) if allowed < len(ranked) else 0.0
    return float(min(0.999, max(0.5, above)))


# -- training ----------------------------------------------------------------------------------
def freeze_all_but(model: nn.Module, trainable: tuple[str, ...]) -> list[nn.Module]:
    """Stop gradients to every top-level module not named in `trainable` (empty: train all);
    returns the frozen modules."""
    if not trainable:
        return []
    children = dict(model.named_children())
    unknown = [name for name in trainable if name not in children]
    if unknown:
        raise StudioError(
            f"trainable: no module {', '.join(map(repr, unknown))} "
            f"(the model has {', '.join(children)})"
        )
    frozen = [module for name, module in children.items() if name not in trainable]
    for module in frozen:
        module.requires_grad_(False)
    return frozen


def _seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def train(
    data_dir: Path,
    out_dir: Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    log: Log = print,
) -> dict[str, object]:
    """Train, keep the best dev epoch, calibrate, export; returns the model card (detector.json)."""
    config = config or TrainConfig()
    if config.model.n_lfcc != config.features.n_lfcc:  # both are in a --config file's reach
        raise StudioError(
            f"model.n_lfcc ({config.model.n_lfcc}) must equal features.n_lfcc "
            f"({config.features.n_lfcc}): the network reads those LFCCs"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    rows, feats = load_features(Path(data_dir), config.features, log)
    train_idx, dev_idx = select(rows, "train", config), select(rows, "dev", config)
    if len(train_idx) == 0 or len(dev_idx) == 0:
        raise StudioError(f"{data_dir} has no train or no dev clips")
    train_y = labels_of(rows, train_idx)
    dev_y = labels_of(rows, dev_idx)
    if train_y.all() or not train_y.any() or dev_y.all() or not dev_y.any():
        raise StudioError("train and dev each need real and synthetic clips")

    rng = _seed_everything(config.seed)
    model = SpecRNetLite(config.model)
    if config.init_onnx:
        load_onnx_weights(model, config.init_onnx)
    frozen = freeze_all_but(model, config.trainable)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
    )
    # Real clips are fewer than spoofs: weight them up so both classes count the same.
    pos_weight = torch.tensor((~train_y).sum() / max(1, train_y.sum()), dtype=torch.float32)
    if config.model.one_class_dim:
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = partial(
            one_class_loss, config=config.model, spoof_weight=float(pos_weight)
        )
    else:
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    start_epoch, best = 0, {"epoch": -1, "dev_eer": 2.0}
    history: list[dict[str, float]] = []
    last = out_dir / "last.pt"
    if resume and last.exists():
        state = torch.load(last, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, best, history = state["epoch"] + 1, state["best"], state["history"]
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = state["numpy_rng"]
        log(f"resumed after epoch {start_epoch} (best dev EER {best['dev_eer']:.4f})")

    window, _ = config.windows.frames(config.features)
    waves = load_waveforms(Path(data_dir), rows, train_idx) if config.online_augment else []
    log(f"{count_parameters(model):,} parameters; {len(train_idx)} train clips, {len(dev_idx)} dev")
    for epoch in range(start_epoch, config.epochs):
        model.train()
        if config.init_onnx:
            freeze_batchnorm(model)
        for module in frozen:  # no BatchNorm statistics (or dropout) move in a frozen part
            module.eval()
        started, total = time.monotonic(), 0.0
        order = rng.permutation(len(train_idx))[: config.clips_per_epoch]
        # Cosine decay over all epochs (computed, so a resumed run continues the same schedule).
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * 0.5 * (1 + np.cos(np.pi * epoch / config.epochs))
        # A bar per epoch on a terminal (disable=None hides it in logs and tests).
        batches = tqdm(
            range(0, len(order), config.batch_size),
            desc=f"epoch {epoch + 1}/{config.epochs}",
            leave=False,
            disable=None,
            file=sys.stderr,
        )
        for b in batches:
            positions = order[b : b + config.batch_size]
            batch = train_idx[positions]
            if config.online_augment:
                x = augmented_crops(waves, positions, config, rng)
            else:
                x = cached_crops(feats, batch, window, rng)
            x = mask_time(x, config, rng)
            y = torch.from_numpy(labels_of(rows, batch).astype(np.float32))
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        logits = clip_logits(model, feats, dev_idx, config)
        dev_eer, _ = equal_error_rate(logits[~dev_y], logits[dev_y])
        entry = {"epoch": epoch, "loss": total / len(order), "dev_eer": dev_eer}
        history.append(entry)
        if dev_eer <= best["dev_eer"]:
            best = {"epoch": epoch, "dev_eer": dev_eer}
            torch.save({"model": model.state_dict(), "epoch": epoch}, out_dir / "best.pt")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
                "best": best,
                "history": history,
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": rng.bit_generator.state,
            },
            last,
        )
        log(
            f"epoch {epoch + 1}/{config.epochs}  loss {entry['loss']:.4f}  "
            f"dev EER {100 * dev_eer:.2f} %  ({time.monotonic() - started:.0f} s)"
        )

    model.load_state_dict(torch.load(out_dir / "best.pt", weights_only=True)["model"])
    logits = clip_logits(model, feats, dev_idx, config)
    calibration = fit_calibration(logits, dev_y)
    p = probability(logits, calibration)
    threshold = choose_threshold(p[~dev_y], config.max_dev_fpr)
    fpr, miss = rates_at(p[~dev_y], p[dev_y], threshold)
    card = {
        "model": asdict(config.model),
        "features": asdict(config.features),
        "windows": asdict(config.windows),
        "calibration": {"a": calibration[0], "b": calibration[1]},
        "threshold": threshold,
        "parameters": count_parameters(model),
        "dev": {"eer": best["dev_eer"], "fpr_at_threshold": fpr, "miss_at_threshold": miss},
        "best_epoch": best["epoch"],
        "train": {k: v for k, v in asdict(config).items() if k not in ("model", "features")},
        "history": history,
    }
    export_onnx(model, out_dir / "detector.onnx", config)
    (out_dir / "detector.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    log(f"best epoch {best['epoch'] + 1}: dev EER {100 * best['dev_eer']:.2f} %, threshold "
        f"{threshold:.3f} (dev FPR {100 * fpr:.2f} %, miss {100 * miss:.2f} %)")  # fmt: skip
    return card


def export_onnx(model: nn.Module, path: Path, config: TrainConfig) -> Path:
    """ONNX with dynamic batch and time axes (input `lfcc` (B, n_lfcc, T), output `logit` (B,))."""
    window, _ = config.windows.frames(config.features)
    model.eval()
    example = torch.zeros(1, config.model.n_lfcc, window)
    # The tracer warns about the GRU's shape checks and batch sizes; the export is checked
    # against torch on other batch sizes and lengths in tests/detector.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _export(model, example, path)
    return path


def _export(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["lfcc"],
        output_names=["logit"],
        dynamic_axes={"lfcc": {0: "batch", 2: "frames"}, "logit": {0: "batch"}},
        opset_version=17,
        dynamo=False,  # the TorchScript exporter needs no onnxscript and handles the GRU
    )
