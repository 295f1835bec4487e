"""A candidate detector against the shipped one, on the same clips (issue 21, items 3-5).

    .venv/bin/python benchmarks/detector_candidate.py --data DATA --candidate RUN \
        [--baseline DIR] [--heldout-data detector-heldout] [--logo RUNS] [--out benchmarks]

Both models score exactly the same clips through `infer.Detector` (the ONNX model and the
windowing a user gets), each at its own shipped threshold:

* seen generators: the test split of DATA (clean clips and their augmented copies), pooled and
  per generator. Real speech of the held-out recording conditions is taken out of it for both
  models, so the real side is the same;
* held-out real conditions (`detector_methods.held_out_real_sources`: children of
  speechocean762 aged 12 or less, the alphanumeric set's phone-microphone, Indian-accented
  speakers): false positives on the test-split speakers of those conditions, whom neither model
  trained on (the candidate never saw the conditions at all; the baseline, trained on every
  corpus, saw other speakers of them), and for the candidate also on every split;
* the speakers the consent check refused (benchmarks/consent_voice.md: LibriSpeech dev and test
  speakers the shipped model scores 0.89-0.99): their clips in DATA, and how many are flagged;
* the frozen held-out set (EmoDB's actors against unseen generator settings), if
  `--heldout-data` holds its build (benchmarks/detector_heldout.py makes it);
* with `--logo RUNS`: the candidate's leave-one-family-out runs (RUNS/METHOD/FAMILY/result.json
  of benchmarks/detector_methods.py), next to the shipped model's numbers from
  benchmarks/detector_eval.json.

Writes OUT/detector_candidate.{json,md}. A report, not a choice: nothing here picks a model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from deepfake_studio.detector.data import read_manifest
from deepfake_studio.detector.evaluate import _eer_block, score_rows
from deepfake_studio.detector.infer import Detector, DetectorConfig, weights_dir
from deepfake_studio.detector.metrics import rates_at
from deepfake_studio.evaluation.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(OUT))
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402
from detector_methods import held_out_real_sources  # noqa: E402

CONSENT_REFUSED = ("LS3486", "LS5022", "LS6529")  # benchmarks/consent_voice.md
CONDITIONS = (("children", "speechocean762"), ("phone-accented", "alphanumeric"))


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _is_clean(rows: list[dict]) -> np.ndarray:
    return np.array([r["augment"] == "none" for r in rows], dtype=bool)


def measure(
    detector: Detector,
    data: Path,
    test: list[dict],
    held: list[dict],
    consent: list[dict],
    heldout: list[dict],
    heldout_data: Path | None,
) -> dict:
    """One model's figures on the shared row sets."""
    t = detector.threshold
    result: dict = {"threshold": t, "parameters": detector.card.get("parameters")}
    p_test = score_rows(detector, data, test)
    clean = _is_clean(test)
    for name, mask in (("clean", clean), ("augmented", ~clean)):
        subset = [r for r, m in zip(test, mask, strict=True) if m]
        result[f"test_{name}"] = _eer_block(subset, p_test[mask], t)
    p_held = score_rows(detector, data, held)
    corpus = np.array([str(r["source"]).split("/")[0] for r in held])
    in_test = np.array([r["split"] == "test" for r in held], dtype=bool)
    hc = _is_clean(held)
    result["held_out_real"] = {}
    for label, c in CONDITIONS:
        for name, mask in (("clean", hc), ("augmented", ~hc)):
            for where, scope in (("test", in_test), ("all", np.ones_like(in_test))):
                chosen = p_held[mask & scope & (corpus == c)]
                result["held_out_real"].setdefault(label, {}).setdefault(name, {})[where] = {
                    "clips": int(chosen.size),
                    "flagged": int((chosen >= t).sum()),
                    "fpr_at_threshold": float((chosen >= t).mean()) if chosen.size else None,
                }
    p_consent = score_rows(detector, data, consent)
    result["consent_refused_speakers"] = {
        spk: {
            "clips": len(idx),
            "flagged": int((p_consent[idx] >= t).sum()),
            "median_p": float(np.median(p_consent[idx])),
            "max_p": float(np.max(p_consent[idx])),
        }
        for spk in CONSENT_REFUSED
        if (idx := [i for i, r in enumerate(consent) if r["voice"] == spk])
    }
    if heldout and heldout_data is not None:
        p = score_rows(detector, heldout_data, heldout)
        hc = _is_clean(heldout)
        real = np.array([r["label"] == "bonafide" for r in heldout])
        neutral = np.array(["/neutral/" in str(r["source"]) for r in heldout])
        result["emodb_heldout"] = {}
        for name, mask in (("clean", hc), ("augmented", ~hc)):
            subset = [r for r, m in zip(heldout, mask, strict=True) if m]
            block = _eer_block(subset, p[mask], t)
            block["fpr_at_threshold_neutral"] = rates_at(
                p[mask & real & neutral], p[mask & ~real], t
            )[0]
            result["emodb_heldout"][name] = block
    return result


