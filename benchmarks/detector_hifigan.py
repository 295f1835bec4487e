"""Do HiFi-GAN resynthesis clips teach the detector an unseen neural TTS? (issue 21, item 1)

    .venv/bin/python benchmarks/detector_hifigan.py --data DATA --runs RUNS --variant without \
        [--train-data BASE]
    .venv/bin/python benchmarks/detector_hifigan.py --data DATA --runs RUNS --variant with
    .venv/bin/python benchmarks/detector_hifigan.py --data DATA --runs RUNS --report

DATA is a build holding `hifigan-resynth` clips (`detector build-data --generators ...,
hifigan-resynth --hifigan-checkpoint RUN/hifigan.pt`). Two leave-the-Kokoro-family-out runs,
trained as benchmarks/detector_methods.py's baseline (the shipped settings, from scratch,
`--epochs` epochs, seed 0, real speech of children and of the phone-microphone set kept out):

* without: Kokoro (packs, clones, varied) and hifigan-resynth left out of train and dev;
* with: only the Kokoro family left out, so the HiFi-GAN clips are in training.

`--train-data BASE` trains `without` on the build DATA extends (the same rows once
hifigan-resynth is left out; its cached features are reused, and it can start before the
HiFi-GAN clips exist). Both runs are scored on DATA's test split by
`detector_methods.measure` (unseen EER of each Kokoro generator and of hifigan-resynth, which
for `without` is its own unseen EER, seen EER, false positives on real test speech and on the
held-out conditions), plus the share of each left-out generator's test clips flagged at the
run's own threshold (the shipped rule: at most 2 % of real dev clips flagged).

`--asr-check N` first checks that the checkpoint makes speech: Whisper-base transcribes N
dev-split recordings (English corpora, 3-10 s) as they are and as resynthesised by the
checkpoint the build names, word error rate against the corpus transcript (RUNS/asr.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepfake_studio.detector.data import HIFIGAN, held_out_real_sources, read_manifest
from deepfake_studio.detector.evaluate import GENERATOR_FAMILIES, logo_groups, score_rows
from deepfake_studio.detector.infer import Detector, DetectorConfig
from deepfake_studio.detector.train import config_of, train
from deepfake_studio.evaluation.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(OUT))
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402
from detector_methods import measure  # noqa: E402

VARIANTS = ("without", "with")


def kokoro_members(data: Path) -> tuple[str, ...]:
    built = json.loads((data / "config.json").read_text(encoding="utf-8"))
    return logo_groups(built["generators"])["kokoro"]


def run_variant(args: argparse.Namespace, held_out: tuple[str, ...]) -> None:
    kokoro = kokoro_members(args.data)
    left_out = (*kokoro, HIFIGAN) if args.variant == "without" else kokoro
    base = replace(
        config_of(Detector(DetectorConfig(threads=1)).card),
        epochs=args.epochs,
        threads=args.threads,
        exclude_real_sources=held_out,
        init_onnx="",  # from scratch: the shipped weights saw Kokoro
        exclude_generators=left_out,
        seed=args.seed,
    )
    run = args.runs / args.variant
    started = time.perf_counter()
    card = train(args.train_data or args.data, run, base, resume=True, log=print)
    info = {
        "variant": args.variant,
        "left_out": list(left_out),
        "trained_on": str(args.train_data or args.data),
        "epochs": args.epochs,
        "seed": args.seed,
        "parameters": card["parameters"],
        "dev_eer": card["dev"]["eer"],
        "train_minutes": (time.perf_counter() - started) / 60,
        "load_at_end_of_training": os.getloadavg()[0],
    }
    (run / "train.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")


def caught(run: Path, data: Path, members: tuple[str, ...]) -> dict:
    """Share of each generator's test clips (clean / augmented) flagged at the run's threshold."""
    detector = Detector(DetectorConfig(weights_dir=run, threads=1))
    rows = [
        r
        for r in read_manifest(data)
        if "error" not in r and r["split"] == "test" and r["generator"] in members
    ]
    p = score_rows(detector, data, rows)
    out: dict = {}
    for g in members:
        for condition in ("clean", "augmented"):
            clean = condition == "clean"
            keep = np.array(
                [r["generator"] == g and (r["augment"] == "none") == clean for r in rows]
            )
            out.setdefault(g, {})[condition] = {
                "clips": int(keep.sum()),
                "caught": float((p[keep] >= detector.threshold).mean()),
            }
    return out


def measure_all(args: argparse.Namespace, held_out: tuple[str, ...]) -> None:
    members = (*kokoro_members(args.data), HIFIGAN)
    for variant in VARIANTS:
        run = args.runs / variant
        if not (run / "detector.json").exists() or (run / "result.json").exists():
            continue
        started = time.perf_counter()
        result = measure(run, args.data, members, held_out)
        result["caught"] = caught(run, args.data, members)
        result.update(json.loads((run / "train.json").read_text(encoding="utf-8")))
        result["measure_minutes"] = (time.perf_counter() - started) / 60
        result["load_at_end_of_measuring"] = os.getloadavg()[0]
        (run / "result.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(variant, json.dumps(result["unseen"]))


def asr_check(args: argparse.Namespace) -> None:
    """Word error rates of dev recordings, original vs HiFi-GAN resynthesis (RUNS/asr.json)."""
    from deepfake_studio.audio import load_audio, resample
    from deepfake_studio.detector.generators import Request, hifigan_resynth
    from deepfake_studio.evaluation.asr import Transcriber, word_error_rate
    from deepfake_studio.evaluation.speakers import ENGLISH_NATIVE, load_manifest, split_speakers

    built = json.loads((args.data / "config.json").read_text(encoding="utf-8"))
    vocoder = hifigan_resynth(Path(built["hifigan_checkpoint"]))
    dev = {s for _, s in split_speakers("dev", ENGLISH_NATIVE)}
    clips = [
        c
        for c in load_manifest(args.shared)
        if c.speaker in dev and 3.0 <= c.duration <= 10.0 and c.text.strip()
    ]
    chosen = [clips[i] for i in np.random.default_rng(0).permutation(len(clips))[: args.asr_check]]
    asr = Transcriber()
    rows = []
    for clip in chosen:
        real = resample(load_audio(clip.path), 16_000)
        fake = vocoder.generate(Request(text="", source=real, voice="hifigan-resynth"))
        heard = {
            "real": asr.transcribe(real.samples, real.sample_rate),
            "resynth": asr.transcribe(fake.samples, fake.sample_rate),
        }
        rows.append(
            {
                "path": str(clip.path).split("/speech/")[-1],
                "text": clip.text,
                **{f"{k}_heard": v for k, v in heard.items()},
                **{f"{k}_wer": word_error_rate(clip.text, v) for k, v in heard.items()},
            }
        )
        print(rows[-1])
    summary = {
        "checkpoint": built["hifigan_checkpoint"],
        "clips": len(rows),
        "real_wer": float(np.mean([r["real_wer"] for r in rows])),
        "resynth_wer": float(np.mean([r["resynth_wer"] for r in rows])),
        "rows": rows,
    }
    args.runs.mkdir(parents=True, exist_ok=True)
    (args.runs / "asr.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def tables(results: dict, kokoro: tuple[str, ...], members: tuple[str, ...]) -> list[str]:
    """The markdown tables of one pair of runs (adds the Kokoro means to `results`)."""
    header = "| | " + " | ".join(f"{v} HiFi-GAN clips" for v in VARIANTS) + " |"
    lines = [
        "Unseen EER (lower is better):",
        "",
        header,
        "|---|---|---|",
    ]
    for g in members:
        cells = [
            f"{pct(results[v]['unseen'][g]['clean'])} / {pct(results[v]['unseen'][g]['augmented'])}"
            for v in VARIANTS
        ]
        seen = " (seen by `with`)" if g == HIFIGAN else ""
        lines.append(f"| {g}{seen} | " + " | ".join(cells) + " |")
    for v in VARIANTS:
        r = results[v]
        values = [r["unseen"][g] for g in kokoro]
        r["kokoro_mean"] = {
            c: float(np.mean([x[c] for x in values])) for c in ("clean", "augmented")
        }
    lines.append(
        "| **Kokoro family, mean** | "
        + " | ".join(
            f"**{pct(results[v]['kokoro_mean']['clean'])} / "
            f"{pct(results[v]['kokoro_mean']['augmented'])}**"
            for v in VARIANTS
        )
        + " |"
    )
    lines += ["", "Caught at each run's own threshold (share of test fakes flagged):", ""]
    lines += [header, "|---|---|---|"]
    for g in members:
        cells = []
        for v in VARIANTS:
            c = results[v]["caught"][g]
            cells.append(
                f"{pct(c['clean']['caught'])} / {pct(c['augmented']['caught'])} "
                f"(of {c['clean']['clips']})"
            )
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    for v in VARIANTS:
        r = results[v]
        clips = [r["caught"][g]["clean"]["clips"] for g in kokoro]
        r["kokoro_caught"] = {
            c: float(
                sum(r["caught"][g][c]["caught"] * r["caught"][g][c]["clips"] for g in kokoro)
                / sum(clips)
            )
            for c in ("clean", "augmented")
        }
    pooled = sum(results["with"]["caught"][g]["clean"]["clips"] for g in kokoro)
    lines.append(
        f"| **Kokoro family, pooled ({pooled} clips)** | "
        + " | ".join(
            f"**{pct(results[v]['kokoro_caught']['clean'])} / "
            f"{pct(results[v]['kokoro_caught']['augmented'])}**"
            for v in VARIANTS
        )
        + " |"
    )
    lines += ["", header, "|---|---|---|"]
    rows = {
        "real test speech flagged at the threshold": lambda r: (
            f"{pct(r['seen']['clean']['fpr_at_threshold'])} / "
            f"{pct(r['seen']['augmented']['fpr_at_threshold'])} "
            f"(of {r['seen']['clean']['real']})"
        ),
        "held-out real conditions flagged": lambda r: (
            f"children {pct(r['held_out_real']['clean']['children']['fpr_at_threshold'])}, "
            f"phone {pct(r['held_out_real']['clean']['phone-accented']['fpr_at_threshold'])} "
            "(clean)"
        ),
        "seen generators, pooled EER": lambda r: (
            f"{pct(r['seen']['clean']['eer'])} / {pct(r['seen']['augmented']['eer'])}"
        ),
        "dev EER (best epoch)": lambda r: pct(r["dev_eer"]),
        "threshold": lambda r: f"{r['threshold']:.3f}",
        "training minutes (load at its end)": lambda r: (
            f"{r['train_minutes']:.0f} ({r['load_at_end_of_training']:.1f})"
        ),
    }
    for name, cell in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(results[v]) for v in VARIANTS) + " |")
    return lines


def report(args: argparse.Namespace) -> None:
    results = {v: json.loads((args.runs / v / "result.json").read_text()) for v in VARIANTS}
    built = json.loads((args.data / "config.json").read_text(encoding="utf-8"))
    kokoro = kokoro_members(args.data)
    members = (*kokoro, HIFIGAN)
    repeats: dict[str, dict] = {}
    lines = [
        "# Detector: HiFi-GAN resynthesis in training, Kokoro unseen (issue 21, item 1)",
        "",
        "Written by `benchmarks/detector_hifigan.py` (its docstring says how the runs differ). "
        f"Both runs: {results['with']['epochs']} epochs from scratch, seed "
        f"{results['with'].get('seed', 0)}, the shipped "
        "training settings, the whole Kokoro family "
        f"({', '.join(kokoro)}) left out of train and dev, children and phone-microphone "
        "real speech kept out; they differ only in whether the `hifigan-resynth` clips "
        f"(real clips of each split's own speakers through `{built.get('hifigan_checkpoint')}`) "
        "are in training. Same test clips for both. Clean / augmented test copies.",
        "",
    ]
    lines += tables(results, kokoro, members)
    for repeat in args.repeat_runs:
        again = {v: json.loads((repeat / v / "result.json").read_text()) for v in VARIANTS}
        repeats[str(repeat)] = again
        lines += [
            "",
            f"### Repeat: both runs again with training seed {again['with'].get('seed', 0)}, "
            "same clips",
            "",
            *tables(again, kokoro, members),
        ]
    lines += [
        "",
        f"CPU: {cpu_model()}, {os.cpu_count()} cores shared with other agents' jobs; "
        f"{results['with']['parameters']:,} parameters, 1 training thread.",
        "",
    ]
    if (args.runs / "asr.json").exists():
        asr = json.loads((args.runs / "asr.json").read_text(encoding="utf-8"))
        lines += [
            f"Is it speech? Whisper-base on {asr['clips']} dev-split recordings (speakers the "
            f"vocoder never heard): word error rate {pct(asr['real_wer'])} as recorded, "
            f"{pct(asr['resynth_wer'])} resynthesised by the checkpoint (RUNS/asr.json holds "
            "what it heard).",
            "",
        ]
        payload_asr = asr
    else:
        payload_asr = None
    if extra := args.notes.read_text(encoding="utf-8") if args.notes else "":
        lines += [extra.rstrip(), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    out_json, out_md = args.out / "detector_hifigan.json", args.out / "detector_hifigan.md"
    refuse_to_overwrite([out_json, out_md], args.overwrite)
    payload = {
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "data_config": built,
        "families": {g: GENERATOR_FAMILIES[g] for g in members},
        "runs": results,
        "repeats": repeats,
        "asr_check": payload_asr,
    }
    out_json.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    out_md.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--train-data", type=Path, default=None)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--measure", action="store_true", help="score the trained runs")
    parser.add_argument("--report", action="store_true", help="write the tables")
    parser.add_argument(
        "--repeat-runs", type=Path, nargs="*", default=[], help="more RUNS folders to tabulate"
    )
    parser.add_argument("--notes", type=Path, default=None, help="text appended to the .md")
    parser.add_argument("--asr-check", type=int, default=0, help="dev clips to transcribe")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0, help="training seed of both runs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shared", type=Path, default=None, help="shared data folder")
    parser.add_argument("--out", type=Path, default=OUT)
    add_overwrite_flag(parser)
    args = parser.parse_args(argv)
    if args.report:
        report(args)
        return 0
    shared = args.shared or Path(
        os.environ.get("DEEPFAKE_STUDIO_DATA", ROOT.parent / "shared" / "data")
    )
    args.shared = shared
    if args.asr_check:
        asr_check(args)
    held_out = held_out_real_sources(shared / "speech" / "manifest.csv")
    if args.variant:
        run_variant(args, held_out)
    if args.measure:
        measure_all(args, held_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
