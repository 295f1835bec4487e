"""How each emotion moves pitch, range, loudness, tilt, voice quality and rate (issue 20, item 3).

Per EmoDB actor: the mean of each measure over the actor's clips of an emotion minus the
mean over the same actor's neutral clips; then the mean, spread and sign agreement of those
differences over the 10 actors. Measures are openSMILE eGeMAPS v02 functionals
(`evaluation/emotion_features.py`) plus the F0 declination slope from its frame F0.

    .venv/bin/python benchmarks/emotion_calibration.py [--data ../shared/data] [--overwrite]

Writes benchmarks/emotion_calibration.{json,md}. The table in
`synthesizer/kokoro/emotion.py` quotes these numbers. EmoDB's clips were cut or padded to
2.0 s by the mirror they come from: rate and pause measures are over cut sentences.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite

from deepfake_studio.audio import load_audio
from deepfake_studio.evaluation.emotion_features import (
    EmotionFeatures,
    read_emotion_corpus,
    relative_to_neutral,
)
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.evaluation.speakers import data_root

# (measure, unit, what it means) in the order of the table.
ROWS = (
    ("f0_mean_st", "st", "F0 level (mean, semitones)"),
    ("f0_range_st", "st", "F0 range (20th-80th percentile)"),
    ("f0_slope_st_per_s", "st/s", "F0 declination (linear slope over the clip)"),
    ("loudness_sone", "dB", "loudness (mean, as a ratio in dB)"),
    ("level_db", "dB", "equivalent sound level"),
    ("alpha_ratio_db", "dB", "alpha ratio, voiced (50-1000 vs 1-5 kHz; higher = flatter tilt)"),
    ("hammarberg_db", "dB", "Hammarberg index, voiced (lower = flatter tilt)"),
    ("slope_0_500", "dB/Hz", "spectral slope 0-500 Hz, voiced"),
    ("slope_500_1500", "dB/Hz", "spectral slope 500-1500 Hz, voiced"),
    ("hnr_db", "dB", "harmonics-to-noise ratio"),
    ("h1_h2_db", "dB", "H1-H2 (higher = breathier)"),
    ("jitter", "", "jitter (local)"),
    ("shimmer_db", "dB", "shimmer (local)"),
    ("voiced_onsets_per_s", "1/s", "voiced onsets per second of the voiced span (rate proxy)"),
    ("loudness_peaks_per_s", "1/s", "loudness peaks per second (rate proxy, clip incl. padding)"),
    ("voiced_segment_s", "s", "mean voiced segment length"),
    ("unvoiced_segment_s", "s", "mean unvoiced segment length"),
)
EMOTION_ORDER = ("happy", "sad", "angry", "fearful")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out_json = args.out / "emotion_calibration.json"
    out_md = args.out / "emotion_calibration.md"
    refuse_to_overwrite([out_json, out_md], args.overwrite)

    corpus = data_root(args.data) / "emotion"
    clips = read_emotion_corpus(corpus)
    features = EmotionFeatures()
    started = time.monotonic()
    rows: list[dict[str, object]] = []
    for clip in clips:
        measures = features.measures(load_audio(clip.path))
        rows.append({"speaker": clip.speaker, "emotion": clip.emotion, **measures})
    seconds = time.monotonic() - started
    names = [r[0] for r in ROWS]
    table = relative_to_neutral(rows, names)
    agreement = _sign_agreement(rows, names)
    neutral = {
        m: float(np.nanmean([float(r[m]) for r in rows if r["emotion"] == "neutral"]))  # type: ignore[arg-type]
        for m in names
    }
    counts = {e: sum(1 for r in rows if r["emotion"] == e) for e in ("neutral", *EMOTION_ORDER)}
    report = {
        "about": "EmoDB (shared/data/emotion), per actor: emotion mean - same actor's neutral "
        "mean, then mean/std over actors; loudness_sone as 20*log10 ratio",
        "clips": counts,
        "speakers": len({r["speaker"] for r in rows}),
        "extract_seconds": round(seconds, 1),
        "cpu": cpu_model(),
        "neutral_means": neutral,
        "relative_to_neutral": table,
        "same_sign_speakers": agreement,
    }
    out_json.write_text(json.dumps(report, indent=1, allow_nan=True) + "\n")
    out_md.write_text(_markdown(report))
    print(f"wrote {out_md} and {out_json} ({len(rows)} clips, {seconds:.0f} s)")


def _sign_agreement(rows: list[dict[str, object]], names: list[str]) -> dict[str, dict[str, int]]:
    """How many actors move each measure in the direction of the mean over actors."""
    table = relative_to_neutral(rows, names)
    result: dict[str, dict[str, int]] = {}
    for emotion, measures in table.items():
        result[emotion] = {}
        for name in names:
            sign = np.sign(measures[name]["mean"])
            per_speaker = [
                relative_to_neutral(
                    [r for r in rows if r["speaker"] == s and r["emotion"] in ("neutral", emotion)],
                    [name],
                )
                .get(emotion, {})
                .get(name, {})
                .get("mean", float("nan"))
                for s in sorted({str(r["speaker"]) for r in rows})
            ]
            result[emotion][name] = int(sum(1 for d in per_speaker if np.sign(d) == sign))
    return result


def _markdown(report: dict) -> str:  # type: ignore[type-arg]
    table = report["relative_to_neutral"]
    agree = report["same_sign_speakers"]
    n = report["speakers"]
    lines = [
        "# Emotion calibration: EmoDB, each emotion relative to the same actor's neutral speech",
        "",
        "`benchmarks/emotion_calibration.py` (issue 20, item 3). openSMILE eGeMAPS v02 "
        "functionals (`opensmile` 2.6.0) on "
        + ", ".join(f"{k} {v}" for k, v in report["clips"].items())
        + f" clips of {n} actors (German, 2.0 s clips cut or padded by the mirror). Per actor: "
        "mean over the emotion's clips minus mean over the actor's neutral clips; shown: the "
        f"mean over actors ± their standard deviation, and in brackets how many of the {n} "
        "actors move the same way as the mean. Loudness is the ratio of mean loudness (sone) "
        "in dB. Clips keep the mirror's levels (not re-normalised here).",
        "",
        "| measure | unit | neutral mean | " + " | ".join(EMOTION_ORDER) + " |",
        "|---|---|---|" + "---|" * len(EMOTION_ORDER),
    ]
    for name, unit, what in ROWS:
        cells = []
        for emotion in EMOTION_ORDER:
            m = table[emotion][name]
            cells.append(f"{m['mean']:+.3g} ± {m['std']:.2g} [{agree[emotion][name]}]")
        neutral = report["neutral_means"][name]
        lines.append(f"| {what} | {unit} | {neutral:.3g} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Reading it: the rate proxies are over cut sentences (about 3 clips in 4 end before the "
        "sentence does); the voiced-onset rate is over the voiced span only, so the padding "
        "after a short sentence does not lower it. No `surprised` in EmoDB: the studio's "
        "surprise settings come from published rules (see `synthesizer/kokoro/emotion.py`).",
        "",
        "Level: the mirror peak-normalised every clip (peaks at 1.0 in neutral, angry and sad "
        "alike), so the sound level *falls* for the loud emotions (their peaks are higher "
        "above their mean) and the loudness ratio is near 0 dB: absolute loudness cannot be "
        "calibrated on these files. Vocal effort still shows in the spectral tilt (alpha "
        "ratio, Hammarberg index, slopes), which does not depend on the level.",
        "",
        f"Extraction: {report['extract_seconds']} s for all clips on one core of {report['cpu']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
