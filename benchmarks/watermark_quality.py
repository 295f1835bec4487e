"""How much each audio watermark layer changes the sound, by PESQ (issue 22: no listening test).

    .venv/bin/pip install pesq==0.0.4   # ITU-T P.862 (builds from source; benchmark-only)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/watermark_quality.py [--overwrite]  (~3 min)

Wideband PESQ (P.862.2, 16 kHz) of each marked clip against the same clip unmarked, for
PerthNet alone, the spread-spectrum layer alone (the shipped v2 and the first v1 settings) and
both layers as the studio embeds them. 4.64 is PESQ-WB's ceiling (identical files). PESQ is a
model of a listening test, not one: it says how far the marked clip is from the unmarked one,
not whether a listener would notice. The clips: the short test-speaker crops, Kokoro and Piper
outputs of `watermark_attacks.py`, normalised to -20 LUFS.
Writes benchmarks/watermark_quality.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from _output import add_overwrite_flag, refuse_to_overwrite
from watermark_attacks import real_crops, synthetic, write_report

from deepfake_studio.audio import Audio, normalize_loudness, resample
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.provenance import AudioWatermarker
from deepfake_studio.provenance import spread_watermark as spread

OUT = Path(__file__).resolve().parent
KEY = b"watermark quality benchmark key"
V1 = replace(spread.SpreadSpectrumConfig(), chip_hz=125.0, depth_db=3.0)  # session 10's layer


def markers() -> dict[str, tuple[str, Callable[[Audio], Audio]]]:
    perthnet = AudioWatermarker()
    both = AudioWatermarker(key=KEY)
    v2 = spread.SpreadSpectrumWatermark(KEY)
    v1 = spread.SpreadSpectrumWatermark(KEY, V1)
    return {
        "perthnet": ("PerthNet alone", perthnet.embed),
        "spread_v1": (
            "spread spectrum v1 (125 Hz chips, 3 dB)",
            lambda a: a.with_samples(v1.embed(a.samples, a.sample_rate)),
        ),
        "spread_v2": (
            "spread spectrum v2, shipped (175 Hz chips, 4 dB)",
            lambda a: a.with_samples(v2.embed(a.samples, a.sample_rate)),
        ),
        "both": ("both layers, as the studio embeds them", both.embed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", type=int, default=40)
    parser.add_argument("--synthetic", type=int, default=20)
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--out", type=Path, default=OUT)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    try:
        from pesq import pesq
    except ImportError:
        raise SystemExit(
            "error: needs the pesq package: .venv/bin/pip install pesq==0.0.4"
        ) from None
    outputs = [args.out / "watermark_quality.json", args.out / "watermark_quality.md"]
    refuse_to_overwrite(outputs, args.overwrite)
    started, load = time.time(), os.getloadavg()[0]
    clips = real_crops(args.real, args.seed) + synthetic(args.synthetic)
    scores: dict[str, dict[str, list[float]]] = {}
    for name, (_, embed) in markers().items():
        by_source: dict[str, list[float]] = {}
        for source, _, clip in clips:
            plain = resample(normalize_loudness(clip, -20.0), 16_000)
            marked = resample(embed(normalize_loudness(clip, -20.0)), 16_000)
            value = pesq(16_000, plain.samples.astype(np.float64), marked.samples, "wb")
            by_source.setdefault(source, []).append(float(value))
        scores[name] = by_source
        print(name, {s: round(statistics.median(v), 3) for s, v in by_source.items()}, flush=True)
    result = {
        "about": "benchmarks/watermark_quality.py (issue 22)",
        "cpu": cpu_model(),
        "load_at_start": load,
        "layers": {k: v[0] for k, v in markers().items()},
        "clips": {s: len(v) for s, v in next(iter(scores.values())).items()},
        "pesq_wb": scores,
        "minutes": (time.time() - started) / 60,
    }
    write_report(outputs, result, markdown(result))


def markdown(r: dict) -> str:  # type: ignore[type-arg]
    sources = list(r["clips"])
    lines = [
        "# How much each watermark layer changes the sound (PESQ-WB, issue 22)",
        "",
        f"`benchmarks/watermark_quality.py` on {r['cpu']} (load {r['load_at_start']:.1f}), "
        f"{r['minutes']:.1f} min. Wideband PESQ (ITU-T P.862.2, `pesq` 0.0.4) of each marked "
        "clip against the same clip unmarked; 4.64 is the ceiling (no change). Clips: "
        + ", ".join(f"{n} {s}" for s, n in r["clips"].items())
        + " (test-speaker crops of 3-5 s and short Kokoro/Piper outputs, -20 LUFS). PESQ models "
        "a listening test; it is not one.",
        "",
        "| layer | median, all | lowest | " + " | ".join(f"median {s}" for s in sources) + " |",
        "|---|---|---|" + "---|" * len(sources),
    ]
    for name, label in r["layers"].items():
        per = r["pesq_wb"][name]
        every = [x for v in per.values() for x in v]
        cells = " | ".join(f"{statistics.median(per[s]):.2f}" for s in sources)
        lines.append(f"| {label} | {statistics.median(every):.2f} | {min(every):.2f} | {cells} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
