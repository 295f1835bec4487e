"""Does the studio's watermark change what the detector says? EER with and without it.

    .venv/bin/python benchmarks/watermark_detector_effect.py DATA_DIR

DATA_DIR is a dataset from `deepfake-studio detector build-data`. Its clean (unaugmented) test
clips are scored by the shipped detector; every synthetic clip that was generated without the
watermark is scored again after `AudioWatermarker.embed`. EER is against the same real test
clips both times. Writes benchmarks/watermark_detector_effect.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from deepfake_studio.audio import load_audio
from deepfake_studio.detector import Detector
from deepfake_studio.detector.metrics import equal_error_rate
from deepfake_studio.provenance import AudioWatermarker

OUT = Path(__file__).resolve().parent / "watermark_detector_effect"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402


def main(data: Path) -> None:
    lines = (data / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    test = [r for r in rows if r["split"] == "test" and r["augment"] == "none"]
    detector, marker = Detector(), AudioWatermarker()
    real = np.array(
        [
            detector.detect(load_audio(data / r["path"])).probability
            for r in test
            if r["label"] == "bonafide"
        ]
    )
    plain, marked, generators = [], [], []
    for r in test:
        if r["label"] == "bonafide" or r.get("watermark"):
            continue
        clip = load_audio(data / r["path"])
        plain.append(detector.detect(clip).probability)
        marked.append(detector.detect(marker.embed(clip)).probability)
        generators.append(str(r["generator"]))
    plain_a, marked_a, gen = np.array(plain), np.array(marked), np.array(generators)
    missed = {
        g: [int((plain_a[gen == g] < detector.threshold).sum()),
            int((marked_a[gen == g] < detector.threshold).sum()),
            int((gen == g).sum())]
        for g in sorted(set(generators))
    }  # fmt: skip
    result = {
        "real_clips": len(real),
        "synthetic_clips": len(plain),
        "eer_without_watermark": equal_error_rate(real, plain_a)[0],
        "eer_with_watermark": equal_error_rate(real, marked_a)[0],
        "missed_at_threshold_without": float((plain_a < detector.threshold).mean()),
        "missed_at_threshold_with": float((marked_a < detector.threshold).mean()),
        "median_abs_probability_change": float(np.median(np.abs(marked_a - plain_a))),
        "missed_by_generator": missed,  # [without, with, clips]
    }
    OUT.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    r = result
    OUT.with_suffix(".md").write_text(
        "# Watermark vs detector\n\n"
        f"Clean test clips of the detector's dataset: {r['real_clips']} real, "
        f"{r['synthetic_clips']} synthetic (8 generators, made without the watermark; scored "
        "as they are and after the studio's watermark was embedded).\n\n"
        "| | without watermark | with watermark |\n|---|---|---|\n"
        f"| EER | {100 * r['eer_without_watermark']:.1f} % | "
        f"{100 * r['eer_with_watermark']:.1f} % |\n"
        f"| synthetic missed at the shipped threshold | "
        f"{100 * r['missed_at_threshold_without']:.1f} % | "
        f"{100 * r['missed_at_threshold_with']:.1f} % |\n\n"
        "Synthetic clips missed at the shipped threshold, by generator (without / with the "
        "watermark, of all): "
        + ", ".join(f"{g} {a}/{b} of {n}" for g, (a, b, n) in missed.items())
        + ".\n\n"
        f"Median change of a clip's probability: {r['median_abs_probability_change']:.4f}. "
        f"One synthetic clip is {100 / max(1, len(plain)):.1f} points of miss rate.\n"
    )
    print(OUT.with_suffix(".md").read_text())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="folder made by detector build-data")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    refuse_to_overwrite([OUT.with_suffix(".json"), OUT.with_suffix(".md")], args.overwrite)
    main(args.data)
