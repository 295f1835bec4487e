"""CPU cost of the classic SV2TTS engine; medians go to benchmarks/sv2tts.{md,json}.

    .venv/bin/python benchmarks/bench_sv2tts.py --runs 3

The published RTVC weights are not shipped, so the engine runs on RANDOM weights of the real
sizes (Tacotron 30.9 M parameters, WaveRNN 4.5 M): speed does not depend on the weight values.
The stop token is disabled and the decoder capped at FRAMES mel frames, so one sentence
always yields the same ~3 s of mel, as a trained model would for this sentence. Measured:
Tacotron (text → mel), WaveRNN folded generation and Griffin-Lim (mel → wave), each with the
engine's own thread setting, and Kokoro on the same sentence for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _output import add_overwrite_flag, refuse_to_overwrite

from deepfake_studio.encoder import SpeakerEncoderModel
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.synthesizer.sv2tts import SV2TTSConfig, SV2TTSEngine, limit_torch_threads
from deepfake_studio.synthesizer.tacotron import Tacotron
from deepfake_studio.vocoder.griffin_lim import GriffinLimVocoder
from deepfake_studio.vocoder.wavernn import WaveRNN

ROOT = Path(__file__).resolve().parents[1]
TEXT = "The old lighthouse keeper climbed the stairs at dusk."
FRAMES = 240  # 240 × 12.5 ms = 3.0 s of speech, about what this sentence takes


def write_random_rtvc_folder(folder: Path) -> None:
    """encoder.pt / synthesizer.pt / vocoder.pt of the real sizes, random, never stopping."""
    torch.manual_seed(0)
    tacotron = Tacotron()
    with torch.no_grad():  # the stop token never fires: decoding runs to the frame cap
        tacotron.decoder.stop_proj.weight.zero_()
        tacotron.decoder.stop_proj.bias.fill_(-100.0)
    for name, model in (
        ("encoder.pt", SpeakerEncoderModel()),
        ("synthesizer.pt", tacotron),
        ("vocoder.pt", WaveRNN()),
    ):
        torch.save({"model_state": model.state_dict(), "optimizer_state": None, "step": 0},
                   folder / name)  # fmt: skip


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-kokoro", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "sv2tts")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    refuse_to_overwrite(
        [args.out.with_suffix(".json"), args.out.with_suffix(".md")], args.overwrite
    )

    load_at_start = os.getloadavg()[0]
    machine = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average_at_start": round(load_at_start, 2),
        "shared": load_at_start > 1.5,
    }
    print("machine:", machine, flush=True)

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_random_rtvc_folder(folder)
        config = SV2TTSConfig(max_frames=FRAMES, max_frames_per_symbol=100.0)
        engine = SV2TTSEngine(folder, "wavernn", config)
        griffin_lim = GriffinLimVocoder(config.tacotron.audio, config.griffin_lim)
        embedding = np.random.default_rng(0).normal(size=256).astype(np.float32)
        embedding /= np.linalg.norm(embedding)  # a unit d-vector, like the encoder's

        times: dict[str, list[float]] = {"tacotron": [], "wavernn": [], "griffinlim": []}
        audio_s = 0.0
        with limit_torch_threads(config.threads):  # what SV2TTSEngine.synthesize uses
            for run in range(args.runs):
                t_mel, mel = timed(lambda: engine.text_to_mel(engine.chunks(TEXT), embedding))
                t_wrnn, wav = timed(lambda mel=mel: engine.vocoder(mel))
                t_gl, _ = timed(lambda mel=mel: griffin_lim(mel))
                audio_s = len(wav) / engine.sample_rate
                times["tacotron"].append(t_mel)
                times["wavernn"].append(t_wrnn)
                times["griffinlim"].append(t_gl)
                print(f"run {run}: mel {mel.shape[1]} frames ({audio_s:.2f} s audio), "
                      f"tacotron {t_mel:.2f} s, wavernn {t_wrnn:.2f} s, griffin-lim {t_gl:.2f} s",
                      flush=True)  # fmt: skip
        frames = int(mel.shape[1])
        med = {k: statistics.median(v) for k, v in times.items()}
        results["sv2tts_tacotron"] = {"seconds": med["tacotron"], "rtf": med["tacotron"] / audio_s}
        for vocoder in ("wavernn", "griffinlim"):
            results[f"sv2tts_{vocoder}_vocoder_only"] = {
                "seconds": med[vocoder], "rtf": med[vocoder] / audio_s}  # fmt: skip
            total = med["tacotron"] + med[vocoder]
            results[f"sv2tts+{vocoder}"] = {"seconds": total, "rtf": total / audio_s}
        sv2tts_info = {
            "audio_seconds": audio_s,
            "mel_frames": frames,
            "torch_threads": config.threads,
            "decoder_steps": -(-frames // engine.tacotron.r),
        }

    if not args.no_kokoro:
        from deepfake_studio.synthesizer.kokoro import KokoroEngine

        kokoro = KokoroEngine()
        conditioning = kokoro.default_conditioning()
        kokoro.synthesize(TEXT, conditioning)  # warm-up (first call builds caches)
        runs = [timed(lambda: kokoro.synthesize(TEXT, conditioning)) for _ in range(args.runs)]
        seconds = statistics.median(t for t, _ in runs)
        k_audio = len(runs[0][1]) / kokoro.sample_rate
        results["kokoro"] = {"seconds": seconds, "rtf": seconds / k_audio, "audio_seconds": k_audio}
        print(f"kokoro: {seconds:.2f} s for {k_audio:.2f} s audio", flush=True)

    report = {"machine": machine, "text": TEXT, "runs": args.runs, "sv2tts": sv2tts_info,
              "results": results, "raw_seconds": times}  # fmt: skip
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:  # type: ignore[type-arg]
    m, s = report["machine"], report["sv2tts"]
    lines = [
        "# SV2TTS engine speed (CPU)",
        "",
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, torch {m['torch']}, "
        f"Python {m['python']}. Load average at start: {m['load_average_at_start']}.",
    ]
    if m["shared"]:
        lines.append(
            "**The machine was shared with other work during this run (load average > 1.5), "
            "so these times are pessimistic.**"
        )
    lines += [
        "",
        f'Sentence: "{report["text"]}". Random weights of the real sizes (speed does not '
        f"depend on the values); decoder fixed at {s['mel_frames']} mel frames "
        f"({s['decoder_steps']} steps of r = 2) = {s['audio_seconds']:.2f} s of audio. "
        f"SV2TTS runs with {s['torch_threads']} torch thread (the engine's setting). "
        f"Median of {report['runs']} runs. RTF = compute time / audio time (< 1 is faster "
        "than real time).",
        "",
        "| stage / pipeline | seconds | RTF |",
        "|---|---:|---:|",
    ]
    names = {
        "sv2tts_tacotron": "Tacotron (text → mel)",
        "sv2tts_wavernn_vocoder_only": "WaveRNN, folded (mel → wave)",
        "sv2tts_griffinlim_vocoder_only": "Griffin-Lim (mel → wave)",
        "sv2tts+wavernn": "**SV2TTS + WaveRNN**",
        "sv2tts+griffinlim": "**SV2TTS + Griffin-Lim**",
        "kokoro": "Kokoro (same sentence, for comparison)",
    }
    for key, label in names.items():
        if key in report["results"]:
            r = report["results"][key]
            lines.append(f"| {label} | {r['seconds']:.2f} | {r['rtf']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
