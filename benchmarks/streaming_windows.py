"""How big the first streamed window should be (issue 24): first audio against stalls.

A smaller first window brings the first audio sooner, but the next window must then be
decoded while less audio plays: if it is not ready in time, a player falls silent. For each
first-window size and growth factor, `Studio.speak_stream` (bundled pack, watermark on)
speaks the one-sentence and the long text of `bench_streaming.py`; each piece's arrival time
is compared with when a player that started at the first piece needs it. Stall = the total
time a player would wait for pieces. Medians of --runs in one warm process.

    .venv/bin/python benchmarks/streaming_windows.py [--runs 3] [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from _bundled_voice import bundled_kokoro_voice
from _output import add_overwrite_flag, refuse_to_overwrite
from bench_streaming import LONG_TEXT, ONE_SENTENCE

from deepfake_studio import Studio, StudioConfig
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.synthesizer.kokoro.streaming import StreamConfig
from deepfake_studio.voices import Voice

HERE = Path(__file__).resolve().parent
SETTINGS = [(20, 2.0), (20, 1.5), (16, 2.0), (16, 1.5), (12, 2.0), (12, 1.5)]  # (frames, growth)


def timeline(studio: Studio, text: str, voice: Voice) -> tuple[float, float, float]:
    """(first audio s, stall s, RTF) of one stream."""
    t0 = time.perf_counter()
    arrivals, durations = [], []
    for piece in studio.speak_stream(text, voice):
        arrivals.append(time.perf_counter() - t0)
        durations.append(len(piece.samples) / piece.sample_rate)
    needed, stall = arrivals[0], 0.0
    for arrived, duration in zip(arrivals, durations, strict=True):
        if arrived > needed:
            stall += arrived - needed
            needed = arrived
        needed += duration
    return arrivals[0], stall, arrivals[-1] / sum(durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out = HERE / "streaming_windows"
    refuse_to_overwrite([out.with_suffix(".md"), out.with_suffix(".json")], args.overwrite)

    studio = Studio(StudioConfig(data_dir=Path(tempfile.mkdtemp(prefix="bench-windows-"))))
    voice = bundled_kokoro_voice(studio, "Bench Windows")
    for _ in range(2):  # warm: models loaded, first-run allocations done
        list(studio.speak_stream(ONE_SENTENCE, voice))
    load_start = os.getloadavg()
    rows = []
    for frames, growth in SETTINGS:
        studio.kokoro_streamer.config = replace(
            StreamConfig(), first_window_frames=frames, growth=growth
        )
        for name, text in (("one sentence", ONE_SENTENCE), ("long text", LONG_TEXT)):
            runs = [timeline(studio, text, voice) for _ in range(args.runs)]
            rows.append(
                {
                    "first_window_s": frames / 40,
                    "growth": growth,
                    "text": name,
                    "first_audio_s": statistics.median(r[0] for r in runs),
                    "stall_s": statistics.median(r[1] for r in runs),
                    "stall_runs": [r[1] for r in runs],
                    "rtf": statistics.median(r[2] for r in runs),
                }
            )
            print(rows[-1], flush=True)
    data = {"cpu": cpu_model(), "load_start": load_start, "load_end": os.getloadavg()}
    data["rows"] = rows
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    lines = [
        "# Streaming: the first window's size, first audio against stalls (issue 24)",
        "",
        f"`benchmarks/streaming_windows.py --runs {args.runs}`. CPU: {data['cpu']} (2 cores); "
        f"load average at the start {load_start[0]:.1f}, at the end {data['load_end'][0]:.1f} "
        "(the benchmark itself counts). `Studio.speak_stream`, bundled pack, watermark on. "
        "Stall: the total time a player that starts at the first piece waits for later "
        "pieces. Medians of the runs.",
        "",
        "| first window s | growth | text | first audio s | stall s (runs) | RTF |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        stalls = ", ".join(f"{s:.2f}" for s in r["stall_runs"])
        lines.append(
            f"| {r['first_window_s']:.1f} | {r['growth']} | {r['text']} | "
            f"{r['first_audio_s']:.3f} | {r['stall_s']:.3f} ({stalls}) | {r['rtf']:.2f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
