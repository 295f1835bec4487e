"""Speed and memory of cloning on this machine; medians go to benchmarks/results.{md,json}.

    make bench            (or: .venv/bin/python benchmarks/bench_clone.py --runs 5)

Measures, in one warm process: enrollment time of the bundled example reference (kokoro at
each enrollment quality, and piper), the real-time factor of synthesis with each enrolled
voice, the time to the first audio of a long text, and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

from _output import add_overwrite_flag, refuse_to_overwrite

from deepfake_studio import Studio, StudioConfig
from deepfake_studio.evaluation.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "examples" / "lj_reference.flac"
SHORT_TEXT = (
    "The old lighthouse keeper climbed the stairs every evening at dusk. "
    "He polished the great lens until it shone, then lit the lamp and watched the ships go by."
)
LONG_TEXT = " ".join(
    [
        "Once upon a time, in a village by the sea, there lived a girl who collected shells.",
        "Every morning she walked along the shore before the fishermen returned.",
        "She sorted the shells by colour, by size, and by the sound they made in the wind.",
        "One day she found a shell that hummed a tune nobody in the village had ever heard.",
    ]
    * 6
)


# (label, engine, enrollment quality): the studio's default is kokoro standard.
SETUPS = (
    ("kokoro-quick", "kokoro", "quick"),
    ("kokoro-standard", "kokoro", "standard"),
    ("kokoro-best", "kokoro", "best"),
    ("piper", "piper", None),
)
HEADERS = {"kokoro-standard": "kokoro standard (default)"}


def machine() -> dict[str, str | int]:
    cpu = cpu_model()
    import onnxruntime
    import torch

    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "memory_gib": round(mem_gib),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "load_average_at_start": f"{os.getloadavg()[0]:.2f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--enroll-runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    refuse_to_overwrite([args.out / "results.json", args.out / "results.md"], args.overwrite)

    results: dict[str, object] = {"machine": machine(), "runs": args.runs}
    with tempfile.TemporaryDirectory() as home:
        studio = Studio(StudioConfig(data_dir=Path(home)))
        for engine in ("kokoro", "piper"):
            studio.engine(engine)  # load models outside the timings
        warm, _, _ = studio.load_reference(REFERENCE)
        studio.encoder.embed(warm.samples, warm.sample_rate)

        enroll_s: dict[str, list[float]] = {}
        for setup, engine, quality in SETUPS:
            # best adapts for minutes: one run (its RTF runs are repeated as the others').
            runs = 1 if quality == "best" else args.enroll_runs if engine == "kokoro" else 2
            times = []
            for i in range(runs):
                start = time.perf_counter()
                studio.enroll(
                    REFERENCE,
                    f"bench-{setup}",
                    "benchmark run",
                    engine=engine,
                    seed=i,
                    overwrite=True,
                    quality=quality,
                )
                times.append(time.perf_counter() - start)
            enroll_s[setup] = times
            print(f"enroll {setup}: {[round(t, 1) for t in times]} s", flush=True)

        rtf: dict[str, list[float]] = {}
        for setup, _, _ in SETUPS:
            voice = studio.voice(f"bench-{setup}")
            studio.clone("Warm up.", voice=voice)
            values = []
            for _ in range(args.runs):
                start = time.perf_counter()
                audio = studio.clone(SHORT_TEXT, voice=voice)
                values.append((time.perf_counter() - start) / audio.duration)
            rtf[setup] = values
            print(f"rtf {setup}: {[round(v, 3) for v in values]}", flush=True)

        first_audio: list[float] = []
        voice = studio.voice("bench-kokoro-standard")
        for _ in range(args.runs):
            start = time.perf_counter()
            stream = studio.speak(LONG_TEXT, voice)
            next(stream)
            first_audio.append(time.perf_counter() - start)
            stream.close()
        print(f"first audio: {[round(v, 3) for v in first_audio]} s", flush=True)
        reference_s = studio.load_reference(REFERENCE)[0].duration

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med = statistics.median
    results.update(
        {
            "enroll_seconds": {k: {"median": med(v), "runs": v} for k, v in enroll_s.items()},
            "rtf": {k: {"median": med(v), "runs": v} for k, v in rtf.items()},
            "first_audio_seconds": {
                "median": med(first_audio),
                "runs": first_audio,
                "text_chars": len(LONG_TEXT),
            },
            "peak_rss_mib": round(peak_mib),
        }
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    m = results["machine"]
    lines = [
        "# Clone benchmark",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
        f"Python {m['python']}, torch {m['torch']}, onnxruntime {m['onnxruntime']}. "
        f"Load average at start: {m['load_average_at_start']} (above ~1 the cores were shared "
        "with other work and every time below is inflated).",
        f"Medians of {args.runs} runs in one warm process (enrollment: {args.enroll_runs} runs "
        "per kokoro quality, one for best, 2 for piper). Reference: examples/lj_reference.flac "
        f"({reference_s:.1f} s after silence trimming); the standard fit transcribes it with "
        "Whisper-base (included in its time).",
        "",
        "| measure | "
        + " | ".join(HEADERS.get(k, k.replace("-", " ")) for k, _, _ in SETUPS)
        + " | target |",
        "|---|" + "---|" * (len(SETUPS) + 1),
        f"| synthesis RTF (enrolled voice, {len(SHORT_TEXT)} chars) | "
        + " | ".join(f"{med(rtf[k]):.3f}" for k, _, _ in SETUPS)
        + " | ≤ 0.5 |",
        "| enrollment (s) | "
        + " | ".join(f"{med(enroll_s[k]):.1f}" for k, _, _ in SETUPS)
        + " | standard ≤ 120, best ≤ 360 for 10 s (issue 19) |",
        f"| time to first audio, {len(LONG_TEXT)}-char text (s) | "
        + " | ".join(
            f"{med(first_audio):.2f}" if k == "kokoro-standard" else "–" for k, _, _ in SETUPS
        )
        + " | ≤ 1.5 |",
        f"| peak resident memory of the process (MiB) | {round(peak_mib)} (one process) |"
        + " |" * (len(SETUPS) - 1)
        + " – |",
        "",
    ]
    (args.out / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
