"""Kokoro: the int8 ONNX path against the float PyTorch path, in one run.

    make bench      (or: .venv/bin/python benchmarks/bench_kokoro_torch.py --runs 3)

Writes benchmarks/kokoro_torch.{md,json}: real-time factor and peak memory of each path on
the same sentences (each variant in its own process, so peak memory is that variant's own),
conversion time and cache size of the ONNX → PyTorch weights, parity distances to the ONNX
with the ONNX's durations forced, and what was tried to make the PyTorch path faster
(threads, inference_mode, bfloat16, torch.compile), each checked with Whisper and the
log-mel distance to the ONNX output.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepfake_studio.evaluation.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402

SENTENCES = [
    "The old lighthouse keeper climbed the stairs every evening at dusk.",
    "He polished the great lens until it shone, then lit the lamp.",
    "Ships passed safely through the narrow channel all winter long.",
]
PARITY_SENTENCES = [
    "The weather is lovely today.",
    "Please call me back after lunch.",
    "Nine small boats sailed past the harbour.",
]
PACKS = ["jf_alpha", "jf_gongitsune"]
SAMPLE_RATE = 24_000

VARIANTS: dict[str, dict[str, object]] = {
    "onnx": {"path": "onnx"},
    "torch fp32, 2 threads, inference_mode": {"path": "torch", "threads": 2},
    "torch fp32, 1 thread, inference_mode": {"path": "torch", "threads": 1},
    "torch fp32, 2 threads, no_grad": {"path": "torch", "threads": 2, "mode": "no_grad"},
    "torch bf16 autocast, 2 threads": {"path": "torch", "threads": 2, "dtype": "bf16"},
    "torch fp32, 2 threads, torch.compile(decoder)": {
        "path": "torch",
        "threads": 2,
        "compile": True,
    },
    # the load from other processes drifts during a run: the ONNX again brackets it
    "onnx (again, last)": {"path": "onnx"},
}


def cpu_flags() -> list[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return sorted(flags & {"avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "avx2"})
    return []


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sentence_phonemes(sentence: str) -> str:
    from deepfake_studio.synthesizer.phonemes import EnglishPhonemizer, to_kokoro_phonemes

    return to_kokoro_phonemes(EnglishPhonemizer().sentences(sentence)[0])


def sentence_tokens(sentence: str) -> list[int]:
    from deepfake_studio.synthesizer.kokoro.engine import load_vocab, token_ids

    return token_ids(sentence_phonemes(sentence), load_vocab())


# ----------------------------------------------------------------------------------------
# Workers (one process each)
# ----------------------------------------------------------------------------------------


def worker_speed(variant: dict[str, object], runs: int, out_dir: Path) -> dict[str, object]:
    from deepfake_studio.synthesizer.kokoro.engine import load_style_packs

    style_table = load_style_packs()[PACKS[0]]
    phoneme_strings = [sentence_phonemes(s) for s in SENTENCES]
    start = time.perf_counter()
    if variant["path"] == "onnx":
        from deepfake_studio.synthesizer.kokoro import KokoroEngine

        engine = KokoroEngine()

        def synth(phonemes: str) -> np.ndarray:
            return engine.synthesize_phonemes(phonemes, style_table, 1.0)

    else:
        import torch

        from deepfake_studio.synthesizer.kokoro.engine import load_vocab, token_ids
        from deepfake_studio.synthesizer.kokoro.weights import load_kokoro_model

        torch.set_num_threads(int(variant.get("threads", 2)))  # type: ignore[call-overload]
        model, _ = load_kokoro_model()
        if variant.get("compile"):
            model.decoder = torch.compile(model.decoder, dynamic=True)  # type: ignore[assignment]
        grad_off = torch.no_grad if variant.get("mode") == "no_grad" else torch.inference_mode
        bf16 = variant.get("dtype") == "bf16"
        vocab = load_vocab()

        def synth(phonemes: str) -> np.ndarray:
            ids = token_ids(phonemes, vocab)
            tokens = torch.tensor([[0, *ids, 0]])
            style = torch.from_numpy(style_table[len(ids) - 1]).reshape(1, -1)
            with grad_off(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                audio = model(tokens, style)
            return audio[0].float().numpy()

    load_seconds = time.perf_counter() - start
    t0 = time.perf_counter()
    synth(phoneme_strings[0])  # warm-up (and compilation, if any)
    warmup_seconds = time.perf_counter() - t0
    rtfs = []
    audios: list[np.ndarray] = []
    for _ in range(runs):
        spent, produced = 0.0, 0
        audios = []
        for phonemes in phoneme_strings:
            t0 = time.perf_counter()
            audio = synth(phonemes)
            spent += time.perf_counter() - t0
            produced += len(audio)
            audios.append(audio)
        rtfs.append(spent / (produced / SAMPLE_RATE))
    for i, audio in enumerate(audios):
        np.save(out_dir / f"{i}.npy", audio)
    return {
        "rtf_runs": rtfs,
        "rtf_median": statistics.median(rtfs),
        "load_seconds": load_seconds,
        "warmup_seconds": warmup_seconds,
        "audio_seconds": sum(len(a) for a in audios) / SAMPLE_RATE,
        "peak_rss_mib": peak_rss_mib(),
    }


def worker_conversion(out_dir: Path) -> dict[str, object]:
    from deepfake_studio.synthesizer.kokoro.weights import load_kokoro_model

    _, cold = load_kokoro_model(cache_dir=out_dir / "cache")
    _, warm = load_kokoro_model(cache_dir=out_dir / "cache")
    return {
        "convert_seconds": cold.seconds,
        "cached_load_seconds": warm.seconds,
        "cache_mib": cold.cache_bytes / 2**20,
        "peak_rss_mib": peak_rss_mib(),
    }


def worker_parity() -> dict[str, object]:
    import torch

    from deepfake_studio.synthesizer.kokoro.engine import load_style_packs
    from deepfake_studio.synthesizer.kokoro.parity import (
        OnnxWithIntermediates,
        correlation,
        log_mel_l1,
    )
    from deepfake_studio.synthesizer.kokoro.weights import bundled_onnx_path, load_kokoro_model

    model, _ = load_kokoro_model()
    reference = OnnxWithIntermediates(bundled_onnx_path())
    packs = load_style_packs()
    rows = []
    for sentence in PARITY_SENTENCES:
        ids = sentence_tokens(sentence)
        tokens = torch.tensor([[0, *ids, 0]])
        onnx_audio = {}
        for pack in PACKS:
            style = torch.from_numpy(packs[pack][len(ids) - 1]).reshape(1, -1)
            onnx = reference.run(tokens.numpy(), style.numpy()[0])
            onnx_audio[pack] = onnx.audio
            with torch.inference_mode():
                features = model.encode_text(tokens)
                free = model.predict_prosody(features, style)
                prosody = model.predict_prosody(
                    features, style, durations=torch.from_numpy(onnx.durations)
                )
                audio = model.decode(
                    model.align(features, prosody.durations), prosody.f0, prosody.energy, style
                )[0].numpy()
            rows.append(
                {
                    "sentence": sentence,
                    "pack": pack,
                    "log_mel_l1": log_mel_l1(onnx.audio, audio),
                    "f0_correlation": correlation(onnx.f0, prosody.f0[0].numpy()),
                    "energy_correlation": correlation(onnx.energy, prosody.energy[0].numpy()),
                    "tokens": len(ids) + 2,
                    "tokens_with_other_free_duration": int(
                        (free.durations.numpy() != onnx.durations).sum()
                    ),
                    "rms_ratio_torch_to_onnx": float(
                        np.sqrt(np.mean(audio**2)) / np.sqrt(np.mean(onnx.audio**2))
                    ),
                }
            )
        rows.append(
            {
                "sentence": sentence,
                "pack": " vs ".join(PACKS) + " (ONNX, two voices)",
                "log_mel_l1": log_mel_l1(onnx_audio[PACKS[0]], onnx_audio[PACKS[1]]),
            }
        )
    return {"rows": rows}


# ----------------------------------------------------------------------------------------
# Parent: run the workers, judge the audio, write the report
# ----------------------------------------------------------------------------------------


def run_worker(args: list[str], timeout: float) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--worker", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1200.0, help="per variant, seconds")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="skip torch.compile (12 min to compile on 2 busy cores); keep its previous row",
    )
    parser.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    if args.worker is not None:
        kind, *rest = args.worker
        if kind == "speed":
            result = worker_speed(json.loads(rest[0]), int(rest[1]), Path(rest[2]))
        elif kind == "conversion":
            result = worker_conversion(Path(rest[0]))
        else:
            result = worker_parity()
        print(json.dumps(result))
        return

    from deepfake_studio.evaluation.asr import Transcriber, word_error_rate
    from deepfake_studio.synthesizer.kokoro.parity import aligned_log_mel_l1

    results = ROOT / "benchmarks" / "kokoro_torch"
    refuse_to_overwrite([results.with_suffix(".json"), results.with_suffix(".md")], args.overwrite)
    load_at_start = os.getloadavg()
    report: dict[str, object] = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "runs": args.runs,
        "sentences": SENTENCES,
    }
    with tempfile.TemporaryDirectory() as tmp:
        report["conversion"] = run_worker(["conversion", tmp], args.timeout)
        report["parity"] = run_worker(["parity"], args.timeout)
        transcriber = Transcriber()
        speeds: dict[str, dict[str, object]] = {}
        previous_file = ROOT / "benchmarks" / "kokoro_torch.json"
        previous = json.loads(previous_file.read_text()) if previous_file.exists() else {}
        for name, variant in VARIANTS.items():
            if args.no_compile and variant.get("compile"):
                if name in previous.get("speed", {}):
                    speeds[name] = {**previous["speed"][name], "from_previous_run": True}
                continue
            out = Path(tmp) / name.replace(" ", "_").replace(",", "").replace("/", "")
            out.mkdir()
            result = run_worker(
                ["speed", json.dumps(variant), str(args.runs), str(out)], args.timeout
            )
            if "error" not in result:
                audios = [np.load(out / f"{i}.npy") for i in range(len(SENTENCES))]
                heard = [transcriber.transcribe(a, SAMPLE_RATE) for a in audios]
                result["wer"] = statistics.mean(
                    word_error_rate(s, h) for s, h in zip(SENTENCES, heard, strict=True)
                )
                result["transcripts"] = heard
                if variant["path"] == "torch" and "error" not in speeds.get("onnx", {"error": 1}):
                    onnx_dir = Path(tmp) / "onnx"
                    result["aligned_log_mel_l1_to_onnx"] = statistics.mean(
                        aligned_log_mel_l1(np.load(onnx_dir / f"{i}.npy"), a)
                        for i, a in enumerate(audios)
                    )
            speeds[name] = result
            print(name, {k: v for k, v in result.items() if k != "transcripts"}, flush=True)
        report["speed"] = speeds
    report["load_average_at_end"] = os.getloadavg()
    (ROOT / "benchmarks" / "kokoro_torch.json").write_text(json.dumps(report, indent=2) + "\n")
    (ROOT / "benchmarks" / "kokoro_torch.md").write_text(render(report))


def render(report: dict[str, object]) -> str:
    conv = report["conversion"]
    lines = [
        "# Kokoro: int8 ONNX path vs float PyTorch path",
        "",
        f"CPU: {report['cpu']} ({report['cores']} cores; flags "
        f"{', '.join(report['cpu_flags'])}). Load average at start "  # type: ignore[arg-type]
        f"{', '.join(f'{x:.1f}' for x in report['load_average_at_start'])}, at end "  # type: ignore[union-attr]
        f"{', '.join(f'{x:.1f}' for x in report['load_average_at_end'])}"  # type: ignore[union-attr]
        + (
            ": the machine was busy, so every time below is inflated (relative figures "
            "between variants, measured back to back, are the useful part)."
            if report["load_average_at_start"][0] > 1.0  # type: ignore[index]
            else " (idle cores)."
        ),
        "",
        "## Weights: int8 ONNX → float state dict",
        "",
    ]
    if "error" in conv:  # type: ignore[operator]
        lines.append(f"Conversion failed: {conv['error']}")  # type: ignore[index]
    else:
        lines += [
            f"- first use (convert + write cache): {conv['convert_seconds']:.1f} s",  # type: ignore[index]
            f"- later uses (checksum + load cache): {conv['cached_load_seconds']:.1f} s",  # type: ignore[index]
            f"- cache file: {conv['cache_mib']:.0f} MiB (float32)",  # type: ignore[index]
        ]
    lines += [
        "",
        "## Parity with the ONNX (its durations forced)",
        "",
        "log10-mel L1 (80 bands, 1024-point FFT): two voices saying the same sentence are the "
        "yardstick rows.",
        "",
        "| sentence | pack | log-mel L1 | F0 corr | energy corr | RMS torch/ONNX "
        "| free durations differing |",
        "|---|---|---|---|---|---|---|",
    ]
    parity = report["parity"]
    for row in parity.get("rows", []):  # type: ignore[union-attr]
        if "f0_correlation" in row:
            lines.append(
                f"| {row['sentence']} | {row['pack']} | {row['log_mel_l1']:.3f} | "
                f"{row['f0_correlation']:.5f} | {row['energy_correlation']:.5f} | "
                f"{row['rms_ratio_torch_to_onnx']:.2f} | "
                f"{row['tokens_with_other_free_duration']} of {row['tokens']} |"
            )
        else:
            lines.append(f"| {row['sentence']} | {row['pack']} | {row['log_mel_l1']:.3f} | | | | |")
    if "error" in parity:  # type: ignore[operator]
        lines.append(f"Parity run failed: {parity['error']}")  # type: ignore[index]
    lines += [
        "",
        f"## Speed: {len(report['sentences'])} sentences, median of {report['runs']} runs",  # type: ignore[arg-type]
        "",
        "RTF = synthesis time / audio time (lower is faster). Peak RSS of the variant's own "
        "process. WER by Whisper-base; log-mel distance to the ONNX output after time warping "
        "(free-running durations).",
        "",
        "| variant | RTF (median) | RTF runs | peak RSS MiB | first call s | WER "
        "| log-mel L1 to ONNX |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in report["speed"].items():  # type: ignore[union-attr]
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} | | | | | |")
            continue
        distance = r.get("aligned_log_mel_l1_to_onnx")
        label = f"{name} (previous run)" if r.get("from_previous_run") else name
        lines.append(
            f"| {label} | {r['rtf_median']:.2f} | "
            f"{', '.join(f'{x:.2f}' for x in r['rtf_runs'])} | {r['peak_rss_mib']:.0f} | "
            f"{r['warmup_seconds']:.1f} | {r['wer']:.2f} | "
            f"{'' if distance is None else f'{distance:.3f}'} |"
        )
    lines += [
        "",
        "Not tried: synthesising a long text's sentences as one batch. The model runs one "
        "utterance at a time; a batch would pad shorter sentences, and the instance norms, "
        "the unmasked LSTMs and the alignment would then mix padding into real frames, so "
        "every stage would need masks first. The engine's PyTorch path runs its decoder under "
        "bfloat16 autocast where the CPU has native bfloat16 (`torch_path.TorchKokoro`); "
        "torch.compile is not used (a 12-minute first call, no speed-up afterwards).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
