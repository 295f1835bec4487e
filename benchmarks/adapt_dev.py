"""Decoder adaptation (`best`) against the style fit (`standard`), per speaker and setting.

Tune on dev speakers (the default split); `--split test` only measures. Per speaker (reference
and ground truth as `deepfake-studio eval clone` cuts them): one style fit with its guard (the
`standard` voice), then each adaptation setting on top of it (`adapt.py`; settings by name in
SETTINGS). Every voice speaks the two held-out sentences of `style_fit_dev.py` through
`Studio.clone` (ONNX for standard, the PyTorch path for adapted voices); the independent
d-vector judge scores them against the speaker's ground truth (normalised as in `clone_eval`),
Whisper-base gives the WER.

    nice -n 10 .venv/bin/python benchmarks/adapt_dev.py VCC16_SF1 VCTK_p227 --settings r16 whole

Each speaker's row goes to `benchmarks/adapt_<split>.parts/<speaker>.json` (settings already
measured there are skipped); every run rewrites `benchmarks/adapt_<split>.{json,md}` from the
parts present.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from deepfake_studio.evaluation.asr import Transcriber, word_error_rate
from deepfake_studio.evaluation.judge import SpeakerJudge, cosine
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.studio import Studio, StudioConfig
from deepfake_studio.synthesizer import EngineOptions
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro import KokoroConfig, KokoroEngine
from deepfake_studio.synthesizer.kokoro.adapt import AdaptConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite
from style_fit_dev import HELD_OUT, _voice, speaker_anchors

HERE = Path(__file__).parent
SETTINGS = {
    "r16": AdaptConfig(),
    "r16_lr3e-4": AdaptConfig(learning_rate=3e-4),
    "r32": AdaptConfig(rank=32),
    "whole": AdaptConfig(rank=0, learning_rate=5e-5),  # the outside probe's rate
}


def outputs(split: str) -> tuple[Path, Path]:
    return HERE / f"adapt_{split}.parts", HERE / f"adapt_{split}.json"


def score(
    studio: Studio, cond: Conditioning, judge: SpeakerJudge, asr: Transcriber, anchors
) -> dict:
    t0 = time.perf_counter()
    audio = studio.clone(" ".join(HELD_OUT), voice=_voice(cond))
    rtf = (time.perf_counter() - t0) / audio.duration
    sim = cosine(judge.embed(audio.samples, audio.sample_rate), anchors.truth)
    text = asr.transcribe(audio.samples, audio.sample_rate)
    return {
        "sim": round(sim, 4),
        "norm": round(anchors.norm(sim), 4),
        "wer": round(word_error_rate(" ".join(HELD_OUT), text), 4),
        "rtf": round(rtf, 3),
        "transcript": text,
    }


def run_speaker(
    speaker: str,
    split: str,
    settings: list[str],
    studio: Studio,
    judge: SpeakerJudge,
    asr: Transcriber,
    row: dict,
) -> dict:
    anchors = speaker_anchors(speaker, split, studio, judge)
    kokoro = studio.engine("kokoro")
    assert isinstance(kokoro, KokoroEngine)
    clip = anchors.clip
    row.update(corpus=anchors.corpus, reference_s=round(clip.duration, 2), same=anchors.same)
    row["cpu"] = cpu_model()  # parts of one table may come from different machines
    row["stranger"] = anchors.stranger
    t0 = time.perf_counter()
    text = asr.transcribe(clip.samples, clip.sample_rate)
    result = kokoro.fit_style([(clip, text)], seed=0)
    standard = kokoro.guard_style_fit(clip, studio.encoder, result)
    row["standard"] = {
        **score(studio, standard, judge, asr, anchors),
        "enroll_s": round(time.perf_counter() - t0, 1),
        "guard": standard.info.get("guard", {}).get("kept"),
    }
    row.setdefault("settings", {})
    for name in settings:
        if name in row["settings"]:
            continue
        t0 = time.perf_counter()
        cond = kokoro.adapt(clip, result, standard, config=SETTINGS[name])
        adapt_s = time.perf_counter() - t0
        info = cond.info["adaptation"]
        row["settings"][name] = {
            **score(studio, cond, judge, asr, anchors),
            "adapt_s": round(adapt_s, 1),
            "kept_step": info["kept_step"],
            "stored_mb": info["stored_mb"],
            "checks": info["checks"],
            "load": round(os.getloadavg()[0], 2),
        }
        print(speaker, name, row["settings"][name]["norm"], row["standard"]["norm"], flush=True)
    return row


def merge(split: str) -> dict:
    parts, out = outputs(split)
    rows = {p.stem: json.loads(p.read_text()) for p in sorted(parts.glob("*.json"))}
    names = sorted({n for r in rows.values() for n in r.get("settings", {})})
    summary: dict = {}
    for name in names:
        have = [r for r in rows.values() if name in r["settings"]]
        summary[name] = {
            "speakers": len(have),
            "norm": round(statistics.fmean(r["settings"][name]["norm"] for r in have), 4),
            "standard_norm": round(statistics.fmean(r["standard"]["norm"] for r in have), 4),
            "wer": round(statistics.fmean(r["settings"][name]["wer"] for r in have), 4),
            "adapt_s_median": statistics.median(r["settings"][name]["adapt_s"] for r in have),
            "rtf_median": statistics.median(r["settings"][name]["rtf"] for r in have),
            "stored_mb": max(r["settings"][name]["stored_mb"] for r in have),
        }
    model = cpu_model()
    data = {
        "cpu": model,
        "cores": os.cpu_count(),
        "split": split,
        "settings": {n: asdict(SETTINGS[n]) for n in names if n in SETTINGS},
        "summary": summary,
        "speakers": rows,
    }
    out.write_text(json.dumps(data, indent=1, default=float) + "\n")
    out.with_suffix(".md").write_text(report(data))
    return data


def report(data: dict) -> str:
    lines = [
        f"# Decoder adaptation (`best`) vs the style fit (`standard`), {data['split']} speakers",
        "",
        "Produced by `benchmarks/adapt_dev.py`. Judge: the independent d-vector, never used by "
        "any fit; norm = (sim - piper) / (same - piper). WER: Whisper-base on two held-out "
        f"sentences. CPU of this run: {data['cpu']}, {data['cores']} cores; each speaker's "
        "CPU and load are in its row (above a load of about 2 the cores were shared and times "
        "are inflated; compare times only between rows of one CPU).",
        "",
        "| setting | speakers | norm standard | norm adapted | WER adapted | adapt s (median) "
        "| RTF (median) | stored MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in data["summary"].items():
        lines.append(
            f"| {name} | {s['speakers']} | {s['standard_norm']:.3f} | {s['norm']:.3f} | "
            f"{100 * s['wer']:.1f} % | {s['adapt_s_median']} | {s['rtf_median']} | "
            f"{s['stored_mb']} |"
        )
    lines += [
        "",
        "| speaker | corpus | ref s | setting | norm standard → adapted | WER standard / adapted "
        "| kept step | held-out loss by check | CPU | load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spk, r in data["speakers"].items():
        for name, s in r.get("settings", {}).items():
            losses = " ".join(f"{c['holdout_loss']:.3f}/{100 * c['wer']:.0f}%" for c in s["checks"])
            lines.append(
                f"| {spk} | {r['corpus']} | {r['reference_s']} | {name} | "
                f"{r['standard']['norm']:.3f} → {s['norm']:.3f} | "
                f"{100 * r['standard']['wer']:.0f} / {100 * s['wer']:.0f} % | {s['kept_step']} | "
                f"{losses} | {r.get('cpu', 'not recorded')} | {s['load']} |"
            )
    lines += ["", "Settings: " + json.dumps(data["settings"]), ""]
    return "\n".join(lines)


def main(speakers: list[str], split: str, settings: list[str], threads: int, steps: int) -> None:
    torch.set_num_threads(threads)
    parts, _ = outputs(split)
    parts.mkdir(exist_ok=True)
    if steps:
        for name in settings:
            SETTINGS[name] = replace(SETTINGS[name], steps=steps)
    with tempfile.TemporaryDirectory(prefix="adapt-dev-") as home:
        engines = EngineOptions(kokoro=KokoroConfig(threads=threads))
        studio = Studio(StudioConfig(data_dir=Path(home), engines=engines))
        judge, asr = SpeakerJudge(), Transcriber()
        for speaker in speakers:
            part = parts / f"{speaker}.json"
            row = json.loads(part.read_text()) if part.exists() else {}
            if all(n in row.get("settings", {}) for n in settings):
                continue
            row = run_speaker(speaker, split, settings, studio, judge, asr, row)
            part.write_text(json.dumps(row, indent=1, default=float) + "\n")
    if any(parts.glob("*.json")):
        print(report(merge(split)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("speakers", nargs="+", help="speakers of the split")
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--settings", nargs="+", default=["r16"], choices=sorted(SETTINGS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=0, help="override every setting's steps")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out = outputs(args.split)[1]
    refuse_to_overwrite([out, out.with_suffix(".md")], args.overwrite)
    np.random.seed(0)
    main(args.speakers, args.split, args.settings, args.threads, args.steps)
