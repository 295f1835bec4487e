"""A `best` voice on idle cores: enrollment time and synthesis RTF (issue 19 items 3 and 5).

    .venv/bin/python benchmarks/adapt_idle.py [--speaker VCC16_SF1 --split dev] [--runs 3]

Enrolls one speaker's reference (cut as `eval clone` cuts it) at `best` through `Studio`, as a
user would (Whisper transcript, style fit, guard, adaptation), then speaks a two-sentence text
with the voice --runs times: the first run includes expanding the voice's low-rank factors
into decoder weights, the later ones reuse them. Only meaningful on otherwise idle cores: the
load average is recorded at the start and the end. Writes benchmarks/adapt_idle.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from deepfake_studio import Studio, StudioConfig
from deepfake_studio.evaluation.speakers import load_manifest, speaker_case

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite
from bench_clone import SHORT_TEXT

from deepfake_studio.evaluation.machine import cpu_model

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speaker", default="VCC16_SF1")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out_json, out_md = args.out / "adapt_idle.json", args.out / "adapt_idle.md"
    refuse_to_overwrite([out_json, out_md], args.overwrite)
    load_start = os.getloadavg()
    case = speaker_case(args.speaker, load_manifest(None))
    if case is None:
        raise SystemExit(f"{args.speaker}: too little audio")
    with tempfile.TemporaryDirectory() as home:
        studio = Studio(StudioConfig(data_dir=Path(home)))
        t0 = time.perf_counter()
        voice = studio.create_voice(case.reference, name="bench", quality="best")
        enroll_s = time.perf_counter() - t0
        adaptation = dict(voice.conditioning.info.get("adaptation") or {})
        adaptation.pop("checks", None)
        runs = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            audio = studio.clone(SHORT_TEXT, voice=voice)
            runs.append({"seconds": time.perf_counter() - t0, "audio_s": audio.duration})
    rtfs = [r["seconds"] / r["audio_s"] for r in runs]
    data = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "speaker": args.speaker,
        "reference_s": round(case.reference.duration, 2),
        "enroll_s": round(enroll_s, 1),
        "adaptation": adaptation,
        "rtf_runs": [round(x, 3) for x in rtfs],
        "rtf_first": round(rtfs[0], 3),
        "rtf_median_later": round(statistics.median(rtfs[1:]), 3) if len(rtfs) > 1 else None,
    }
    out_json.write_text(json.dumps(data, indent=1) + "\n")
    kept = "rolled back to the style fit" if adaptation.get("rolled_back") else "kept"
    out_md.write_text(
        "# A `best` voice on idle cores\n\n"
        f"Produced by `benchmarks/adapt_idle.py`. CPU: {data['cpu']} ({data['cores']} cores); "
        f"load average at start {data['load_average_start']}, at end {data['load_average_end']}."
        f"\n\nSpeaker {args.speaker} ({data['reference_s']} s reference, transcribed by "
        f"Whisper-base): `best` enrollment **{data['enroll_s']} s** (target <= 360 s), "
        f"adaptation {kept} (step {adaptation.get('kept_step')}, "
        f"{adaptation.get('stored_mb')} MB). Synthesis of a two-sentence text "
        f"({runs[0]['audio_s']:.1f} s of audio) through the PyTorch path: RTF "
        f"{data['rtf_first']} on the first run (the voice's factors expanded), "
        f"{data['rtf_median_later']} median of the later runs (target <= 1.0); all runs "
        f"{data['rtf_runs']}.\n"
    )
    print(out_md.read_text())


if __name__ == "__main__":
    main()
