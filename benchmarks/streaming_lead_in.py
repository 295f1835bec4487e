"""When a listener hears the first word of a stream, not only its first bytes (issue 24).

Kokoro puts 0.2-0.35 s of silence before a sentence's first word; with a 0.4 s first window
the first piece held almost no speech, so "first audio" came well before anything audible.
`StreamConfig.lead_in_frames` starts the first sentence of a stream 0.1 s before its speech
(read from the predicted energy). For each text, `Studio.speak_stream` (bundled pack,
watermark on) with and without it, interleaved, in one warm process. Per stream: first audio
(the first piece's arrival), first word heard (a player starts at the first piece and plays
the pieces back to back, waiting when one is late; the word is the first 25 ms frame within
40 dB of the stream's loudest), stall (total waiting after the start) and RTF.

    .venv/bin/python benchmarks/streaming_lead_in.py [--rounds 5] [--overwrite | --out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _bundled_voice import warm_streaming_studio
from _output import add_overwrite_flag, markdown_table, refuse_to_overwrite
from bench_streaming import LONG_TEXT, ONE_SENTENCE

from deepfake_studio import Studio
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.voices import Voice

HERE = Path(__file__).resolve().parent
TEXTS = [
    ONE_SENTENCE,
    LONG_TEXT,
    "Hello there, how are you today?",
    "Please call Stella.",
    "Sixty-four people sat in silence.",
    "I never said she stole my money.",
    "Welcome back! Your order is on its way.",
    "Can you hear me now?",
]
WAYS = {"lead-in 0.1 s (shipped)": 4, "Kokoro's own silence (before)": None}
FRAME = 600  # 25 ms at 24 kHz


def speech_onset_s(samples: np.ndarray, rate: int) -> float:
    """Start of the first 25 ms frame within 40 dB of the loudest frame."""
    frames = samples[: len(samples) // FRAME * FRAME].reshape(-1, FRAME)
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    return float(np.argmax(level > level.max() - 40)) * FRAME / rate


def one_stream(studio: Studio, text: str, voice: Voice) -> dict[str, float]:
    t0 = time.perf_counter()
    arrivals, pieces = [], []
    for piece in studio.speak_stream(text, voice):
        arrivals.append(time.perf_counter() - t0)
        pieces.append(piece.samples)
    rate = 24_000
    onset = speech_onset_s(np.concatenate(pieces), rate)
    # Play back to back from the first arrival; a late piece starts when it arrives.
    clock, stall, heard, played = arrivals[0], 0.0, None, 0.0
    for arrived, samples in zip(arrivals, pieces, strict=True):
        if arrived > clock:
            stall += arrived - clock
            clock = arrived
        length = len(samples) / rate
        if heard is None and played + length > onset:
            heard = clock + (onset - played)
        clock += length
        played += length
    return {
        "first_audio_s": arrivals[0],
        "first_word_s": float(heard if heard is not None else clock),
        "speech_onset_in_stream_s": onset,
        "stall_s": stall,
        "rtf": arrivals[-1] / played,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "streaming_lead_in")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    refuse_to_overwrite(
        [args.out.with_suffix(".md"), args.out.with_suffix(".json")], args.overwrite
    )

    studio, voice = warm_streaming_studio("Lead-in", ONE_SENTENCE)
    streamer = studio.kokoro_streamer
    shipped = streamer.config
    load_start = os.getloadavg()
    runs: dict[str, dict[str, list[dict[str, float]]]] = {w: {t: [] for t in TEXTS} for w in WAYS}
    for _ in range(args.rounds):
        for text in TEXTS:
            for way, lead_in in WAYS.items():
                streamer.config = replace(shipped, lead_in_frames=lead_in)
                runs[way][text].append(one_stream(studio, text, voice))
    streamer.config = shipped
    load_end = os.getloadavg()

    def median(way: str, text: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[way][text])

    keys = ("first_audio_s", "first_word_s", "speech_onset_in_stream_s", "stall_s", "rtf")
    rows = []
    for text in TEXTS:
        for way in WAYS:
            label = text if len(text) < 42 else text[:40] + "…"
            rows.append([label, way, *(f"{median(way, text, k):.2f}" for k in keys)])
    summary = []
    for way in WAYS:
        per_text = {k: [median(way, t, k) for t in TEXTS] for k in keys}
        summary.append(
            [
                way,
                *(
                    f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"
                    for v in per_text.values()
                ),
            ]
        )
    header = [
        "first audio s",
        "first word heard s",
        "word's place in the stream s",
        "stall s",
        "RTF",
    ]
    md = [
        "# Streaming: first audio and first word heard (issue 24)",
        "",
        f"`benchmarks/streaming_lead_in.py`. CPU: {cpu_model()} (2 cores). Load average at the "
        f"start {load_start[0]:.2f}, at the end {load_end[0]:.2f}. {args.rounds} interleaved "
        f"rounds in one warm process; `Studio.speak_stream`, bundled pack, watermark on; "
        f"medians per text.",
        "",
        "Medians over the texts (range of the per-text medians):",
        "",
        markdown_table(["way", *header], summary),
        "",
        "Per text:",
        "",
        markdown_table(["text", "way", *header], rows),
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(md))
    args.out.with_suffix(".json").write_text(
        json.dumps({"cpu": cpu_model(), "load": [load_start, load_end], "runs": runs}, indent=1)
    )
    print("\n".join(md))


if __name__ == "__main__":
    main()
