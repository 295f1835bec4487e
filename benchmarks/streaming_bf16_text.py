"""The text stage under bfloat16 (issue 24): time before the first streamed audio, and the sound.

Before a stream's first window can be decoded, the whole sentence goes through the text
encoder (ALBERT), the prosody predictor and the alignment (`torch_path.text_stage`). Until
session 17 these ran in float32 and only the decoder under bfloat16. This script measures,
in one warm process, with the decoder in bfloat16 both times:

1. the sound: token durations and F0 of the text stage in float32 and in bfloat16, Whisper-base
   WER of both renderings, and the aligned log-mel distance between them (several bundled
   packs, sentences of several shapes);
2. the text stage's time for the one-sentence text of `bench_streaming.py`, and the window
   decoder's with the model's fused instance norm against statistics counted per position;
3. first audio, stall and RTF of `Studio.speak_stream` with each setting, runs interleaved.

    .venv/bin/python benchmarks/streaming_bf16_text.py [--runs 5] [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _bundled_voice import bundled_kokoro_voice
from _output import add_overwrite_flag, refuse_to_overwrite
from bench_streaming import LONG_TEXT, ONE_SENTENCE
from streaming_windows import timeline

from deepfake_studio import Studio, StudioConfig
from deepfake_studio.evaluation.asr import word_error_rate
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.synthesizer.kokoro.engine import STYLE_DIM, token_ids
from deepfake_studio.synthesizer.kokoro.parity import aligned_log_mel_l1, log_mel_l1
from deepfake_studio.synthesizer.kokoro.streaming import (
    CountedNorms,
    Norms,
    decode_segments,
    plan_sentence,
)
from deepfake_studio.synthesizer.kokoro.torch_path import text_stage

HERE = Path(__file__).resolve().parent
PACKS = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]  # all bundled
SENTENCES = [
    ONE_SENTENCE,
    "She sells sea shells by the sea shore, and the shells she sells are surely seashells.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "In nineteen eighty four, the company moved its headquarters to a small town in Oregon.",
    "Would you like a cup of tea, or would you rather have something stronger?",
    "Scientists have discovered a new species of frog living high in the Andes mountains.",
    "I never said she stole my money.",
    "The meeting has been postponed until next Thursday because of the storm.",
    "Honestly, I can't believe how quickly the summer went by this year!",
    "Turn left at the second traffic light, then keep going for about two miles.",
]


def sound(studio: Studio) -> dict[str, object]:
    """Durations, F0, WER and log-mel distance of float32 vs bfloat16 text stages."""
    engine = studio.engine("kokoro")
    torch_kokoro = engine.torch_path
    model = torch_kokoro.model
    packs = [p for p in PACKS if p in engine.style_packs]
    transcriber = studio.transcriber
    tokens = changed = 0
    frame_shifts: list[int] = []
    f0_st: list[float] = []
    errors = {"float32": [], "bfloat16": []}
    distances: list[float] = []
    for pack in packs:
        for sentence in SENTENCES:
            ids = token_ids(" ".join(engine.phonemes(sentence)), engine._vocab)
            row = engine.style_packs[pack][len(ids) - 1].reshape(1, STYLE_DIM)
            with torch.inference_mode():
                plain = text_stage(model, ids, row, 1.0, None, False)
                half = text_stage(model, ids, row, 1.0, None, True)
            d32, d16 = plain.prosody.durations.numpy(), half.prosody.durations.numpy()
            tokens += len(d32)
            changed += int((d32 != d16).sum())
            frame_shifts.append(int(d16.sum() - d32.sum()))
            if d16.sum() == d32.sum():
                a, b = plain.prosody.f0.numpy()[0], half.prosody.f0.numpy()[0]
                voiced = (a > 50) & (b > 50)
                f0_st.append(float(np.median(np.abs(12 * np.log2(b[voiced] / a[voiced])))))
            audio = {}
            for name, flag in (("float32", False), ("bfloat16", True)):
                torch_kokoro.text_bfloat16 = flag
                audio[name] = torch_kokoro.render(ids, row, 1.0, {})
                heard = transcriber.transcribe(audio[name], 24_000)
                errors[name].append((word_error_rate(sentence, heard), len(sentence.split())))
            distances.append(aligned_log_mel_l1(audio["float32"], audio["bfloat16"]))
    torch_kokoro.text_bfloat16 = True

    def wer(rows: list[tuple[float, int]]) -> float:
        return sum(e * n for e, n in rows) / sum(n for _, n in rows)

    return {
        "packs": packs,
        "sentences": len(SENTENCES),
        "tokens": tokens,
        "durations_changed": changed,
        "frame_shifts": frame_shifts,
        "f0_median_abs_semitones": statistics.median(f0_st) if f0_st else None,
        "f0_clips": len(f0_st),
        "wer_float32": wer(errors["float32"]),
        "wer_bfloat16": wer(errors["bfloat16"]),
        "log_mel_median": statistics.median(distances),
        "log_mel_max": max(distances),
    }


def stage_time(studio: Studio, runs: int) -> dict[str, float]:
    """Median seconds of the text stage for the one-sentence text, each setting."""
    engine = studio.engine("kokoro")
    model = engine.torch_path.model
    ids = token_ids(" ".join(engine.phonemes(ONE_SENTENCE)), engine._vocab)
    row = engine.style_packs[PACKS[0]][len(ids) - 1].reshape(1, STYLE_DIM)
    times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    with torch.inference_mode():
        for _ in range(runs):
            for name, flag in (("float32", False), ("bfloat16", True)):
                t = time.perf_counter()
                text_stage(model, ids, row, 1.0, None, flag)
                times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in times.items()} | {"tokens": len(ids)}


def window_norms_time(studio: Studio, runs: int) -> dict[str, float]:
    """Median seconds of the window decoder over the whole one-sentence text, with the model's
    fused instance norm (`Norms()`) and with statistics counted position by position (what
    every window used until session 17; `CountedNorms` with every position counted)."""
    engine = studio.engine("kokoro")
    torch_kokoro = engine.torch_path
    model = torch_kokoro.model
    ids = token_ids(" ".join(engine.phonemes(ONE_SENTENCE)), engine._vocab)
    row = engine.style_packs[PACKS[0]][len(ids) - 1].reshape(1, STYLE_DIM)
    plan = plan_sentence(model, ids, row, 1.0, None, True)
    every = CountedNorms(torch.ones(plan.frames, dtype=torch.bool))
    times: dict[str, list[float]] = {"fused": [], "counted": []}
    audio = {}
    for _ in range(runs):
        for name, norms in (("fused", Norms()), ("counted", every)):
            t = time.perf_counter()
            audio[name] = decode_segments(
                model, plan, [(0, plan.frames)], {}, norms, torch_kokoro.bfloat16
            )
            times[name].append(time.perf_counter() - t)
    result = {name: statistics.median(v) for name, v in times.items()}
    result["seconds_of_audio"] = plan.frames / 40
    result["log_mel_between"] = log_mel_l1(audio["fused"], audio["counted"])
    return result


def streams(studio: Studio, voice_name: str, runs: int) -> list[dict[str, object]]:
    """First audio, stall, RTF per text and setting; settings interleaved run by run."""
    torch_kokoro = studio.engine("kokoro").torch_path
    voice = studio.voice(voice_name)
    rows = []
    for text_name, text in (("one sentence", ONE_SENTENCE), ("long text", LONG_TEXT)):
        got: dict[str, list[tuple[float, float, float]]] = {"float32": [], "bfloat16": []}
        for _ in range(runs):
            for name, flag in (("float32", False), ("bfloat16", True)):
                torch_kokoro.text_bfloat16 = flag
                got[name].append(timeline(studio, text, voice))
        for name, r in got.items():
            rows.append(
                {
                    "text": text_name,
                    "text_stage": name,
                    "first_audio_s": statistics.median(x[0] for x in r),
                    "first_audio_runs": [x[0] for x in r],
                    "stall_s": statistics.median(x[1] for x in r),
                    "rtf": statistics.median(x[2] for x in r),
                }
            )
            print(rows[-1], flush=True)
    torch_kokoro.text_bfloat16 = True
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out = HERE / "streaming_bf16_text"
    refuse_to_overwrite([out.with_suffix(".md"), out.with_suffix(".json")], args.overwrite)

    studio = Studio(StudioConfig(data_dir=Path(tempfile.mkdtemp(prefix="bench-bf16-text-"))))
    if not studio.engine("kokoro").torch_path.bfloat16:
        raise SystemExit("this CPU has no native bfloat16: nothing to compare")
    voice = bundled_kokoro_voice(studio, "Bench bf16 text")
    for _ in range(2):  # warm: models loaded, first-run allocations done
        list(studio.speak_stream(ONE_SENTENCE, voice))
    load_start = os.getloadavg()
    data: dict[str, object] = {"cpu": cpu_model(), "load_start": load_start}
    data["streams"] = streams(studio, voice.name, args.runs)
    data["stage"] = stage_time(studio, args.runs * 2)
    data["window_norms"] = window_norms_time(studio, args.runs)
    load_timed = os.getloadavg()
    print("timed parts done", flush=True)
    data["sound"] = sound(studio)
    data["load_timed_end"] = load_timed
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    write_markdown(out.with_suffix(".md"), data, args.runs)
    print(out.with_suffix(".md").read_text())


def write_markdown(path: Path, data: dict, runs: int) -> None:
    stage, snd = data["stage"], data["sound"]
    lines = [
        "# The text stage under bfloat16: first audio and the sound (issue 24)",
        "",
        f"`benchmarks/streaming_bf16_text.py --runs {runs}`. CPU: {data['cpu']} (2 cores); load "
        f"average at the start {data['load_start'][0]:.1f}, after the timed parts "
        f"{data['load_timed_end'][0]:.1f} (the benchmark itself counts). Decoder in bfloat16 in "
        "every row; only the text stage (ALBERT text encoder, prosody predictor, alignment) "
        "changes. Medians, the two settings interleaved run by run in one warm process.",
        "",
        "## Time",
        "",
        f"Text stage alone, the one-sentence text ({stage['tokens']} tokens): float32 "
        f"{stage['float32'] * 1000:.0f} ms, bfloat16 {stage['bfloat16'] * 1000:.0f} ms.",
        "",
        "The window decoder over the whole sentence "
        f"({data['window_norms']['seconds_of_audio']:.1f} s of audio): the model's fused "
        f"instance norm {data['window_norms']['fused']:.2f} s, statistics counted position by "
        f"position (every window until session 17) {data['window_norms']['counted']:.2f} s; "
        f"log-mel L1 between the two {data['window_norms']['log_mel_between']:.3f}.",
        "",
        "`Studio.speak_stream` (bundled pack, watermark on, the shipped `StreamConfig`, "
        "windows with the fused norm):",
        "",
        "| text | text stage | first audio s (runs) | stall s | RTF |",
        "|---|---|---|---|---|",
    ]
    for r in data["streams"]:
        runs_s = ", ".join(f"{x:.2f}" for x in r["first_audio_runs"])
        lines.append(
            f"| {r['text']} | {r['text_stage']} | {r['first_audio_s']:.3f} ({runs_s}) | "
            f"{r['stall_s']:.3f} | {r['rtf']:.2f} |"
        )
    f0 = snd["f0_median_abs_semitones"]
    lines += [
        "",
        "## Sound",
        "",
        f"{snd['sentences']} sentences × packs {', '.join(snd['packs'])}: token durations "
        f"changed by bfloat16 {snd['durations_changed']} of {snd['tokens']}; total frames "
        f"moved per clip {sorted(snd['frame_shifts'])}; F0 median |difference| "
        + (f"{f0:.3f} semitones ({snd['f0_clips']} clips of equal length)" if f0 else "n/a")
        + f". Whisper-base WER float32 {snd['wer_float32'] * 100:.1f} %, bfloat16 "
        f"{snd['wer_bfloat16'] * 100:.1f} %. Aligned log-mel L1 between the two renderings: "
        f"median {snd['log_mel_median']:.3f}, largest {snd['log_mel_max']:.3f} (for scale: "
        "`tests/synthesizer/kokoro/test_engine.py` allows 0.3 between the ONNX and PyTorch "
        "paths).",
    ]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
