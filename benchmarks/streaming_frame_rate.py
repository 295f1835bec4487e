"""Stream settings, timed: first audio, stall and RTF of `speak_stream` (issue 24).

Since session 18 a stream runs the decoder's frame-rate blocks (its encode block and four
decode blocks) over the whole sentence before the first window
(`StreamConfig.whole_sentence_frame_rate`): their per-window instance-norm statistics cost
words (`streaming_norm_oracle.md`, `streaming_fidelity_frame_rate.md`); since session 19 the
generator pools its statistics over the windows so far (`generator_running_stats`). What a
setting costs in time: `Studio.speak_stream` of `bench_streaming.py`'s one-sentence and long
texts with each setting, runs interleaved (the order alternating) in one warm process.
`streaming_frame_rate.md` (session 18) also timed the blocks run only after the first window
(an option since removed); `streaming_running_time.md` is session 19's comparison.

    .venv/bin/python benchmarks/streaming_frame_rate.py [--runs 7] [--settings ...] \
        [--out benchmarks/streaming_running_time] [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import replace
from pathlib import Path

import torch
from _bundled_voice import warm_streaming_studio
from _output import add_overwrite_flag, refuse_to_overwrite
from bench_streaming import LONG_TEXT, ONE_SENTENCE
from streaming_windows import timeline

from deepfake_studio.evaluation.machine import cpu_model

HERE = Path(__file__).resolve().parent
SETTINGS = {  # StreamConfig fields per setting (the shipped config with these changed)
    "once per sentence, before the first window": {"generator_running_stats": False},
    "per window (before session 18)": {"whole_sentence_frame_rate": False},
    "shipped (session 19: generator statistics pooled over the windows so far)": {},
}
DEFAULT_SETTINGS = list(SETTINGS)[:2]  # what streaming_frame_rate.md compared
TEXTS = {"one sentence": ONE_SENTENCE, "long text": LONG_TEXT}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS, choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=HERE / "streaming_frame_rate")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out = args.out
    settings = {name: SETTINGS[name] for name in args.settings}
    refuse_to_overwrite([out.with_suffix(".md"), out.with_suffix(".json")], args.overwrite)

    studio, voice = warm_streaming_studio("Frame Rate", ONE_SENTENCE)
    streamer = studio.kokoro_streamer
    shipped = streamer.config
    load_start = os.getloadavg()
    rows: dict[str, dict[str, list[tuple[float, float, float]]]] = {
        s: {t: [] for t in TEXTS} for s in settings
    }
    for run in range(args.runs):
        order = list(settings.items())
        if run % 2:
            order.reverse()
        for name, fields in order:
            streamer.config = replace(shipped, **fields)
            for label, text in TEXTS.items():
                rows[name][label].append(timeline(studio, text, voice))
    streamer.config = shipped
    print("timed parts done", flush=True)
    load_end = os.getloadavg()
    summary = {
        name: {
            label: {
                "first_audio_s": statistics.median(r[0] for r in runs),
                "stall_s": statistics.median(r[1] for r in runs),
                "rtf": statistics.median(r[2] for r in runs),
                "first_audio_runs": [round(r[0], 3) for r in runs],
            }
            for label, runs in per_text.items()
        }
        for name, per_text in rows.items()
    }
    data = {
        "cpu": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "load_start": load_start,
        "load_end": load_end,
        "runs": args.runs,
        "summary": summary,
    }
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    lines = [
        "# Stream settings: time to first audio and RTF (issue 24)",
        "",
        f"`benchmarks/streaming_frame_rate.py --runs {args.runs}` ({len(settings)} settings): "
        f"{data['cpu']}, torch "
        f"{data['torch_threads']} threads, load average at start "
        f"{', '.join(f'{x:.2f}' for x in load_start)}, at end "
        f"{', '.join(f'{x:.2f}' for x in load_end)}. `Studio.speak_stream` with the bundled "
        "voice, the settings interleaved (order alternating); medians of the runs.",
        "",
        "| setting | text | first audio s (median) | runs | stall s | RTF |",
        "|---|---|---|---|---|---|",
    ]
    for name, per_text in summary.items():
        for label, r in per_text.items():
            runs = ", ".join(f"{x:.2f}" for x in r["first_audio_runs"])
            lines.append(
                f"| {name} | {label} | {r['first_audio_s']:.3f} | {runs} | {r['stall_s']:.3f} "
                f"| {r['rtf']:.3f} |"
            )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
