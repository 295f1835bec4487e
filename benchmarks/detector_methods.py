"""Which training methods carry the detector over to generators it never saw (issue 21, item 2).

    .venv/bin/python benchmarks/detector_methods.py --data DATA --runs RUNS \
        --methods baseline rawboost --families kokoro griffin-lim world --epochs 6
    .venv/bin/python benchmarks/detector_methods.py --runs RUNS --report   # tables only

Every method is trained the same way, on the same leave-one-family-out split, for the same
number of epochs, and differs from the shipped model's training settings (its detector.json)
in one thing only (`METHODS`):

* baseline: the shipped settings;
* rawboost: half of the training crops first get a RawBoost chain (augment.rawboost);
* ocsoftmax: the one-class head and loss (model.one_class_loss) instead of BCE;
* rawboost+ocsoftmax: both.

Real speech of two recording conditions is kept out of training and dev in every run (children
of speechocean762, aged 12 or less, and the alphanumeric set's phone-microphone recordings of
Indian-accented speakers), so each run also measures false positives at its own threshold on
real speech from conditions it never saw.

For every run (method × family left out) RUNS/METHOD/FAMILY gets the model and result.json:
the left-out generators' EER against real test speech (clean and augmented copies), the pooled
EER on the generators it did see, and false positives at its threshold on real test speech and
on the held-out conditions. Runs already finished or taken by another live process (its pid
in RUN/claimed) are skipped, so several processes can share the CPU and RUNS; `--report`
collects them into benchmarks/detector_methods.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from deepfake_studio.detector.data import CHILD_MAX_AGE, held_out_real_sources, read_manifest
from deepfake_studio.detector.evaluate import logo_groups, score_rows
from deepfake_studio.detector.infer import Detector, DetectorConfig
from deepfake_studio.detector.metrics import equal_error_rate, rates_at
from deepfake_studio.detector.train import TrainConfig, config_of, train
from deepfake_studio.evaluation.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(OUT))
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402

RAWBOOST_SHARE = 0.5
ONE_CLASS_DIM = 32
METHODS = ("baseline", "rawboost", "ocsoftmax", "rawboost+ocsoftmax")


def method_config(base: TrainConfig, method: str) -> TrainConfig:
    """The shipped training settings changed in the one way `method` names."""
    if method not in METHODS:
        raise SystemExit(f"error: unknown method {method!r} (known: {', '.join(METHODS)})")
    config = base
    if "rawboost" in method:
        config = replace(config, rawboost=RAWBOOST_SHARE)
    if "ocsoftmax" in method:
        config = replace(config, model=replace(config.model, one_class_dim=ONE_CLASS_DIM))
    return config


def _eer(real: np.ndarray, spoof: np.ndarray) -> float:
    return float(equal_error_rate(real, spoof)[0])


def measure(run: Path, data: Path, members: tuple[str, ...], held_out: tuple[str, ...]) -> dict:
    """Scores of one LOGO run on the test split and the held-out real conditions."""
    detector = Detector(DetectorConfig(weights_dir=run, threads=1))
    rows = [r for r in read_manifest(data) if "error" not in r]
    is_held = [
        r["label"] == "bonafide" and str(r.get("source", "")).startswith(held_out) for r in rows
    ]
    test = [r for r, h in zip(rows, is_held, strict=True) if r["split"] == "test" and not h]
    held = [r for r, h in zip(rows, is_held, strict=True) if h]
    p_test, p_held = score_rows(detector, data, test), score_rows(detector, data, held)
    result: dict = {"threshold": detector.threshold, "unseen": {}, "seen": {}, "held_out_real": {}}
    for condition in ("clean", "augmented"):
        keep = np.array([(r["augment"] == "none") == (condition == "clean") for r in test])
        gen = np.array([str(r["generator"]) for r in test])
        real = keep & (gen == "bonafide")
        seen = keep & (gen != "bonafide") & ~np.isin(gen, members)
        result["seen"][condition] = {
            "eer": _eer(p_test[real], p_test[seen]),
            "fpr_at_threshold": rates_at(p_test[real], p_test[seen], detector.threshold)[0],
            "real": int(real.sum()),
        }
        for g in members:
            result["unseen"].setdefault(g, {})[condition] = _eer(
                p_test[real], p_test[keep & (gen == g)]
            )
        hk = np.array([(r["augment"] == "none") == (condition == "clean") for r in held])
        corpus = np.array([str(r["source"]).split("/")[0] for r in held])
        result["held_out_real"][condition] = {
            name: {
                "clips": int((hk & (corpus == c)).sum()),
                "fpr_at_threshold": float(
                    (p_held[hk & (corpus == c)] >= detector.threshold).mean()
                ),
            }
            for name, c in (("children", "speechocean762"), ("phone-accented", "alphanumeric"))
        }
    return result


def claim(run: Path) -> bool:
    """Take a run for this process (a `claimed` file with its pid), unless a live process has
    it, so that several processes can work through the same RUNS folder."""
    run.mkdir(parents=True, exist_ok=True)
    marker = run / "claimed"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        owner = marker.read_text().strip()
        if owner.isdigit() and int(owner) != os.getpid() and Path(f"/proc/{owner}").exists():
            return False
        marker.write_text(str(os.getpid()))
        return True
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def run_all(args: argparse.Namespace, held_out: tuple[str, ...]) -> None:
    """Every (family, method) run not finished yet, family by family, so that a session cut
    short still has every method measured on the same families."""
    shipped = Detector(DetectorConfig(threads=1))
    base = replace(
        config_of(shipped.card),
        epochs=args.epochs,
        threads=args.threads,
        exclude_real_sources=held_out,
        init_onnx="",  # from scratch: a fine-tuned model's start saw the left-out family
    )
    built = json.loads((args.data / "config.json").read_text(encoding="utf-8"))
    groups = logo_groups(built["generators"])
    for family in args.families:
        members = groups[family]
        for method in args.methods:
            run = args.runs / method / family
            if (run / "result.json").exists() or not claim(run):
                continue
            started = time.perf_counter()
            config = replace(method_config(base, method), exclude_generators=members)
            card = train(args.data, run, config, resume=True, log=partial(print, method))
            result = measure(run, args.data, members, held_out)
            result.update(
                method=method,
                family=family,
                epochs=args.epochs,
                parameters=card["parameters"],
                dev_eer=card["dev"]["eer"],
                minutes=(time.perf_counter() - started) / 60,
                load_at_end=os.getloadavg()[0],
            )
            text = json.dumps(result, indent=1) + "\n"
            (run / "result.json").write_text(text, encoding="utf-8")
            print(method, family, json.dumps(result["unseen"]))


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def report(args: argparse.Namespace) -> None:
    results = [json.loads(p.read_text()) for p in sorted(args.runs.glob("*/*/result.json"))]
    if not results:
        raise SystemExit(f"error: no finished runs in {args.runs}")
    cpu = cpu_model()
    methods = [m for m in METHODS if any(r["method"] == m for r in results)]
    by = {(r["method"], r["family"]): r for r in results}
    # Means only over the families every method has finished, so the columns compare.
    families = sorted(
        {r["family"] for r in results if all((m, r["family"]) in by for m in methods)}
    )
    if not families:
        raise SystemExit("error: no family has finished runs of every method yet")
    generators = sorted({g for r in results if r["family"] in families for g in r["unseen"]})
    summary: dict = {}
    lines = [
        "# Detector: training methods on leave-one-family-out (issue 21)",
        "",
        "Written by `benchmarks/detector_methods.py` (its docstring says how the runs differ). "
        f"Each run trained {results[0]['epochs']} epochs (the shipped model: 30; the LOGO "
        "columns of detector_eval.md: 12), so the baseline here is not the same number as "
        "there; compare methods within this table. Real speech of children (speechocean762, "
        f"aged {CHILD_MAX_AGE} or less) and of the alphanumeric set (phone microphones, "
        "Indian-accented English) was kept out of training and dev in every run. Test "
        "speakers: 14 synthetic clips per generator and condition, so one clip moves a "
        "per-generator EER by about 7 points.",
        "",
        f"CPU: {cpu}, {os.cpu_count()} cores shared with other agents' jobs (load average at "
        "the end of each run in the JSON); 1 training thread per run.",
        "",
        "Unseen EER (the family left out), clean / augmented test copies:",
        "",
        "| generator (family left out) | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for g in generators:
        cells = []
        for m in methods:
            r = next((r for r in results if r["method"] == m and g in r["unseen"]), None)
            cells.append(
                f"{pct(r['unseen'][g]['clean'])} / {pct(r['unseen'][g]['augmented'])}" if r else "-"
            )
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    mean_cells, seen_cells, held_cells, fp_cells = [], [], [], []
    for m in methods:
        runs = [by[(m, f)] for f in families]
        values = [r["unseen"][g] for r in runs for g in r["unseen"]]
        clean = float(np.mean([v["clean"] for v in values]))
        augmented = float(np.mean([v["augmented"] for v in values]))
        seen = float(np.mean([r["seen"]["clean"]["eer"] for r in runs]))
        seen_aug = float(np.mean([r["seen"]["augmented"]["eer"] for r in runs]))
        fp = {
            c: float(np.mean([r["seen"][c]["fpr_at_threshold"] for r in runs]))
            for c in ("clean", "augmented")
        }
        held = {
            c: {
                k: float(np.mean([r["held_out_real"][c][k]["fpr_at_threshold"] for r in runs]))
                for k in ("children", "phone-accented")
            }
            for c in ("clean", "augmented")
        }
        summary[m] = {
            "families": families,
            "unseen_mean": {"clean": clean, "augmented": augmented},
            "seen_eer_mean": {"clean": seen, "augmented": seen_aug},
            "real_test_fpr_mean": fp,
            "held_out_real_fpr_mean": held,
        }
        mean_cells.append(f"**{pct(clean)} / {pct(augmented)}**")
        seen_cells.append(f"{pct(seen)} / {pct(seen_aug)}")
        fp_cells.append(f"{pct(fp['clean'])} / {pct(fp['augmented'])}")
        held_cells.append(
            f"children {pct(held['clean']['children'])} / {pct(held['augmented']['children'])}; "
            f"phone {pct(held['clean']['phone-accented'])} / "
            f"{pct(held['augmented']['phone-accented'])}"
        )
    lines += [
        "| **mean unseen** | " + " | ".join(mean_cells) + " |",
        "| seen generators, pooled EER (mean over the runs) | " + " | ".join(seen_cells) + " |",
        "| real test speech flagged at each run's threshold | " + " | ".join(fp_cells) + " |",
        "| held-out real conditions flagged at each run's threshold | "
        + " | ".join(held_cells)
        + " |",
        "",
    ]
    partial_generators = sorted(
        {g for r in results if r["family"] not in families for g in r["unseen"]}
    )
    if partial_generators:
        lines += [
            "Families not finished by every method (not in the means above):",
            "",
            "| generator (family left out) | " + " | ".join(methods) + " |",
            "|---|" + "---|" * len(methods),
        ]
        for g in partial_generators:
            cells = []
            for m in methods:
                r = next((r for r in results if r["method"] == m and g in r["unseen"]), None)
                u = r["unseen"][g] if r else None
                cells.append(f"{pct(u['clean'])} / {pct(u['augmented'])}" if u else "not run")
            lines.append(f"| {g} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "Held-out real clips per condition: "
        + ", ".join(f"{k} {v['clips']}" for k, v in results[0]["held_out_real"]["clean"].items())
        + " (every split; each clean and as its augmented copy). Thresholds follow the shipped "
        "rule (at most 2 % of real dev clips flagged).",
        "",
        "Families left out (one run each per method): "
        + ", ".join(families)
        + ". Minutes per run (training + scoring): "
        + ", ".join(f"{r['method']}/{r['family']} {r['minutes']:.0f}" for r in results)
        + ".",
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    out_json, out_md = args.out / "detector_methods.json", args.out / "detector_methods.md"
    refuse_to_overwrite([out_json, out_md], args.overwrite)
    payload = {
        "cpu": cpu,
        "python": platform.python_version(),
        "summary": summary,
        "runs": results,
    }
    out_json.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    out_md.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("detector-data"))
    parser.add_argument("--runs", type=Path, default=Path("detector-methods"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--families", nargs="+", default=["kokoro", "griffin-lim", "world"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shared", type=Path, default=None, help="shared data folder")
    parser.add_argument("--report", action="store_true", help="only collect finished runs")
    parser.add_argument("--out", type=Path, default=OUT)
    add_overwrite_flag(parser)
    args = parser.parse_args(argv)
    if args.report:
        report(args)
        return 0
    shared = args.shared or Path(
        os.environ.get("DEEPFAKE_STUDIO_DATA", ROOT.parent / "shared" / "data")
    )
    held_out = held_out_real_sources(shared / "speech" / "manifest.csv")
    run_all(args, held_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