def logo_results(runs: Path) -> dict:
    """Unseen EERs of finished detector_methods.py runs under RUNS (method → family → result)."""
    found: dict = {}
    for path in sorted(runs.glob("*/*/result.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        found.setdefault(r["method"], {})[r["family"]] = r
    return found


def markdown(res: dict) -> str:
    b, c = res["models"]["baseline"], res["models"]["candidate"]
    gens = sorted(
        set(b["test_clean"]["per_generator_eer"]) | set(c["test_clean"]["per_generator_eer"])
    )

    def cell(m: dict, key: str, g: str) -> str:
        v = m[key]["per_generator_eer"].get(g)
        return pct(v) if v is not None else "-"

    lines = [
        "# " + (res.get("title") or "Detector: candidate against the shipped model (issue 21)"),
        "",
        f"Written by `benchmarks/detector_candidate.py` on {res['date']}. Baseline: "
        f"{res['baseline_dir']} (threshold {b['threshold']:.3f}); candidate: "
        f"{res['candidate_dir']} (threshold {c['threshold']:.3f}). Both score the same clips of "
        f"`{res['data']}` through `infer.Detector`, each at its own threshold. "
        f"CPU: {res['cpu']}, {res['cores']} cores shared with other jobs (load average "
        f"{res['load_start']:.2f} at the start, {res['load_end']:.2f} at the end).",
        "",
        "Data: " + res["data_note"],
        "",
        "## Test split (speakers neither model trained on; the candidate's data)",
        "",
        "| generator | baseline EER clean | candidate EER clean "
        "| baseline EER augmented | candidate EER augmented |",
        "|---|---|---|---|---|",
    ]
    for g in gens:
        lines.append(
            f"| {g} | {cell(b, 'test_clean', g)} | {cell(c, 'test_clean', g)} "
            f"| {cell(b, 'test_augmented', g)} | {cell(c, 'test_augmented', g)} |"
        )
    lines.append(
        f"| **all (pooled)** | **{pct(b['test_clean']['eer'])}** "
        f"| **{pct(c['test_clean']['eer'])}** "
        f"| **{pct(b['test_augmented']['eer'])}** | **{pct(c['test_augmented']['eer'])}** |"
    )

    def caught(m: dict, key: str, g: str) -> str:
        """Fakes caught at the model's own threshold: share and count of the generator's clips."""
        miss = m[key]["per_generator_miss_at_threshold"].get(g)
        n = res.get("test_clips", {}).get(key, {}).get(g, 0)
        return f"{pct(1 - miss)} ({round((1 - miss) * n)} of {n})" if miss is not None else "-"

    lines += [
        "",
        "Fakes caught at each model's own threshold (test split):",
        "",
        "| generator | baseline clean | candidate clean | baseline augmented "
        "| candidate augmented |",
        "|---|---|---|---|---|",
    ]
    for g in gens:
        lines.append(
            f"| {g} | {caught(b, 'test_clean', g)} | {caught(c, 'test_clean', g)} "
            f"| {caught(b, 'test_augmented', g)} | {caught(c, 'test_augmented', g)} |"
        )
    lines += [
        "",
        "| at each model's threshold | baseline | candidate |",
        "|---|---|---|",
    ]
    for name in ("clean", "augmented"):
        kb, kc = b[f"test_{name}"], c[f"test_{name}"]
        lines.append(
            f"| real test speech flagged, {name} ({kb['real']} clips) "
            f"| {pct(kb['fpr_at_threshold'])} | {pct(kc['fpr_at_threshold'])} |"
        )
        lines.append(
            f"| synthetic test speech missed, {name} ({kb['spoof']} clips) "
            f"| {pct(kb['miss_at_threshold'])} | {pct(kc['miss_at_threshold'])} |"
        )
    for label, _ in CONDITIONS:
        for name in ("clean", "augmented"):
            hb = b["held_out_real"][label][name]["test"]
            hc = c["held_out_real"][label][name]["test"]
            ha = c["held_out_real"][label][name]["all"]
            if not hb["clips"]:
                continue
            lines.append(
                f"| held-out {label}, test speakers, {name} ({hb['clips']} clips) "
                f"| {pct(hb['fpr_at_threshold'])} ({hb['flagged']}) "
                f"| {pct(hc['fpr_at_threshold'])} ({hc['flagged']}); every split "
                f"{pct(ha['fpr_at_threshold'])} ({ha['flagged']} of {ha['clips']}) |"
            )
    for spk in CONSENT_REFUSED:
        sb = b["consent_refused_speakers"].get(spk)
        sc = c["consent_refused_speakers"].get(spk)
        if sb and sc:
            lines.append(
                f"| consent-refused speaker {spk}: clips flagged (of {sb['clips']}), median p "
                f"| {sb['flagged']}, {sb['median_p']:.2f} | {sc['flagged']}, {sc['median_p']:.2f} |"
            )
    if "emodb_heldout" in b and "emodb_heldout" in c:
        lines += [
            "",
            "## Frozen held-out set (EmoDB actors; generator settings neither model trained on)",
            "",
            "| | baseline | candidate |",
            "|---|---|---|",
        ]
        for name in ("clean", "augmented"):
            eb, ec = b["emodb_heldout"][name], c["emodb_heldout"][name]
            lines += [
                f"| EER, {name} | {pct(eb['eer'])} | {pct(ec['eer'])} |",
                f"| real flagged at threshold, {name} ({eb['real']} clips) "
                f"| {pct(eb['fpr_at_threshold'])} | {pct(ec['fpr_at_threshold'])} |",
                f"| neutral real flagged, {name} | {pct(eb['fpr_at_threshold_neutral'])} "
                f"| {pct(ec['fpr_at_threshold_neutral'])} |",
                f"| synthetic missed, {name} ({eb['spoof']} clips) "
                f"| {pct(eb['miss_at_threshold'])} | {pct(ec['miss_at_threshold'])} |",
            ]
        per_b = b["emodb_heldout"]["clean"]["per_generator_eer"]
        per_c = c["emodb_heldout"]["clean"]["per_generator_eer"]
        lines += [
            "",
            "Held-out EER per generator, clean (baseline → candidate): "
            + ", ".join(f"{g} {pct(per_b[g])} → {pct(per_c[g])}" for g in sorted(per_b))
            + ".",
        ]
        if res.get("heldout_note"):
            lines += ["", res["heldout_note"]]
    if res.get("logo"):
        lines += ["", "## Unseen family (leave-one-family-out, training crops matched)", ""]
        lines += [res["logo_note"], ""]
        lines += [
            "| generator (family left out) | shipped settings, old data (detector_eval.json) "
            "| candidate settings, new data |",
            "|---|---|---|",
        ]
        shipped_logo = res.get("shipped_logo", {})
        for method, families in res["logo"].items():
            for family, r in families.items():
                for g, v in r["unseen"].items():
                    s = shipped_logo.get(g)
                    old = f"{pct(s['clean_eer'])} / {pct(s['augmented_eer'])}" if s else "-"
                    lines.append(
                        f"| {g} ({family}; {method}, {r['epochs']} epochs) | {old} "
                        f"| {pct(v['clean'])} / {pct(v['augmented'])} |"
                    )
                lines.append(
                    f"| seen generators of that run, pooled | - | "
                    f"{pct(r['seen']['clean']['eer'])} / {pct(r['seen']['augmented']['eer'])} |"
                )
        lines += ["", "Cells: clean / augmented test copies."]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the candidate's build")
    parser.add_argument("--candidate", type=Path, required=True, help="its model folder")
    parser.add_argument("--baseline", type=Path, default=None, help="default: shipped weights")
    parser.add_argument("--heldout-data", type=Path, default=None)
    parser.add_argument("--logo", type=Path, default=None, help="detector_methods.py RUNS")
    parser.add_argument("--shared", type=Path, default=None, help="shared data folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--note", default="", help="what the data build was (for the report)")
    parser.add_argument("--heldout-note", default="")
    parser.add_argument("--logo-note", default="")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--name", default="detector_candidate", help="stem of the report files")
    parser.add_argument("--title", default="", help="the report's heading (default: generic)")
    add_overwrite_flag(parser)
    args = parser.parse_args(argv)
    out_json, out_md = args.out / f"{args.name}.json", args.out / f"{args.name}.md"
    refuse_to_overwrite([out_json, out_md], args.overwrite)
    shared = args.shared or Path(
        os.environ.get("DEEPFAKE_STUDIO_DATA", ROOT.parent / "shared" / "data")
    )
    sources = held_out_real_sources(shared / "speech" / "manifest.csv")
    rows = [r for r in read_manifest(args.data) if "error" not in r]
    is_held = [
        r["label"] == "bonafide" and str(r.get("source", "")).startswith(sources) for r in rows
    ]
    test = [r for r, h in zip(rows, is_held, strict=True) if r["split"] == "test" and not h]
    held = [r for r, h in zip(rows, is_held, strict=True) if h]
    consent = [r for r in rows if r["label"] == "bonafide" and r["voice"] in CONSENT_REFUSED]
    heldout: list[dict] = []
    if args.heldout_data is not None:
        heldout = [
            r
            for r in read_manifest(args.heldout_data)
            if "error" not in r and r["split"] == "heldout"
        ]
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    models = {}
    for name, folder in (("baseline", args.baseline), ("candidate", args.candidate)):
        detector = Detector(DetectorConfig(weights_dir=folder, threads=args.threads))
        models[name] = measure(detector, args.data, test, held, consent, heldout, args.heldout_data)
        print(name, "done", flush=True)
    res: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "score_minutes": (time.perf_counter() - started) / 60,
        "data": str(args.data),
        "data_config": json.loads((args.data / "config.json").read_text(encoding="utf-8")),
        "data_note": args.note,
        "title": args.title,
        "test_clips": {
            f"test_{name}": {
                g: sum(1 for r in test if r["generator"] == g and (r["augment"] == "none") == clean)
                for g in sorted({str(r["generator"]) for r in test})
            }
            for name, clean in (("clean", True), ("augmented", False))
        },
        "heldout_note": args.heldout_note,
        "held_out_sources": list(sources),
        "baseline_dir": str(args.baseline) if args.baseline else str(weights_dir()),
        "candidate_dir": str(args.candidate),
        "candidate_card": {
            k: v
            for k, v in json.loads((args.candidate / "detector.json").read_text()).items()
            if k in ("train", "dev", "best_epoch", "threshold", "calibration", "history")
        },
        "models": models,
    }
    if args.logo is not None:
        res["logo"] = logo_results(args.logo)
        res["logo_note"] = args.logo_note
        shipped_eval = OUT / "detector_eval.json"
        if shipped_eval.exists():
            res["shipped_logo"] = json.loads(shipped_eval.read_text())["logo"]
    args.out.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    out_md.write_text(markdown(res), encoding="utf-8")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
