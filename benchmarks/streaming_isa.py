"""Streamed synthesis on a CPU without VNNI and bfloat16, emulated on this one (issue 24).

The RTF target is stated for a 2-core Xeon without VNNI; when no such machine is at hand, the
instruction sets a process may use can be capped: oneDNN (convolutions, bfloat16 matmuls) by
ONEDNN_MAX_CPU_ISA, MKL (float32 matmuls) by MKL_ENABLE_INSTRUCTIONS, PyTorch's own vector
kernels by ATEN_CPU_CAPABILITY, and the studio's bfloat16 autocast switched off as it is on a
CPU without bfloat16 (`cpu_has_bfloat16`). Clock speed, caches and memory stay this machine's,
so the figures say what the missing instructions cost, not what a given Xeon does.

Each setting runs in its own process (the caps are read when the libraries load), the settings
take turns for --rounds rounds, and every process streams the one-sentence and the long text
of bench_streaming.py twice each through `Studio.speak_stream` and times the second (the first
sets up the window shapes). Medians per setting.

    .venv/bin/python benchmarks/streaming_isa.py --rounds 3 --out benchmarks/streaming_isa
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402

SETTINGS: dict[str, dict[str, str]] = {
    "this CPU as shipped (bfloat16 where the CPU has it)": {},
    "this CPU, float32": {"STUDIO_BENCH_FLOAT32": "1"},
    "AVX-512 without VNNI or bfloat16 (e.g. Skylake-SP), float32": {
        "STUDIO_BENCH_FLOAT32": "1",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
        "ATEN_CPU_CAPABILITY": "avx512",
    },
    "AVX2 only (e.g. Broadwell), float32": {
        "STUDIO_BENCH_FLOAT32": "1",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
    },
}


def child() -> None:
    """One process: warm up, stream each text once, print the figures as JSON."""
    import torch
    from _bundled_voice import bundled_kokoro_voice
    from bench_streaming import LONG_TEXT, ONE_SENTENCE, timed_stream

    from deepfake_studio import Studio, StudioConfig
    from deepfake_studio.synthesizer import EngineOptions
    from deepfake_studio.synthesizer.kokoro.engine import KokoroConfig

    float32 = bool(os.environ.get("STUDIO_BENCH_FLOAT32"))
    kokoro = KokoroConfig(bfloat16=False if float32 else None)
    studio = Studio(
        StudioConfig(
            data_dir=Path(tempfile.mkdtemp(prefix="bench-isa-")),
            engines=EngineOptions(kokoro=kokoro),
        )
    )
    voice = bundled_kokoro_voice(studio, "Bench ISA")
    torch_path = studio.kokoro_streamer.engine.torch_path
    studio.warm_streaming()
    timed_stream(studio.speak_stream("Warm up, once more.", voice))
    row: dict[str, Any] = {
        "bfloat16": torch_path.bfloat16,
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
    }
    for name, text in (("one sentence", ONE_SENTENCE), ("long text", LONG_TEXT)):
        # The first stream of a text pays one-off costs (oneDNN sets up each new window
        # shape once per process): its second stream is the one measured.
        timed_stream(studio.speak_stream(text, voice))
        first, total, audio = timed_stream(studio.speak_stream(text, voice))
        row[name] = {"first_audio_s": first, "rtf": total / audio, "audio_s": audio}
    print("RESULT " + json.dumps(row), flush=True)


def measure(rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SETTINGS}
    for round_no in range(rounds):
        for name, env in SETTINGS.items():
            out = subprocess.run(
                [sys.executable, __file__, "--child"],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            row = json.loads(out.split("RESULT ", 1)[1])
            runs[name].append(row)
            print(round_no, name, row, flush=True)
    return runs


def summary(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for name, got in runs.items():
        row: dict[str, Any] = {"setting": name, "aten_capability": got[0]["aten_capability"]}
        for text in ("one sentence", "long text"):
            row[text] = {
                key: statistics.median(r[text][key] for r in got)
                for key in ("first_audio_s", "rtf")
            }
        rows.append(row)
    return rows


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    lines = [
        "# Streamed synthesis without VNNI and bfloat16, emulated (issue 24)",
        "",
        f"CPU: {result['cpu']} (2 cores). Load average at start {result['load_start']}, at end "
        f"{result['load_end']}. `benchmarks/streaming_isa.py --rounds {result['rounds']}`: each "
        "setting in its own process, the settings taking turns, the second of two "
        "`Studio.speak_stream` calls of each text per process timed; medians over the "
        "rounds. The caps remove instructions, not clock speed or cache: a real Xeon's "
        "figures differ by its clock.",
        "",
        "| setting | PyTorch vector ISA | one sentence: first audio s | RTF | long text: first "
        "audio s | RTF |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["summary"]:
        one, long = row["one sentence"], row["long text"]
        lines.append(
            f"| {row['setting']} | {row['aten_capability']} | {one['first_audio_s']:.2f} | "
            f"{one['rtf']:.2f} | {long['first_audio_s']:.2f} | {long['rtf']:.2f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "streaming_isa")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    if args.child:
        child()
        return
    md, js = args.out.with_suffix(".md"), args.out.with_suffix(".json")
    refuse_to_overwrite([md, js], args.overwrite)
    from deepfake_studio.evaluation.machine import cpu_model

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    runs = measure(args.rounds)
    result = {
        "cpu": cpu_model(),
        "rounds": args.rounds,
        "load_start": load,
        "load_end": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "runs": runs,
        "summary": summary(runs),
    }
    print("timed parts done", flush=True)
    js.write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(md, result)
    print(f"wrote {md} and {js}")


if __name__ == "__main__":
    main()
