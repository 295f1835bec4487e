"""The shipped detector on its frozen held-out set (issue 16, item 6).

    .venv/bin/python benchmarks/detector_heldout.py [--data detector-heldout]
    .venv/bin/python benchmarks/detector_heldout.py --model detector-run --out scratch/

Builds the set described by `src/deepfake_studio/detector/heldout.json` into `--data` (resumable;
about 15 min on 2 shared cores, most of it fitting two Kokoro clone voices), then scores every
clip with the shipped model through `infer.Detector`, exactly as `eval detect` scores the test
split. Writes benchmarks/detector_heldout.{json,md} and rewrites benchmarks/detector_eval.md
from detector_eval.json with the held-out figures next to the test ones (which were measured
after the features, checkpoint and threshold rule were chosen on those test speakers).

`--model DIR` scores a detector you trained (`detector train --out DIR`) instead of the shipped
one, and `--out DIR` writes the files there instead of benchmarks/ (a candidate's figures must
not replace the shipped model's).

The held-out set must stay out of every tuning decision: run this to report, never to choose.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from deepfake_studio.detector import heldout
from deepfake_studio.detector.data import read_manifest
from deepfake_studio.detector.evaluate import _eer_block, markdown_table, score_rows
from deepfake_studio.detector.infer import Detector, DetectorConfig
from deepfake_studio.detector.metrics import rates_at

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402

OUT = Path(__file__).resolve().parent


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("detector-heldout"))
    parser.add_argument("--shared", type=Path, default=None, help="shared data folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--model", type=Path, default=None, help="model folder (default: the shipped weights)"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the results")
    add_overwrite_flag(parser)
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    refuse_to_overwrite(
        [out / "detector_heldout.json", out / "detector_heldout.md"], args.overwrite
    )
    shared = args.shared or Path(
        os.environ.get("DEEPFAKE_STUDIO_DATA", ROOT.parent / "shared" / "data")
    )
    started = time.perf_counter()
    spec = heldout.load_spec()
    written = heldout.build(
        args.data,
        shared,
        spec,
        progress=lambda i, n, g: print(f"{i}/{n} {g}", flush=True) if i % 50 == 0 else None,
    )
    built_s = time.perf_counter() - started
    rows = [r for r in read_manifest(args.data) if r["split"] == heldout.SPLIT]
    failed = [r for r in rows if "error" in r]
    rows = [r for r in rows if "error" not in r]
    detector = Detector(DetectorConfig(weights_dir=args.model, threads=args.threads))
    t = time.perf_counter()
    p = score_rows(detector, args.data, rows)
    scored_s = time.perf_counter() - t
    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "data": str(args.data),
        "spec": "src/deepfake_studio/detector/heldout.json",
        "model": str(args.model) if args.model else "shipped (detector/weights/)",
        "threshold": detector.threshold,
        "clips_written_now": written,
        "failed_clips": [{"id": r["id"], "error": r["error"]} for r in failed],
        "build_seconds": round(built_s, 1),
        "score_seconds": round(scored_s, 1),
        "voices": spec.generators,
    }
    clean = np.array([r["augment"] == "none" for r in rows])
    neutral = np.array(["/neutral/" in str(r["source"]) for r in rows])
    real = np.array([r["label"] == "bonafide" for r in rows])
    for name, mask in (("clean", clean), ("augmented", ~clean)):
        subset = [r for r, m in zip(rows, mask, strict=True) if m]
        block = _eer_block(subset, p[mask], detector.threshold)
        fpr_neutral, _ = rates_at(p[mask & real & neutral], p[mask & ~real], detector.threshold)
        block["real_neutral"] = int((mask & real & neutral).sum())
        block["fpr_at_threshold_neutral"] = fpr_neutral
        block["flagged_real"] = int((p[mask & real] > detector.threshold).sum())
        by_emotion = {}  # EmoDB paths are emodb/EMOTION/NAME.flac
        for emotion in sorted(
            {str(r["source"]).split("/")[-2] for r in rows if r["label"] == "bonafide"}
        ):
            of = np.array([str(r["source"]).split("/")[-2] == emotion for r in rows])
            chosen = p[mask & real & of]
            by_emotion[emotion] = {
                "clips": int(chosen.size),
                "fpr_at_threshold": float(np.mean(chosen > detector.threshold)),
            }
        block["fpr_by_emotion"] = by_emotion
        result[name] = block
    result["scores"] = [
        {"id": r["id"], "generator": r["generator"], "voice": r["voice"], "p": float(s)}
        for r, s in zip(rows, p, strict=True)
    ]
    test_file = out / "detector_eval.json"
    test = json.loads(test_file.read_text(encoding="utf-8")) if test_file.exists() else None
    (out / "detector_heldout.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "detector_heldout.md").write_text(markdown(result, test), encoding="utf-8")
    if test is not None:  # the test report, now with the held-out figures next to it
        (out / "detector_eval.md").write_text(markdown_table(test, result), encoding="utf-8")
    print(markdown(result, test))
    return 0


def markdown(res: dict, test: dict | None) -> str:
    c, a = res["clean"], res["augmented"]
    lines = [
        "# Detector on its frozen held-out set (issue 16, item 6)",
        "",
        f"Generated by `benchmarks/detector_heldout.py` on {res['date']}: the model "
        f"{res.get('model', 'shipped (detector/weights/)')} (threshold "
        f"{res['threshold']:.3f}) on the set frozen in "
        "`src/deepfake_studio/detector/heldout.json`, which no tuning decision has seen. "
        f"Scoring took {res['score_seconds']:.0f} s.",
        "",
        "The test-split figures were measured **after selection**: the LFCC settings, the "
        "checkpoint and the threshold rule were chosen by comparing results on the test speakers. "
        "The held-out figures are the first the model has not been chosen on. They also differ in "
        "kind: the only real speakers outside every split are EmoDB's 10 German actors (acted "
        "emotions, 2 s clips, repeated to 4 s like every short clip), and the synthetic clips use "
        "generator settings training never saw (below), so read them as a shift test, not as a "
        "second sample of the test distribution.",
        "",
        "| | test split (after selection) | held-out, clean | held-out, augmented |",
        "|---|---|---|---|",
    ]
    if test:
        ts = test["seen"]
        lines += [
            f"| EER (pooled) | {pct(ts['clean']['eer'])} clean, {pct(ts['augmented']['eer'])} "
            f"augmented | {pct(c['eer'])} | {pct(a['eer'])} |",
            f"| false positives at the threshold | {pct(ts['clean']['fpr_at_threshold'])} clean, "
            f"{pct(ts['augmented']['fpr_at_threshold'])} augmented "
            f"({ts['clean']['real']} real clips) | {pct(c['fpr_at_threshold'])} "
            f"({c['flagged_real']} of {c['real']}) | {pct(a['fpr_at_threshold'])} "
            f"({a['flagged_real']} of {a['real']}) |",
            f"| synthetic missed at the threshold | {pct(ts['clean']['miss_at_threshold'])} clean, "
            f"{pct(ts['augmented']['miss_at_threshold'])} augmented "
            f"({ts['clean']['spoof']} clips) | {pct(c['miss_at_threshold'])} ({c['spoof']} "
            f"clips) | {pct(a['miss_at_threshold'])} |",
        ]
    lines += [
        f"| false positives, neutral EmoDB clips only | - | {pct(c['fpr_at_threshold_neutral'])} "
        f"({c['real_neutral']} clips) | {pct(a['fpr_at_threshold_neutral'])} |",
        "",
        "False positives on held-out real clips by EmoDB emotion (clean / augmented): "
        + ", ".join(
            f"{e} {pct(v['fpr_at_threshold'])} / "
            f"{pct(a['fpr_by_emotion'][e]['fpr_at_threshold'])} ({v['clips']})"
            for e, v in c["fpr_by_emotion"].items()
        )
        + ". Aroused acted speech (angry, happy) is flagged most; the training corpora hold "
        "read speech only.",
        "",
        "Per generator (held-out settings; each against all held-out real clips):",
        "",
        "| generator | held-out voices / settings | EER clean | EER augmented "
        "| missed at threshold, clean | missed, augmented |",
        "|---|---|---|---|---|---|",
    ]
    for g in sorted(c["per_generator_eer"]):
        voices = ", ".join(f"`{v}`" for v in res["voices"].get(g, []))
        lines.append(
            f"| {g} | {voices} | {pct(c['per_generator_eer'][g])} "
            f"| {pct(a['per_generator_eer'][g])} "
            f"| {pct(c['per_generator_miss_at_threshold'][g])} "
            f"| {pct(a['per_generator_miss_at_threshold'][g])} |"
        )
    n_spoof = c["spoof"] // max(1, len(c["per_generator_eer"]))
    lines += [
        "",
        f"{c['real']} real clips (every EmoDB clip of the 10 actors) and about {n_spoof} "
        "synthetic clips per generator, each clean and as one augmented copy (the training "
        "build's random chain). Per-generator rates move in steps of about "
        f"{100 / max(1, n_spoof):.0f} % (one clip in {n_spoof}).",
        "",
    ]
    if res["failed_clips"]:
        lines += [f"Clips the build could not make: {len(res['failed_clips'])}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
