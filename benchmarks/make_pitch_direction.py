"""Reproduce the fit's pitch direction: `PITCH_DIRECTION_B64` / `PITCH_SLOPE` in kokoro/fit.py.

    nice -n 10 .venv/bin/python benchmarks/make_pitch_direction.py [--voices 240] [--seed 0]

Makes `--voices` random Kokoro voices (a Dirichlet mixture of the five bundled packs plus a
random delta along directions scaled by the packs' per-dimension spread, clipped to the range
the fit allows), has each say the fit's probe sentence(s), measures the median pitch with the
fit's own estimator (`median_pitch`) and fits `pitch_direction_from` (ridge regression of
pitch on the style tables' row-means). Prints the float16 base64 of the direction and the
slope to paste into fit.py, the k-fold cross-validated error, and how the new direction
compares with the shipped one (cosine, slope, and the shipped constants' error on these
voices). Writes benchmarks/pitch_direction.{json,md}. Kokoro runs on one thread: ~1 s of
compute per voice per probe sentence on an idle Xeon core.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from deepfake_studio.synthesizer.kokoro import KokoroConfig, KokoroEngine
from deepfake_studio.synthesizer.kokoro.fit import (
    PITCH_SLOPE,
    PROBE_SENTENCES,
    _plausible_range,
    median_pitch,
    pitch_direction,
    pitch_direction_from,
)

OUT = Path(__file__).resolve().parent / "pitch_direction"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402


def random_tables(
    packs: dict[str, np.ndarray], n: int, delta_scale: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """`n` random [510, 256] style tables around the packs, inside the fit's plausible range.

    Mixtures alone span only 4 directions; the random delta (per dimension scaled by the
    packs' spread, i.e. by how much Kokoro uses that dimension) covers the other 252.
    """
    stacked = np.stack([packs[k] for k in sorted(packs)]).astype(np.float64)  # [5, 510, 256]
    spread = stacked.mean(axis=1).std(axis=0)
    low, high = _plausible_range(packs, 0.5)
    tables = []
    for _ in range(n):
        weights = rng.dirichlet(np.ones(len(stacked)))
        delta = rng.standard_normal(spread.shape) * spread * delta_scale
        tables.append(np.clip(np.tensordot(weights, stacked, 1) + delta, low, high))
    return [t.astype(np.float32) for t in tables]


def cross_validated_error(
    styles: np.ndarray, semitones: np.ndarray, ridge: float, folds: int, seed: int
) -> tuple[float, float]:
    """(MAE, RMSE) in semitones of the ridge fit's predictions on held-out folds."""
    order = np.random.default_rng(seed).permutation(len(styles))
    errors = np.empty(len(styles))
    for part in np.array_split(order, folds):
        train = np.setdiff1d(order, part)
        direction, slope = pitch_direction_from(styles[train], semitones[train], ridge)
        centre_x, centre_y = styles[train].mean(axis=0), semitones[train].mean()
        predicted = centre_y + slope * (styles[part] - centre_x) @ direction
        errors[part] = predicted - semitones[part]
    return float(np.mean(np.abs(errors))), float(np.sqrt(np.mean(errors**2)))


def shipped_error(styles: np.ndarray, semitones: np.ndarray) -> tuple[float, float]:
    """(MAE, RMSE) of the shipped direction and slope on these voices (intercept refitted)."""
    predicted = PITCH_SLOPE * styles @ pitch_direction()
    errors = predicted - semitones
    errors -= errors.mean()  # the constant says nothing about the absolute pitch
    return float(np.mean(np.abs(errors))), float(np.sqrt(np.mean(errors**2)))


def encode(direction: np.ndarray) -> str:
    """The direction as fit.py stores it: float16, little-endian, base64."""
    return base64.b64encode(direction.astype("<f2").tobytes()).decode("ascii")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voices", type=int, default=240)
    parser.add_argument("--sentences", type=int, default=1, help="probe sentences per voice")
    parser.add_argument("--delta-scale", type=float, default=1.0)
    parser.add_argument("--ridge", type=float, default=1.0)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    refuse_to_overwrite([OUT.with_suffix(".json"), OUT.with_suffix(".md")], args.overwrite)

    engine = KokoroEngine(KokoroConfig(threads=1))
    rng = np.random.default_rng(args.seed)
    tables = random_tables(engine.style_packs, args.voices, args.delta_scale, rng)
    probes = [" ".join(engine.phonemes(s)) for s in PROBE_SENTENCES[: args.sentences]]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    styles, semitones = [], []
    for i, table in enumerate(tables):
        audio = np.concatenate([engine.synthesize_phonemes(p, table, 1.0) for p in probes])
        pitch = median_pitch(audio, engine.sample_rate)
        if pitch is not None:  # unvoiced output says nothing about pitch
            styles.append(table.mean(axis=0).astype(np.float64))
            semitones.append(pitch)
        if (i + 1) % 20 == 0:
            print(f"{i + 1}/{len(tables)} voices, {time.perf_counter() - t0:.0f} s", flush=True)
    x, y = np.stack(styles), np.array(semitones)

    direction, slope = pitch_direction_from(x, y, args.ridge)
    cv = {
        str(r): cross_validated_error(x, y, r, args.folds, args.seed)
        for r in sorted({0.1, 0.3, 1.0, 3.0, 10.0, args.ridge})
    }
    shipped = pitch_direction()
    result = {
        "voices": args.voices,
        "voiced": len(y),
        "sentences": args.sentences,
        "delta_scale": args.delta_scale,
        "ridge": args.ridge,
        "folds": args.folds,
        "seed": args.seed,
        "pitch_semitones_re_100hz": {
            "mean": float(y.mean()),
            "std": float(y.std()),
            "min": float(y.min()),
            "max": float(y.max()),
        },
        "slope": slope,
        "direction_b64": encode(direction),
        "cv_mae_rmse_by_ridge": cv,
        "shipped_slope": PITCH_SLOPE,
        "cosine_to_shipped": float(direction @ shipped),
        "shipped_mae_rmse_on_these_voices": shipped_error(x, y),
        "seconds": round(time.perf_counter() - t0, 1),
        "load_average_at_start": load,
        "machine": platform.platform(),
    }
    OUT.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    OUT.with_suffix(".md").write_text(report(result))
    print(report(result))


def report(r: dict) -> str:
    mae, rmse = r["cv_mae_rmse_by_ridge"][str(r["ridge"])]
    s_mae, s_rmse = r["shipped_mae_rmse_on_these_voices"]
    p = r["pitch_semitones_re_100hz"]
    cv_rows = "\n".join(
        f"| {k} | {v[0]:.3f} | {v[1]:.3f} |" for k, v in r["cv_mae_rmse_by_ridge"].items()
    )
    return f"""# Kokoro's pitch direction in style space (`benchmarks/make_pitch_direction.py`)

{r["voiced"]} of {r["voices"]} random voices voiced; {r["sentences"]} probe sentence(s) each;
median pitch {p["mean"]:.2f} ± {p["std"]:.2f} semitones re 100 Hz (range {p["min"]:.2f} to
{p["max"]:.2f}). Ridge {r["ridge"]}, seed {r["seed"]}, {r["seconds"]:.0f} s, load average
{r["load_average_at_start"]:.1f} at the start, {r["machine"]}.

| | this run | shipped (fit.py) |
|---|---|---|
| slope, semitones per unit of style norm | {r["slope"]:.3f} | {r["shipped_slope"]:.3f} |
| cosine between the directions | {r["cosine_to_shipped"]:.3f} | |
| error on these voices, MAE / RMSE (semitones) | {mae:.3f} / {rmse:.3f} ({r["folds"]}-fold CV) \
| {s_mae:.3f} / {s_rmse:.3f} (intercept refitted) |

Cross-validated error by ridge strength (semitones):

| ridge | MAE | RMSE |
|---|---|---|
{cv_rows}

Direction (float16, base64):

```
{r["direction_b64"]}
```
"""


if __name__ == "__main__":
    main()
