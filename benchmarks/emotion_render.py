"""What Kokoro's emotion transform does to its output, measured like the calibration (issue 20).

For each bundled voice and emotion (strength 1): the same sentences spoken neutral and with
the emotion, three ways — the prosody edit and tempo only (no tilt), the full transform, and
the calibration's target — compared on openSMILE eGeMAPS measures as emotion minus neutral.
The "prosody only" alpha ratio is what `kokoro/emotion.py`'s tilt values subtract from the
target. Also times each synthesis (neutral runs on the int8 ONNX, an emotion on the
PyTorch path) for the issue's 1.5× budget.

    .venv/bin/python benchmarks/emotion_render.py [--voices jf_alpha jm_kumo] [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite

from deepfake_studio.audio import Audio
from deepfake_studio.evaluation.emotion_features import EmotionFeatures
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.synthesizer.emotion import EMOTIONS, with_emotion
from deepfake_studio.synthesizer.kokoro import KokoroEngine
from deepfake_studio.synthesizer.kokoro.emotion import EMOTION_TABLE, KokoroEmotion

SENTENCES = (
    "The weather changed completely while we were walking home.",
    "I never thought she would open the letter before dinner.",
    "They moved the old piano into the middle of the room.",
)
MEASURES = ("f0_mean_st", "f0_range_st", "alpha_ratio_db", "hammarberg_db", "hnr_db")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", nargs="+", default=["jf_alpha", "jm_kumo"])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out_json, out_md = args.out / "emotion_render.json", args.out / "emotion_render.md"
    refuse_to_overwrite([out_json, out_md], args.overwrite)
    calibration = json.loads((Path(__file__).parent / "emotion_calibration.json").read_text())

    engine = KokoroEngine()
    features = EmotionFeatures()
    load_start = os.getloadavg()
    results: dict[str, dict] = {}
    for voice in args.voices:
        base = replace(engine.default_conditioning(), arrays={"style": engine.style_packs[voice]})
        engine.synthesize("Warm up.", base)  # first-call costs out of the timings
        engine.synthesize("Warm up.", with_emotion(base, "kokoro", "happy", 1.0))
        per_voice: dict[str, dict] = {}
        neutral = _speak(engine, features, base)
        for emotion in EMOTIONS[1:]:
            full_cond = with_emotion(base, "kokoro", emotion, 1.0)
            transform = KokoroEmotion.of(full_cond)
            assert transform is not None
            untilted = KokoroEmotion(replace(transform.settings, tilt_db=0.0, eq_db=()))
            prosody_only = _speak(
                engine, features, untilted.conditioning(base), transform.settings.tempo
            )
            full = _speak(engine, features, full_cond)
            target = calibration["relative_to_neutral"].get(emotion)
            per_voice[emotion] = {
                "prosody_only": _delta(prosody_only, neutral),
                "full": _delta(full, neutral),
                "target": {m: target[m]["mean"] for m in MEASURES} if target else None,
                "duration_ratio": full["seconds"] / neutral["seconds"],
                "time_ratio": full["compute"] / neutral["compute"],
                "rtf": full["compute"] / full["seconds"],
            }
        per_voice["neutral_rtf"] = neutral["compute"] / neutral["seconds"]
        results[voice] = per_voice
    report = {
        "sentences": SENTENCES,
        "cpu": cpu_model(),
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "tilt_db": {e: EMOTION_TABLE[e].tilt_db for e in EMOTIONS[1:]},
        "voices": results,
    }
    out_json.write_text(json.dumps(report, indent=1) + "\n")
    out_md.write_text(_markdown(report))
    print(f"wrote {out_md}")


def _speak(engine: KokoroEngine, features: EmotionFeatures, cond, speed: float = 1.0) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Mean measures over the sentences, total audio seconds and compute seconds."""
    rows, seconds, compute = [], 0.0, 0.0
    for sentence in SENTENCES:
        started = time.perf_counter()
        samples = engine.synthesize(sentence, cond, speed)
        compute += time.perf_counter() - started
        seconds += len(samples) / engine.sample_rate
        rows.append(features.measures(Audio(samples, engine.sample_rate)))
    means = {m: float(np.nanmean([r[m] for r in rows])) for m in MEASURES}
    return {**means, "seconds": seconds, "compute": compute}


def _delta(a: dict, b: dict) -> dict[str, float]:  # type: ignore[type-arg]
    return {m: a[m] - b[m] for m in MEASURES}


def _markdown(report: dict) -> str:  # type: ignore[type-arg]
    lines = [
        "# Kokoro's emotion transform, measured on its output",
        "",
        "`benchmarks/emotion_render.py`: "
        f"{len(report['sentences'])} English sentences per voice, each emotion at strength 1 "
        "minus the same voice's neutral (openSMILE eGeMAPS means over the sentences). "
        "*prosody* = the F0/energy edit and tempo alone; *full* = with the voice-quality filter "
        "(`tilt_db` per emotion: "
        + ", ".join(f"{e} {v:+.1f} dB" for e, v in report["tilt_db"].items())
        + "; happy: the equaliser `EQ_HAPPY` instead, `emotion_spectrum.md`); "
        "*target* = EmoDB (`emotion_calibration.md`; surprised has none there).",
        "",
        "| voice | emotion | ΔF0 st (prosody / full / target) | Δrange st | Δalpha ratio dB "
        "| ΔHammarberg dB | ΔHNR dB | duration × | synthesis time × neutral |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for voice, rows in report["voices"].items():
        for emotion, r in rows.items():
            if emotion == "neutral_rtf":
                continue
            cells = []
            for m in MEASURES:
                t = r["target"][m] if r["target"] else float("nan")
                cells.append(f"{r['prosody_only'][m]:+.1f} / {r['full'][m]:+.1f} / {t:+.1f}")
            lines.append(
                f"| {voice} | {emotion} | "
                + " | ".join(cells)
                + f" | {r['duration_ratio']:.2f} | {r['time_ratio']:.2f} |"
            )
    lines += [
        "",
        "Synthesis time: neutral runs on the int8 ONNX, an emotion on the PyTorch path "
        "(bfloat16 decoder where the CPU has it); the ratio is compute time per sentence set, "
        "not per second of audio (a slower emotion speaks longer). Neutral RTF: "
        + ", ".join(f"{v} {rows['neutral_rtf']:.2f}" for v, rows in report["voices"].items())
        + f". CPU: {report['cpu']}, 2 cores shared with other work; load average "
        f"{report['load_start'][0]:.1f} at the start, {report['load_end'][0]:.1f} at the end.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
