"""Detector inference speed on this machine → benchmarks/detector_speed.{md,json}.

    .venv/bin/python benchmarks/bench_detector.py --runs 7

Times `Detector.detect` (decode excluded; resampling, loudness, LFCC, VAD, ONNX and
calibration included) on real speech of several lengths, in one warm process with 2 threads,
and reports the median speed as a multiple of real time (audio seconds per second of work).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from _output import add_overwrite_flag, refuse_to_overwrite

from deepfake_studio.audio import Audio, load_audio
from deepfake_studio.detector import Detector, DetectorConfig

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "examples" / "lj_reference.flac"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    refuse_to_overwrite(
        [args.out / "detector_speed.json", args.out / "detector_speed.md"], args.overwrite
    )

    detector = Detector(DetectorConfig(threads=args.threads))
    real = load_audio(REFERENCE)
    rows = []
    for seconds in (4, 30, 300):
        reps = int(np.ceil(seconds / real.duration))
        clip = Audio(
            np.tile(real.samples, reps)[: int(seconds * real.sample_rate)], real.sample_rate
        )
        detector.detect(clip)  # warm-up
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            detector.detect(clip)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        rows.append(
            {
                "audio_s": seconds,
                "median_s": round(median, 4),
                "x_real_time": round(seconds / median, 1),
                "runs": args.runs,
            }
        )
        print(
            f"{seconds:4d} s of audio: {median * 1000:.1f} ms  ({seconds / median:.0f}x real time)"
        )
    load = os.getloadavg()[0]
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "threads": args.threads,
        "load_average_1min_at_end": round(load, 2),
        "rows": rows,
    }
    (args.out / "detector_speed.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"Detector speed, {result['machine']}, {args.threads} threads, median of {args.runs} runs "
        f"(1-min load average at the end: {load:.2f}; input {REFERENCE.name} at "
        f"{real.sample_rate} Hz, repeated).",
        "",
        "| audio | time | × real time |",
        "|---|---|---|",
        *(
            f"| {r['audio_s']} s | {1000 * r['median_s']:.1f} ms | {r['x_real_time']:.0f}× |"
            for r in rows
        ),
        "",
    ]
    (args.out / "detector_speed.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
