"""Intelligibility of `standard` voices with and without the style fit's noise floor.

Enrolls one reference at `standard` quality (Whisper-base transcribes it) once per setting of
`StyleFitConfig`'s noise floor, speaks 8 new sentences through `Studio.clone` (the int8 ONNX
path), and gives Whisper-base's WER per sentence. Why: with the floor (10th percentile + 6 dB)
the bundled LJ reference's voice lost sentence-final words (session 12's CLI test).

    .venv/bin/python benchmarks/style_fit_floor_wer.py examples/lj_reference.flac none 10:6 10:0

Prints one line per setting and every sentence heard wrong; nothing is written.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from deepfake_studio import Studio, StudioConfig
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


def main(reference: Path, settings: list[str]) -> None:
    print(f"CPU: {cpu_model()}, load {os.getloadavg()[0]:.1f}")
    transcriber = Transcriber()
    for setting in settings:
        engines = EngineOptions(kokoro=KokoroConfig(style_fit=fit_config(setting)))
        with tempfile.TemporaryDirectory() as home:
            studio = Studio(StudioConfig(data_dir=Path(home), engines=engines))
            started = time.perf_counter()
            voice = studio.enroll(reference, "Floor Check", "measurement", quality="standard")
            enroll_s = time.perf_counter() - started
            wrong = []
            errors = []
            for sentence in SENTENCES:
                clip = studio.clone(sentence, voice=voice)
                heard = transcriber.transcribe(clip.samples, clip.sample_rate)
                errors.append(word_error_rate(sentence, heard))
                if errors[-1] > 0:
                    wrong.append(f"    {errors[-1]:.2f} {heard}")
        guard = voice.conditioning.info.get("guard", {})
        print(
            f"{setting}: WER {float(np.mean(errors)):.3f} over {len(SENTENCES)} sentences, "
            f"enroll {enroll_s:.0f} s (load {os.getloadavg()[0]:.1f}), guard kept "
            f"{guard.get('kept')}",
            flush=True,
        )
        print("\n".join(wrong), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("settings", nargs="+", help="none, or PERCENTILE:MARGIN_DB")
    args = parser.parse_args()
    main(args.reference, args.settings)
