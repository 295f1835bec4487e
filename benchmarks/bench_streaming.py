"""Streaming speech (issue 24): time to first audio, RTF, fidelity of the streamed audio and
the streaming server's first byte, before (sentence pieces on the ONNX) and after (decoder
windows on the PyTorch path), in one run.

    make bench      (or: .venv/bin/python benchmarks/bench_streaming.py --runs 3)

Writes benchmarks/streaming.{md,json}:
- time to first audio and RTF of `Studio.speak` (before: one piece per sentence, ONNX for a
  plain voice; until session 14 it also cut a long first sentence at a clause, which cost the
  sentence a pause, so its first audio now comes later than it did) and `Studio.speak_stream`
  (after), for a
  one-sentence and a long text, median of --runs in one warm process;
- where the first audio's time goes (phonemes, text encoder + prosody, first window, the
  watermark of the first piece);
- the decoder's receptive field (one aligned frame perturbed, how far the output moves);
- streamed vs whole-sentence audio: log-mel L1, RMS ratio, the largest sample step near a
  seam vs elsewhere, Whisper-base's words for both;
- the server (uvicorn, POST /api/v1/synthesize/stream) first byte and first audio byte
  with 1 and 4 concurrent clients.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_studio.evaluation.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bundled_voice import bundled_kokoro_voice  # noqa: E402
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402

ONE_SENTENCE = "The weather is lovely today, so we walked down to the river to watch the boats."
LONG_TEXT = (
    "The old lighthouse keeper climbed the stairs every evening at dusk. He polished the great "
    "lens until it shone, then lit the lamp and watched the beam sweep across the water. Ships "
    "passed safely through the narrow channel all winter long, and nobody on board ever knew "
    "his name. In spring his daughter came to visit, bringing bread, letters and news from the "
    "town. They sat together on the gallery, listening to the gulls, until the light came on."
)
FIDELITY_SENTENCES = [
    ONE_SENTENCE,
    "Ships passed safely through the narrow channel all winter long, and nobody knew his name.",
    "Please call me back after lunch.",
]


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def timed_stream(pieces: Any) -> tuple[float, float, float]:
    """(first piece s, total s, audio s) of an iterator of clips."""
    start = time.perf_counter()
    first = None
    audio = 0.0
    for piece in pieces:
        if first is None:
            first = time.perf_counter() - start
        audio += piece.duration
    return float(first or 0.0), time.perf_counter() - start, audio


def speed_rows(studio: Any, voice: Any, runs: int) -> list[dict[str, Any]]:
    from dataclasses import replace

    def every_sentence_windowed(text: str, voice: Any) -> Any:
        """speak_stream as before StreamConfig.planning_rtf: each sentence from 0.5 s."""
        streamer = studio.kokoro_streamer
        shipped = streamer.config
        streamer.config = replace(shipped, planning_rtf=0.0)
        try:
            yield from studio.speak_stream(text, voice)
        finally:
            streamer.config = shipped

    ways = (
        ("before: speak (sentence pieces, ONNX)", studio.speak),
        ("after, every sentence from a 0.5 s window", every_sentence_windowed),
        ("after: speak_stream (decoder windows, PyTorch)", studio.speak_stream),
    )
    rows = []
    for label, text in (("one sentence", ONE_SENTENCE), ("long text", LONG_TEXT)):
        measured: dict[str, list[tuple[float, float, float]]] = {way: [] for way, _ in ways}
        for _ in range(runs):  # the ways alternate: each sees the same load
            for way, make in ways:
                measured[way].append(timed_stream(make(text, voice)))
        for way, _ in ways:
            results = measured[way]
            firsts = [r[0] for r in results]
            rtfs = [r[1] / r[2] for r in results]
            rows.append(
                {
                    "text": label,
                    "chars": len(text),
                    "way": way,
                    "first_audio_s": statistics.median(firsts),
                    "first_audio_runs": firsts,
                    "rtf": statistics.median(rtfs),
                    "rtf_runs": rtfs,
                    "audio_s": results[0][2],
                }
            )
            print(rows[-1], flush=True)
    return rows


def first_audio_split(studio: Any, voice: Any, runs: int) -> dict[str, float]:
    """Median seconds of each step before the first piece of a one-sentence stream."""
    import torch

    from deepfake_studio.synthesizer.kokoro.engine import token_ids
    from deepfake_studio.synthesizer.kokoro.streaming import (
        FRAME_SAMPLES,
        CountedNorms,
        decode_segments,
        plan_sentence,
        probe_segments,
    )

    streamer = studio.kokoro_streamer
    engine, cfg = streamer.engine, streamer.config
    model = engine.torch_path.model
    style = voice.conditioning.arrays["style"]
    steps: dict[str, list[float]] = {}

    def note(name: str, started: float) -> float:
        now = time.perf_counter()
        steps.setdefault(name, []).append(now - started)
        return now

    for _ in range(runs):
        t = time.perf_counter()
        ids = token_ids(" ".join(engine.phonemes(ONE_SENTENCE)), streamer._vocab)
        t = note("phonemes", t)
        plan = plan_sentence(model, ids, style[len(ids) - 1], 1.0, None, engine.torch_path.bfloat16)
        t = note("text encoder + prosody + harmonic source", t)
        hi = cfg.first_window_frames + cfg.context_frames
        segments = [(0, hi)] + [(lo, h) for lo, h, _, _ in probe_segments(hi, plan.frames, cfg)]
        counted = torch.ones(sum(h - lo for lo, h in segments), dtype=torch.bool)
        audio = decode_segments(
            model, plan, segments, {}, CountedNorms(counted), engine.torch_path.bfloat16
        )
        t = note(f"first window + {len(segments) - 1} probes (decoder)", t)
        piece = audio[: cfg.first_window_frames * FRAME_SAMPLES]
        from deepfake_studio.audio import Audio

        studio.watermarker.embed(Audio(piece, 24_000))
        note("watermark of the first piece", t)
    return {name: statistics.median(values) for name, values in steps.items()}


def receptive_field(studio: Any, voice: Any) -> dict[str, Any]:
    """Perturb one aligned frame by 0.1 % of the features' spread; report the output's
    change per frame of distance, relative to the peak, and where it falls to 3x the floor
    (the floor: the global effect of the instance norms)."""
    import copy

    from deepfake_studio.synthesizer.kokoro.engine import token_ids
    from deepfake_studio.synthesizer.kokoro.streaming import (
        FRAME_SAMPLES,
        Norms,
        decode_segments,
        plan_sentence,
    )

    streamer = studio.kokoro_streamer
    model = streamer.engine.torch_path.model
    ids = token_ids(" ".join(streamer.engine.phonemes(LONG_TEXT.split(". ")[1])), streamer._vocab)
    style = voice.conditioning.arrays["style"]
    plan = plan_sentence(model, ids, style[len(ids) - 1], 1.0, None, False)
    whole = decode_segments(model, plan, [(0, plan.frames)], {}, Norms(), False)
    k = plan.frames // 2
    moved = copy.copy(plan)
    aligned = plan.aligned.clone()
    aligned[..., k] += 1e-3 * aligned.std()
    moved.aligned = aligned
    changed = decode_segments(model, moved, [(0, plan.frames)], {}, Norms(), False)
    diff = np.abs(changed - whole)
    per_frame = np.array(
        [diff[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES].max() for i in range(plan.frames)]
    )
    peak = float(np.abs(whole).max())
    far = np.r_[per_frame[: max(1, k - 40)], per_frame[k + 40 :]]
    floor = float(np.median(far)) if far.size else 0.0
    reach = {"left": 0, "right": 0}
    for side, sign in (("left", -1), ("right", 1)):
        for d in range(1, 40):
            i = k + sign * d
            if 0 <= i < plan.frames and per_frame[i] > 3 * floor:
                reach[side] = d
    return {
        "frames": plan.frames,
        "frame_ms": 25,
        "relative_change_by_offset": {
            str(d): float(per_frame[k + d] / peak) for d in range(-20, 21, 2)
        },
        "floor_relative": floor / peak,
        "reach_frames": reach,
    }


def fidelity_rows(studio: Any, voice: Any) -> list[dict[str, Any]]:
    from deepfake_studio.evaluation.asr import Transcriber, word_error_rate
    from deepfake_studio.synthesizer.kokoro.engine import token_ids
    from deepfake_studio.synthesizer.kokoro.parity import log_mel_l1
    from deepfake_studio.synthesizer.kokoro.streaming import StreamConfig, render_stream

    streamer = studio.kokoro_streamer
    torch_kokoro = streamer.engine.torch_path
    style = voice.conditioning.arrays["style"]
    transcriber = Transcriber()
    rows = []
    variants = {
        "shipped (0.3 s context, 20 ms fade)": StreamConfig(),
        "with probes (25 % of the rest)": StreamConfig(probe_fraction=0.25),
        "no context, no fade": StreamConfig(context_frames=0, crossfade_samples=0),
    }
    for sentence in FIDELITY_SENTENCES:
        ids = token_ids(" ".join(streamer.engine.phonemes(sentence)), streamer._vocab)
        row = style[len(ids) - 1]
        whole = torch_kokoro.render(ids, row, 1.0, {})
        heard_whole = transcriber.transcribe(whole, 24_000)
        for name, config in variants.items():
            pieces = list(render_stream(torch_kokoro, ids, row, 1.0, {}, config=config))
            streamed = np.concatenate(pieces)
            seams = list(np.cumsum([len(p) for p in pieces])[:-1] + config.crossfade_samples // 2)
            steps = np.abs(np.diff(streamed))
            near = np.zeros(len(steps), bool)
            for seam in seams:
                near[max(0, seam - 240) : seam + 240] = True
            heard = transcriber.transcribe(streamed, 24_000)
            rows.append(
                {
                    "sentence": sentence,
                    "variant": name,
                    "windows": len(pieces),
                    "log_mel_l1": log_mel_l1(streamed, whole),
                    "rms_ratio": float(np.sqrt(np.mean(streamed**2) / np.mean(whole**2))),
                    "max_step_near_seams": float(steps[near].max()) if near.any() else None,
                    "max_step_elsewhere": float(steps[~near].max()),
                    "wer_whole": word_error_rate(sentence, heard_whole),
                    "wer_streamed": word_error_rate(sentence, heard),
                    "heard_streamed": heard,
                }
            )
            print(rows[-1], flush=True)
    return rows


def server_rows(studio: Any, voice: Any, runs: int) -> list[dict[str, Any]]:
    import httpx
    import uvicorn

    from deepfake_studio.service.api import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1/synthesize/stream"
    server = uvicorn.Server(uvicorn.Config(create_app(studio), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    def client(out: list[tuple[float, float]], http: httpx.Client) -> None:
        # The client exists before the clock starts: making one costs 10-30 ms (its TLS
        # context), which earlier runs of this table counted as the server's.
        start = time.perf_counter()
        first_byte = first_audio = None
        with http.stream(
            "POST", url, json={"text": ONE_SENTENCE, "voice_id": voice.id}, timeout=300
        ) as response:
            got = 0
            for chunk in response.iter_raw():
                got += len(chunk)
                now = time.perf_counter() - start
                first_byte = now if first_byte is None else first_byte
                if first_audio is None and got > 44:
                    first_audio = now
        out.append((float(first_byte or 0.0), float(first_audio or 0.0)))

    def in_process_first_piece() -> float:
        start = time.perf_counter()
        pieces = studio.speak_stream(ONE_SENTENCE, voice)
        next(pieces)
        elapsed = time.perf_counter() - start
        for _ in pieces:  # as the server does: the whole stream, before the next request
            pass
        return elapsed

    rows = []
    try:
        for clients in (1, 4):
            results: list[tuple[float, float]] = []
            in_process: list[float] = []
            https = [httpx.Client() for _ in range(clients)]
            for _ in range(runs):
                threads = [threading.Thread(target=client, args=(results, http)) for http in https]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                if clients == 1:  # the same first piece without the server, alternating
                    in_process.append(in_process_first_piece())
            for http in https:
                http.close()
            rows.append(
                {
                    "clients": clients,
                    "requests": len(results),
                    "first_byte_s_median": statistics.median(r[0] for r in results),
                    "first_audio_byte_s_median": statistics.median(r[1] for r in results),
                    "first_audio_byte_s_max": max(r[1] for r in results),
                    "in_process_first_audio_s_median": statistics.median(in_process)
                    if in_process
                    else None,
                }
            )
            print(rows[-1], flush=True)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
    return rows


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    lines = [
        "# Streaming speech: time to first audio, RTF, fidelity, server first byte",
        "",
        f"CPU: {result['cpu']} ({os.cpu_count()} cores). Load average at start "
        f"{result['load_start']}, at end {result['load_end']} (above ~1 the cores were shared "
        "with other work and every time below is inflated). Medians of "
        f"{result['runs']} runs in one warm process; voice: the bundled pack "
        f"{result['pack']}. bfloat16 decoder: {result['bfloat16']}.",
        "",
        "## Time to first audio and RTF (Studio, watermark on)",
        "",
        "| text | way | first audio s (median) | runs | RTF (median) | audio s |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["speed"]:
        runs = ", ".join(f"{x:.2f}" for x in r["first_audio_runs"])
        lines.append(
            f"| {r['text']} ({r['chars']} chars) | {r['way']} | {r['first_audio_s']:.2f} | "
            f"{runs} | {r['rtf']:.2f} | {r['audio_s']:.1f} |"
        )
    lines += [
        "",
        "## Where the first audio's time goes (one sentence, after)",
        "",
        "| step | s (median) |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.3f} |" for k, v in result["first_audio_split"].items()]
    rf = result["receptive_field"]
    lines += [
        "",
        "## The decoder's receptive field",
        "",
        "One aligned frame (25 ms) perturbed by 0.1 % of the features' spread; largest output "
        "change per frame at each offset, relative to the output's peak "
        f"(floor far away: {rf['floor_relative']:.1e}, the instance norms' global effect). "
        f"Above 3x the floor up to {rf['reach_frames']['left']} frames left and "
        f"{rf['reach_frames']['right']} right; the shipped context is 12 frames each side.",
        "",
        "| offset (frames) | " + " | ".join(rf["relative_change_by_offset"]) + " |",
        "|---" * (len(rf["relative_change_by_offset"]) + 1) + "|",
        "| change | "
        + " | ".join(f"{v:.1e}" for v in rf["relative_change_by_offset"].values())
        + " |",
        "",
        "## Streamed vs whole-sentence audio (PyTorch path, same durations)",
        "",
        "Yardsticks (benchmarks/kokoro_torch.md): PyTorch vs ONNX of the same voice 0.16-0.17, "
        "two different voices 1.1-1.4 log-mel L1. A click would show as a step near a seam "
        "far above the largest step elsewhere.",
        "",
        "| sentence | variant | windows | log-mel L1 | RMS ratio | max step near seams | "
        "max step elsewhere | WER whole | WER streamed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["fidelity"]:
        near = "-" if r["max_step_near_seams"] is None else f"{r['max_step_near_seams']:.3f}"
        lines.append(
            f"| {r['sentence'][:40]}… | {r['variant']} | {r['windows']} | {r['log_mel_l1']:.3f} | "
            f"{r['rms_ratio']:.3f} | {near} | {r['max_step_elsewhere']:.3f} | "
            f"{r['wer_whole']:.3f} | {r['wer_streamed']:.3f} |"
        )
    lines += [
        "",
        "## Server: POST /api/v1/synthesize/stream, one sentence",
        "",
        "uvicorn in this process, HTTP clients in threads (made before the clock starts). "
        "With one client, `speak_stream`'s first piece without the server alternates with the "
        "requests (the same work at the same load).",
        "",
        "| concurrent clients | requests | first byte s (median) | first audio byte s (median) "
        "| first audio byte s (max) | in-process first audio s (median) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["server"]:
        own = r.get("in_process_first_audio_s_median")
        lines.append(
            f"| {r['clients']} | {r['requests']} | {r['first_byte_s_median']:.2f} | "
            f"{r['first_audio_byte_s_median']:.2f} | {r['first_audio_byte_s_max']:.2f} | "
            f"{'-' if own is None else f'{own:.2f}'} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "streaming")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    md, js = args.out.with_suffix(".md"), args.out.with_suffix(".json")
    refuse_to_overwrite([md, js], args.overwrite)

    from deepfake_studio import Studio, StudioConfig

    studio = Studio(StudioConfig(data_dir=Path(tempfile.mkdtemp(prefix="bench-stream-"))))
    conditioning = studio.engine("kokoro").default_conditioning()
    voice = bundled_kokoro_voice(studio, "Bench Stream")
    result: dict[str, Any] = {
        "cpu": cpu_model(),
        "load_start": load(),
        "runs": args.runs,
        "pack": conditioning.info.get("pack"),
    }
    studio.warm_streaming()
    result["bfloat16"] = studio.kokoro_streamer.engine.torch_path.bfloat16
    for warm in (studio.speak, studio.speak_stream):  # first calls pay one-off costs
        timed_stream(warm("Warm up.", voice))
    result["speed"] = speed_rows(studio, voice, args.runs)
    result["first_audio_split"] = first_audio_split(studio, voice, args.runs)
    result["receptive_field"] = receptive_field(studio, voice)
    result["server"] = server_rows(studio, voice, args.runs)
    result["fidelity"] = fidelity_rows(studio, voice)
    result["load_end"] = load()
    js.write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(md, result)
    print(f"wrote {md} and {js}")


if __name__ == "__main__":
    main()
