"""Intelligibility of `standard` voices with and without the style fit's noise floor.

Enrolls a reference at `standard` quality (Whisper-base transcribes it; the guard on) once per
setting of `StyleFitConfig`'s noise floor, speaks 8 new sentences through `Studio.clone` (the
int8 ONNX path), and gives Whisper-base's WER per sentence. Why: with the floor (10th
percentile + 6 dB) the bundled LJ reference's voice lost sentence-final words (session 12's
CLI test; most of that loss was a mid-sentence cut `Studio.speak` made, fixed in session 14).
A reference is a file (`--reference`), or `--speaker ID` (a dev speaker cut as `eval clone`
cuts it), for which the independent judge's normalised similarity on `style_fit_dev.py`'s two
held-out sentences is also given.

    .venv/bin/python benchmarks/style_fit_floor_wer.py --reference examples/lj_reference.flac \
        none 10:6
    .venv/bin/python benchmarks/style_fit_floor_wer.py --speaker VCTK_p227 --out R.json none 10:6

A setting ending in `+seed` also lets the style encoder's table (`--style-encoder`, default
the shipped one) compete as the fit's start (`KokoroConfig.seed_from_style_encoder`):

    .venv/bin/python benchmarks/style_fit_floor_wer.py --speaker VCTK_p227 --out R.json \
        10:6 10:6+seed

Prints one line per setting and every sentence heard wrong; `--out` also keeps the numbers
(resumable: a finished speaker and setting is not run again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepfake_studio import Audio, Studio, StudioConfig
from deepfake_studio.evaluation.asr import Transcriber, word_error_rate
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.synthesizer import EngineOptions
from deepfake_studio.synthesizer.kokoro.engine import KokoroConfig
from deepfake_studio.synthesizer.kokoro.reconstruct import StyleFitConfig

SENTENCES = [
    "The museum opens at nine and closes late on Thursday evenings.",
    "Please remember to water the plants while I am away next week.",
    "A gentle breeze carried the smell of rain across the open fields.",
    "Our train leaves from platform four at a quarter past seven.",
    "She opened the letter slowly and read it twice before answering.",
    "Fresh bread and warm soup were waiting for us in the kitchen.",
    "The committee will announce its decision on Monday morning.",
    "He parked the bicycle outside the library and went in quietly.",
]


def fit_config(setting: str) -> StyleFitConfig:
    """'none' (no floor) or 'PERCENTILE:MARGIN_DB'."""
    if setting == "none":
        return StyleFitConfig(noise_floor_percentile=None)
    percentile, margin = setting.split(":")
    return StyleFitConfig(
        noise_floor_percentile=float(percentile), noise_floor_margin_db=float(margin)
    )


def kokoro_config(setting: str, style_encoder: Path | None) -> KokoroConfig:
    """The engine's settings for 'FLOOR' or 'FLOOR+seed' (FLOOR as in `fit_config`)."""
    floor, _, seed = setting.partition("+")
    config = KokoroConfig(style_fit=fit_config(floor), seed_from_style_encoder=seed == "seed")
    return replace(config, style_encoder=style_encoder) if style_encoder else config


def main(
    reference: str, settings: list[str], out: Path | None, style_encoder: Path | None = None
) -> None:
    print(f"CPU: {cpu_model()}, load {os.getloadavg()[0]:.1f}")
    transcriber = Transcriber()
    results = json.loads(out.read_text()) if out and out.exists() else {}
    for setting in settings:
        if setting in results.get(reference, {}):
            continue
        engines = EngineOptions(kokoro=kokoro_config(setting, style_encoder))
        with tempfile.TemporaryDirectory() as home:
            studio = Studio(StudioConfig(data_dir=Path(home), engines=engines))
            anchors = None
            clip: Path | Audio = Path(reference)
            if reference.startswith("speaker:"):
                from style_fit_dev import HELD_OUT, speaker_anchors

                from deepfake_studio.evaluation.judge import SpeakerJudge, cosine

                judge = SpeakerJudge()
                anchors = speaker_anchors(reference.split(":", 1)[1], "dev", studio, judge)
                clip = anchors.clip
            started = time.perf_counter()
            voice = studio.enroll(clip, "Floor Check", "measurement", quality="standard")
            enroll_s = time.perf_counter() - started
            wrong = []
            errors = []
            for sentence in SENTENCES:
                spoken = studio.clone(sentence, voice=voice)
                heard = transcriber.transcribe(spoken.samples, spoken.sample_rate)
                errors.append(word_error_rate(sentence, heard))
                if errors[-1] > 0:
                    wrong.append(f"    {errors[-1]:.2f} {heard}")
            row = {"wer": float(np.mean(errors)), "enroll_s": round(enroll_s, 1)}
            if anchors is not None:
                held = studio.clone(" ".join(HELD_OUT), voice=voice)
                sim = cosine(judge.embed(held.samples, held.sample_rate), anchors.truth)
                row["norm"] = round(anchors.norm(sim), 4)
        guard = voice.conditioning.info.get("guard", {})
        row |= {"guard_kept": guard.get("kept"), "load": round(os.getloadavg()[0], 1)}
        row["start"] = voice.conditioning.info.get("best_pack")
        row["wrong"] = wrong
        print(
            f"{reference} {setting}: WER {row['wer']:.3f} over {len(SENTENCES)} sentences, "
            f"norm {row.get('norm', '-')}, enroll {enroll_s:.0f} s (load {row['load']}), "
            f"start {row['start']}, guard kept {row['guard_kept']}",
            flush=True,
        )
        print("\n".join(wrong), flush=True)
        if out:
            results.setdefault(reference, {})[setting] = row
            out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("settings", nargs="+", help="none or PERCENTILE:MARGIN_DB [+seed]")
    parser.add_argument("--style-encoder", type=Path, help="table for +seed (default: shipped)")
    parser.add_argument("--reference", type=Path, help="a recording to enroll")
    parser.add_argument("--speaker", help="or a dev speaker (cut as `eval clone` cuts it)")
    parser.add_argument("--out", type=Path, help="JSON to keep the numbers in (resumable)")
    args = parser.parse_args()
    if (args.reference is None) == (args.speaker is None):
        parser.error("give exactly one of --reference or --speaker")
    main(
        str(args.reference) if args.reference else f"speaker:{args.speaker}",
        args.settings,
        args.out,
        args.style_encoder,
    )
