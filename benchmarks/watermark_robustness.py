"""How robust, how rare by accident and how audible is the PerthNet watermark? (issue 6)

    .venv/bin/python benchmarks/watermark_robustness.py                  (defaults: ~10 min)
    .venv/bin/python benchmarks/watermark_robustness.py --clips 50 --marked 12 --wer-clips 6

Measures, with fixed seeds, in one process:

1. Robustness: ``--marked`` clips (real recordings from shared/data/speech plus ``--synthetic``
   Kokoro/Piper outputs) are loudness-normalised to -20 LUFS and watermarked exactly as
   ``Studio.speak`` does, then each goes through every condition (a codec round trip through
   ffmpeg, or a sample-level change followed by a 16-bit WAV round trip) and is detected with
   the default threshold. Per condition: detection rate (with a Wilson 95 % interval) at the
   default threshold and at PerthNet's own 0.5, mean and minimum confidence.
2. False positives: ``--clips`` unwatermarked real recordings, exactly as stored.
3. Intelligibility: Whisper-base WER of ``--wer-clips`` real recordings with the corpus's own
   transcript, before and after watermarking (both through a 16-bit WAV round trip).
4. Perceptual change: waveform SNR of watermarked vs original and the loudness change (LUFS).
5. The machine and the seconds per clip for embed and detect.

Writes benchmarks/watermark_robustness.json (every per-clip score) and .md (the tables).
The data directory is ``--data`` or ``$DEEPFAKE_STUDIO_DATA`` or ../shared/data.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _output import add_overwrite_flag, refuse_to_overwrite

from deepfake_studio.audio import (
    Audio,
    ffmpeg_path,
    load_audio,
    normalize_loudness,
    resample,
    save_audio,
)
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.provenance import AudioWatermarker
from deepfake_studio.provenance.watermark import model_version

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = Path(__file__).resolve().parent
OUTPUT_LUFS = -20.0  # StudioConfig.output_lufs: what generated clips are normalised to
PERTH_THRESHOLD = 0.5  # PerthNet's own decision point, reported alongside
MIN_MARKED_SECONDS = 4.0  # real robustness clips must be longer than the 3 s crop
WER_CORPORA = ("ljspeech", "vctk", "speechocean762")  # `reference` transcripts, read sentences
SENTENCES = (  # synthetic clips: the same sentences from each engine
    "The museum opens at nine, and tickets are free for everyone on Sundays.",
    "Please remember to bring your umbrella when you visit the north coast in spring.",
    "A small boat drifted past the harbour wall while the gulls circled overhead.",
    "Our train was delayed by twenty minutes, so we bought coffee and waited on the platform.",
    "The library will be closed on Monday while the heating system is repaired.",
    "He wrote the phone number on the back of an old envelope and lost it the same day.",
    "Every autumn the orchard fills with people picking apples and pears.",
    "Before you leave, check that the windows are shut and the lights are off.",
)
SOURCES = ("real", "kokoro", "piper")
WER_MAX_SECONDS = 10.0  # longer slow read clips (pauses) make Whisper-base loop for a minute
SEED_FP, SEED_MARKED, SEED_WER, SEED_NOISE = 1, 2, 3, 4


# -- conditions ---------------------------------------------------------------------------------
@dataclass
class Condition:
    name: str
    description: str
    apply: Callable[[Audio, Path, int], Audio]  # (marked clip, temp dir, clip index) -> decoded


def wav_round_trip(audio: Audio, tmp: Path) -> Audio:
    """16-bit WAV, the way a saved output is read back (save_audio clips to [-1, 1])."""
    return load_audio(save_audio(audio, tmp / "clip.wav"))


def ffmpeg_round_trip(audio: Audio, tmp: Path, key: str, suffix: str, args: list[str]) -> Audio:
    """Encode a 16-bit WAV with ffmpeg (``args`` = codec options), decode with load_audio."""
    src = save_audio(audio, tmp / "src.wav")
    out = tmp / f"coded{suffix}"
    cmd = [
        FFMPEG,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(src),
        *args,
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {proc.stderr.decode()[-300:]}")
    CODED_KBPS.setdefault(key, []).append(out.stat().st_size * 8 / 1000 / audio.duration)
    return load_audio(out)


def resample_round_trip(audio: Audio, tmp: Path, rate: int) -> Audio:
    back = resample(resample(audio, rate), audio.sample_rate)
    return wav_round_trip(back, tmp)


def add_noise(audio: Audio, tmp: Path, index: int, snr_db: float = 20.0) -> Audio:
    """White Gaussian noise at ``snr_db`` relative to the clip's mean power (pauses included)."""
    x = audio.samples.astype(np.float64)
    sigma = math.sqrt(float(np.mean(x**2)) / 10 ** (snr_db / 10))
    noise = np.random.default_rng(SEED_NOISE * 100_000 + index).normal(0.0, sigma, len(x))
    return wav_round_trip(audio.with_samples(x + noise), tmp)


def gain(audio: Audio, tmp: Path, db: float) -> Audio:
    scaled = audio.samples.astype(np.float64) * 10 ** (db / 20)
    CLIPPED.setdefault(db, []).append(float(np.mean(np.abs(scaled) > 1.0)))
    return wav_round_trip(audio.with_samples(scaled), tmp)  # save_audio clips, as a file would


def crop(audio: Audio, tmp: Path, seconds: float = 3.0) -> Audio:
    return wav_round_trip(
        audio.with_samples(audio.samples[: int(seconds * audio.sample_rate)]), tmp
    )


FFMPEG = ffmpeg_path() or "ffmpeg"
CODED_KBPS: dict[str, list[float]] = {}  # measured bitrate of each codec condition's files
CLIPPED: dict[float, list[float]] = {}  # fraction of samples clipped, per gain

CONDITIONS = (
    Condition("none", "16-bit WAV round trip", lambda a, t, i: wav_round_trip(a, t)),
    Condition(
        "mp3_128k",
        "MP3 128 kbps CBR (LAME, resampled to 44.1 kHz as MP3 files usually are)",
        lambda a, t, i: ffmpeg_round_trip(
            a, t, "mp3_128k", ".mp3", ["-ar", "44100", "-codec:a", "libmp3lame", "-b:a", "128k"]
        ),
    ),
    Condition(
        "mp3_64k",
        "MP3 64 kbps CBR (LAME, 44.1 kHz)",
        lambda a, t, i: ffmpeg_round_trip(
            a, t, "mp3_64k", ".mp3", ["-ar", "44100", "-codec:a", "libmp3lame", "-b:a", "64k"]
        ),
    ),
    Condition(
        "opus_32k",
        "Opus 32 kbps VBR in .ogg (libopus from the clip's rate, decoded by libsndfile)",
        lambda a, t, i: ffmpeg_round_trip(
            a, t, "opus_32k", ".ogg", ["-codec:a", "libopus", "-b:a", "32k"]
        ),
    ),
    Condition(
        "resample_16k",
        "soxr to 16 kHz and back, WAV (a no-op for the 16 kHz real recordings)",
        lambda a, t, i: resample_round_trip(a, t, 16_000),
    ),
    Condition(
        "resample_8k",
        "soxr to 8 kHz and back, WAV",
        lambda a, t, i: resample_round_trip(a, t, 8_000),
    ),
    Condition("noise_20db", "white Gaussian noise at 20 dB SNR, WAV", add_noise),
    Condition(
        "gain_+6db",
        "+6 dB, clipped to [-1, 1] by the 16-bit WAV write",
        lambda a, t, i: gain(a, t, 6.0),
    ),
    Condition("gain_-6db", "-6 dB, WAV", lambda a, t, i: gain(a, t, -6.0)),
    Condition("crop_3s", "first 3 s only, WAV", lambda a, t, i: crop(a, t)),
)


# -- data -----------------------------------------------------------------------------------
def data_dir(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    env = os.environ.get("DEEPFAKE_STUDIO_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def read_manifest(speech: Path) -> list[dict[str, str]]:
    with open(speech / "manifest.csv", newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["label"] == "real"]


def stratified(rows: list[dict[str, str]], n: int, seed: int) -> list[dict[str, str]]:
    """``n`` rows, round-robin over corpora (each corpus shuffled with ``seed``)."""
    by_corpus: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_corpus.setdefault(r["corpus"], []).append(r)
    rng = random.Random(seed)
    for corpus in sorted(by_corpus):
        rng.shuffle(by_corpus[corpus])
    out: list[dict[str, str]] = []
    while len(out) < n and any(by_corpus.values()):
        for corpus in sorted(by_corpus):
            if by_corpus[corpus] and len(out) < n:
                out.append(by_corpus[corpus].pop())
    return out


# -- statistics -----------------------------------------------------------------------------
def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def snr_db(clean: np.ndarray, changed: np.ndarray) -> float:
    c = clean.astype(np.float64)
    return float(10 * np.log10(np.sum(c**2) / np.sum((c - changed.astype(np.float64)) ** 2)))


def lufs(audio: Audio) -> float:
    import pyloudnorm

    meter = pyloudnorm.Meter(audio.sample_rate)
    return float(meter.integrated_loudness(audio.samples.astype(np.float64)))


def summarize(confidences: list[float], threshold: float) -> dict[str, object]:
    n = len(confidences)
    k = sum(c >= threshold for c in confidences)
    k_perth = sum(c >= PERTH_THRESHOLD for c in confidences)
    return {
        "n": n,
        "detected": k,
        "rate": k / n if n else None,
        "ci95": wilson(k, n),
        "detected_at_0.5": k_perth,
        "rate_at_0.5": k_perth / n if n else None,
        "mean_confidence": statistics.fmean(confidences) if n else None,
        "min_confidence": min(confidences) if n else None,
    }


def machine() -> dict[str, object]:
    cpu = cpu_model()
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "watermark_model": model_version(),
        "ffmpeg": subprocess.run(
            [FFMPEG, "-version"], capture_output=True, text=True, check=False
        ).stdout.split(" Copyright", 1)[0],
    }


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the measurement ------------------------------------------------------------------------
def synthetic_clips(count: int) -> list[tuple[str, str, Audio]]:
    """``count`` clips, alternating Kokoro (default pack) and Piper, over SENTENCES."""
    from deepfake_studio.synthesizer.kokoro import KokoroEngine
    from deepfake_studio.synthesizer.piper import PiperEngine

    engines = [KokoroEngine(), PiperEngine()]
    out = []
    for i in range(count):
        engine = engines[i % 2]
        text = SENTENCES[(i // 2) % len(SENTENCES)]
        samples = engine.synthesize(text, engine.default_conditioning())
        out.append((engine.name, f"{engine.name}:{i // 2}", Audio(samples, engine.sample_rate)))
    return out


def run(args: argparse.Namespace) -> dict[str, object]:
    speech = data_dir(args.data) / "speech"
    rows = read_manifest(speech)
    wm = AudioWatermarker()
    started = time.perf_counter()
    results: dict[str, object] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "threshold": wm.threshold,
        "settings": {
            "clips": args.clips,
            "marked": args.marked,
            "synthetic": args.synthetic,
            "wer_clips": args.wer_clips,
            "output_lufs": OUTPUT_LUFS,
            "seeds": {"fp": SEED_FP, "marked": SEED_MARKED, "wer": SEED_WER, "noise": SEED_NOISE},
        },
    }
    t = time.perf_counter()
    wm.net  # noqa: B018 (load the model outside the timings)
    results["model_load_s"] = round(time.perf_counter() - t, 2)
    embed_times: list[tuple[float, float]] = []  # (seconds, audio seconds)
    detect_times: list[tuple[float, float]] = []

    def timed_embed(audio: Audio) -> Audio:
        t0 = time.perf_counter()
        out = wm.embed(audio)
        embed_times.append((time.perf_counter() - t0, audio.duration))
        return out

    def timed_detect(audio: Audio) -> float:
        t0 = time.perf_counter()
        conf = wm.detect(audio).confidence
        detect_times.append((time.perf_counter() - t0, audio.duration))
        return conf

    stages: dict[str, float] = {}
    stage_start = time.perf_counter()

    def stage_done(name: str) -> None:
        nonlocal stage_start
        stages[name] = round(time.perf_counter() - stage_start, 1)
        stage_start = time.perf_counter()

    # 2. false positives on unwatermarked real recordings, as stored
    fp_rows = random.Random(SEED_FP).sample(rows, min(args.clips, len(rows)))
    log(f"false positives: {len(fp_rows)} clean clips")
    clean = []
    for r in fp_rows:
        clean.append(
            {
                "path": r["path"],
                "corpus": r["corpus"],
                "confidence": timed_detect(load_audio(speech / r["path"])),
            }
        )
    confs = [c["confidence"] for c in clean]
    worst = max(clean, key=lambda c: c["confidence"])
    k = sum(c >= wm.threshold for c in confs)
    results["false_positives"] = {
        "n": len(confs),
        "detected": k,
        "rate": k / len(confs),
        "ci95": wilson(k, len(confs)),
        "detected_at_0.5": sum(c >= PERTH_THRESHOLD for c in confs),
        "max_confidence": worst["confidence"],
        "max_clip": worst["path"],
        "median_confidence": statistics.median(confs),
        "p95_confidence": float(np.percentile(confs, 95)),
        "by_corpus_max": {
            corpus: max(c["confidence"] for c in clean if c["corpus"] == corpus)
            for corpus in sorted({c["corpus"] for c in clean})
        },
        "clips": clean,
    }
    log(f"  {k}/{len(confs)} detected, max {worst['confidence']:.3f}")

    stage_done("false_positives")

    # 1. robustness on watermarked clips (real + synthetic), Studio-style: -20 LUFS, then embed
    n_syn = min(args.synthetic, args.marked)
    eligible = [r for r in rows if float(r["duration_s"]) >= MIN_MARKED_SECONDS]
    marked_rows = stratified(eligible, args.marked - n_syn, SEED_MARKED)
    log(f"robustness: {len(marked_rows)} real + {n_syn} synthetic clips x {len(CONDITIONS)}")
    sources: list[tuple[str, str, Audio]] = [
        ("real", f"{r['corpus']}:{r['path']}", load_audio(speech / r["path"])) for r in marked_rows
    ]
    if n_syn:
        sources += synthetic_clips(n_syn)

    per_clip = []
    perceptual = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for index, (kind, name, raw) in enumerate(sources):
            original = normalize_loudness(raw, OUTPUT_LUFS)
            marked = timed_embed(original)
            perceptual.append(perceptual_row(kind, name, original, marked))
            row: dict[str, object] = {
                "source": kind,
                "clip": name,
                "rate": raw.sample_rate,
                "seconds": round(raw.duration, 3),
                "clean_confidence": timed_detect(wav_round_trip(original, tmp)),
            }
            for cond in CONDITIONS:
                decoded = cond.apply(marked, tmp, index)
                row[cond.name] = (
                    timed_detect(decoded)
                    if cond.name == "none"
                    else (wm.detect(decoded).confidence)
                )
            per_clip.append(row)
            worst_cond = min((c.name for c in CONDITIONS), key=lambda c: row[c])
            log(
                f"  {index + 1}/{len(sources)} {name}: none {row['none']:.2f}, "
                f"lowest {worst_cond} {row[worst_cond]:.2f}"
            )

    robustness = {}
    for cond in CONDITIONS:
        entry = {"description": cond.description}
        entry.update(summarize([float(r[cond.name]) for r in per_clip], wm.threshold))
        for kind in SOURCES:
            sub = [float(r[cond.name]) for r in per_clip if r["source"] == kind]
            entry[kind] = summarize(sub, wm.threshold)
        robustness[cond.name] = entry
    clean_marked = [float(r["clean_confidence"]) for r in per_clip]
    results["robustness"] = {
        "conditions": robustness,
        "clean_versions_max_confidence": max(clean_marked),
        "codec_measured_kbps": {k: statistics.median(v) for k, v in CODED_KBPS.items()},
        "clipped_fraction_median": {str(k): statistics.median(v) for k, v in CLIPPED.items()},
        "clips_with_clipping": {str(k): sum(x > 0 for x in v) for k, v in CLIPPED.items()},
        "clips": per_clip,
    }

    stage_done("robustness (incl. Kokoro/Piper loading and synthesis)")

    # 3. Whisper WER with and without the watermark
    if args.wer_clips:
        results["wer"] = wer_measurement(args, rows, speech, timed_embed, perceptual)

        stage_done("wer (incl. Whisper loading)")

    # 4. perceptual change (robustness + WER clips)
    results["perceptual"] = {
        "n": len(perceptual),
        "median_snr_db": statistics.median(p["snr_db"] for p in perceptual),
        "min_snr_db": min(p["snr_db"] for p in perceptual),
        "max_snr_db": max(p["snr_db"] for p in perceptual),
        "median_loudness_change_lu": statistics.median(p["loudness_change_lu"] for p in perceptual),
        "max_abs_loudness_change_lu": max(abs(p["loudness_change_lu"]) for p in perceptual),
        "by_source": {
            kind: {
                "n": len(sub),
                "median_snr_db": statistics.median(p["snr_db"] for p in sub),
                "median_loudness_change_lu": statistics.median(
                    p["loudness_change_lu"] for p in sub
                ),
            }
            for kind in SOURCES
            if (sub := [p for p in perceptual if p["source"] == kind])
        },
        "clips": perceptual,
    }

    # 5. timings
    def per(times: list[tuple[float, float]]) -> dict[str, float]:
        return {
            "n": len(times),
            "median_s_per_clip": statistics.median(s for s, _ in times),
            "median_clip_seconds": statistics.median(d for _, d in times),
            "s_per_audio_second": sum(s for s, _ in times) / sum(d for _, d in times),
        }

    results["timing"] = {"embed": per(embed_times), "detect": per(detect_times)}
    results["stage_seconds"] = stages
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    return results


def perceptual_row(kind: str, name: str, original: Audio, marked: Audio) -> dict[str, object]:
    return {
        "source": kind,
        "clip": name,
        "snr_db": snr_db(original.samples, marked.samples),
        "loudness_change_lu": lufs(marked) - lufs(original),
    }


def wer_measurement(
    args: argparse.Namespace,
    rows: list[dict[str, str]],
    speech: Path,
    timed_embed: Callable[[Audio], Audio],
    perceptual: list[dict[str, object]],
) -> dict[str, object]:
    from deepfake_studio.evaluation.asr import Transcriber, normalize_words, word_error_rate

    candidates = [
        r
        for r in rows
        if r["text_source"] == "reference"
        and r["corpus"] in WER_CORPORA
        and float(r["duration_s"]) <= WER_MAX_SECONDS
    ]
    chosen = stratified(candidates, args.wer_clips, SEED_WER)
    log(f"WER: {len(chosen)} clips with reference transcripts, with and without the mark")
    asr = Transcriber()
    asr_seconds: list[float] = []
    clips = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for r in chosen:
            original = normalize_loudness(load_audio(speech / r["path"]), OUTPUT_LUFS)
            marked = timed_embed(original)
            name = f"{r['corpus']}:{r['path']}"
            perceptual.append(perceptual_row("real", name, original, marked))
            hyp = {}
            for label, audio in (("original", original), ("watermarked", marked)):
                decoded = wav_round_trip(audio, tmp)
                t0 = time.perf_counter()
                hyp[label] = asr.transcribe(decoded.samples, decoded.sample_rate)
                asr_seconds.append(time.perf_counter() - t0)
            clips.append(
                {
                    "clip": f"{r['corpus']}:{r['path']}",
                    "reference": r["text"],
                    "ref_words": len(normalize_words(r["text"])),
                    "hyp_original": hyp["original"],
                    "hyp_watermarked": hyp["watermarked"],
                    "wer_original": word_error_rate(r["text"], hyp["original"]),
                    "wer_watermarked": word_error_rate(r["text"], hyp["watermarked"]),
                }
            )
    words = sum(c["ref_words"] for c in clips)

    def pooled(key: str) -> float:  # total word errors / total reference words
        return sum(c[key] * c["ref_words"] for c in clips) / words

    def corpus_of(c: dict[str, object]) -> str:
        return str(c["clip"]).split(":", 1)[0]

    diffs = [c["wer_watermarked"] - c["wer_original"] for c in clips]
    return {
        "n": len(clips),
        "reference_words": words,
        "wer_original": pooled("wer_original"),
        "wer_watermarked": pooled("wer_watermarked"),
        "transcripts_identical": sum(
            normalize_words(c["hyp_original"]) == normalize_words(c["hyp_watermarked"])
            for c in clips
        ),
        "clips_worse": sum(d > 0 for d in diffs),
        "clips_better": sum(d < 0 for d in diffs),
        "max_seconds": WER_MAX_SECONDS,
        "median_transcribe_s": statistics.median(asr_seconds) if asr_seconds else None,
        "by_corpus": {
            corpus: {
                "n": len(sub),
                "wer_original": sum(c["wer_original"] * c["ref_words"] for c in sub)
                / sum(c["ref_words"] for c in sub),
                "wer_watermarked": sum(c["wer_watermarked"] * c["ref_words"] for c in sub)
                / sum(c["ref_words"] for c in sub),
            }
            for corpus in WER_CORPORA
            if (sub := [c for c in clips if corpus_of(c) == corpus])
        },
        "clips": clips,
    }


# -- report ---------------------------------------------------------------------------------
def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def markdown(res: dict[str, object]) -> str:
    m = res["machine"]
    s = res["settings"]
    thr = res["threshold"]
    rob = res["robustness"]
    fp = res["false_positives"]
    none = rob["conditions"]["none"]
    n_real, n_kokoro, n_piper = (none[k]["n"] for k in SOURCES)
    n_all = none["n"]

    def group(c: dict[str, object]) -> str:
        if not c["n"]:
            return "–"
        return f"{c['detected']}/{c['n']} (min {c['min_confidence']:.2f})"

    weak = [
        f"`{name}` ({pct(c['rate'])}; real {pct(c['real']['rate'])}, Kokoro"
        f" {pct(c['kokoro']['rate'])}, Piper {pct(c['piper']['rate'])})"
        for name, c in rob["conditions"].items()
        if c["rate"] < 0.9 or any(c[k]["n"] and c[k]["rate"] < 0.9 for k in SOURCES)
    ]
    marginal = [
        f"`{name}` (lowest {c['min_confidence']:.3f})"
        for name, c in rob["conditions"].items()
        if c["rate"] >= 0.9 and c["min_confidence"] < thr + 0.05
    ]
    lines = [
        "# Watermark robustness (PerthNet, issue 6)",
        "",
        f"Generated by `benchmarks/watermark_robustness.py` (`{res['command']}`) on {res['date']};"
        f" {res['total_seconds'] / 60:.1f} min in total. Per-clip scores are in"
        " `watermark_robustness.json`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable, shared with"
        f" other jobs: load average {m['load_average_at_start'][0]} at the start,"
        f" {m['load_average_at_end'][0]} at the end), torch {m['torch']} with"
        f" {m['torch_threads']} threads, {m['watermark_model']}, {m['ffmpeg']}.",
        "",
        f"Threshold: the default {thr} (`DETECTION_THRESHOLD`); PerthNet's own 0.5 is shown for"
        " comparison. Marked clips are loudness-normalised to"
        f" {s['output_lufs']:.0f} LUFS and watermarked the way `Studio.speak` does it.",
        "",
        "## 1. Detection after common transformations",
        "",
        f"{n_all} watermarked clips: {n_real} real recordings from shared/data/speech"
        f" (16 kHz, ≥ {MIN_MARKED_SECONDS:.0f} s, round-robin over the six corpora, seed"
        f" {SEED_MARKED}), {n_kokoro} Kokoro clips (default pack, 24 kHz) and {n_piper} Piper"
        " clips (en_US-joe-medium, 22.05 kHz) of fixed sentences. Every condition ends in"
        " a file that is decoded again. Interval: Wilson 95 % on the detection rate (all clips)."
        " The real/Kokoro/Piper columns give detected/clips and the lowest confidence.",
        "",
        f"| condition | detected ≥ {thr} | 95 % CI | mean conf. | real | Kokoro | Piper"
        " | detected ≥ 0.5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, c in rob["conditions"].items():
        lo, hi = c["ci95"]
        lines.append(
            f"| {name} | {c['detected']}/{c['n']} ({pct(c['rate'])}) | {pct(lo)}–{pct(hi)}"
            f" | {c['mean_confidence']:.3f} | {group(c['real'])} | {group(c['kokoro'])}"
            f" | {group(c['piper'])} | {c['detected_at_0.5']}/{c['n']} ({pct(c['rate_at_0.5'])}) |"
        )
    lines += [
        "",
        "Below 90 % detection (overall or for one source): "
        + (", ".join(weak) if weak else "none")
        + ". Detected but within 0.05 of the threshold: "
        + (", ".join(marginal) if marginal else "none")
        + ".",
        "",
        "Conditions:",
        "",
    ]
    lines += [f"- `{name}`: {c['description']}" for name, c in rob["conditions"].items()]
    kbps = ", ".join(f"`{k}` {v:.0f} kbps" for k, v in rob["codec_measured_kbps"].items())
    clipped = rob["clips_with_clipping"].get("6.0", 0)
    lines += [
        "",
        f"Measured file bitrates (median): {kbps}. With +6 dB, {clipped} of {n_all}"
        f" clips clip (median fraction of clipped samples"
        f" {100 * rob['clipped_fraction_median'].get('6.0', 0):.2f} %). The same clips"
        f" *without* the watermark scored at most {rob['clean_versions_max_confidence']:.3f}.",
        "",
        "## 2. False positives on unwatermarked real speech",
        "",
        f"{fp['n']} real recordings drawn at random (seed {SEED_FP}) from all six corpora of"
        " shared/data/speech, scored exactly as stored (16 kHz FLAC).",
        "",
        f"| clips | detected ≥ {thr} | 95 % CI | detected ≥ 0.5 | median conf. | 95th pct."
        " | highest conf. (clip) |",
        "|---|---|---|---|---|---|---|",
        f"| {fp['n']} | {fp['detected']} ({pct(fp['rate'])}) | {pct(fp['ci95'][0])}–"
        f"{pct(fp['ci95'][1])} | {fp['detected_at_0.5']} | {fp['median_confidence']:.3f}"
        f" | {fp['p95_confidence']:.3f} | {fp['max_confidence']:.3f} (`{fp['max_clip']}`) |",
        "",
        "Highest clean confidence per corpus: "
        + ", ".join(f"{k} {v:.3f}" for k, v in fp["by_corpus_max"].items())
        + ".",
        "",
        "Caveat: `DETECTION_THRESHOLD` was set above every clean score of these same 1,102"
        " recordings, so this false-positive rate is in-sample (the threshold was fitted to"
        " make it 0); it shows the code path behaves, not how often unseen recordings (other"
        " microphones, music, noise, other TTS systems) would be flagged. The speaker-disjoint"
        " check is benchmarks/watermark_threshold_split.md: the same rule applied to the train"
        " and dev speakers alone gives 0.85 again, and 0 of 573 recordings by other speakers"
        " (166 of the test split, 407 EmoDB clips) reach it.",
    ]
    if "wer" in res:
        w = res["wer"]
        lines += [
            "",
            "## 3. Intelligibility: Whisper-base WER with and without the watermark",
            "",
            f"{w['n']} real recordings with the corpus's own transcript ({', '.join(WER_CORPORA)},"
            f" clips of at most {w['max_seconds']:.0f} s, round-robin, seed {SEED_WER};"
            f" {w['reference_words']} reference words), normalised to -20 LUFS, both versions"
            " through a 16-bit WAV round trip. WER = all word errors / all reference words."
            f" Whisper-base took a median {w['median_transcribe_s']:.1f} s per clip.",
            "",
            "| set | clips | WER original | WER watermarked | change |",
            "|---|---|---|---|---|",
            f"| all | {w['n']} | {100 * w['wer_original']:.1f} % |"
            f" {100 * w['wer_watermarked']:.1f} % |"
            f" {100 * (w['wer_watermarked'] - w['wer_original']):+.1f} pts |",
        ]
        for corpus, c in w["by_corpus"].items():
            lines.append(
                f"| {corpus} | {c['n']} | {100 * c['wer_original']:.1f} % |"
                f" {100 * c['wer_watermarked']:.1f} % |"
                f" {100 * (c['wer_watermarked'] - c['wer_original']):+.1f} pts |"
            )
        lines += [
            "",
            f"Transcripts identical (after normalisation) for {w['transcripts_identical']} of"
            f" {w['n']} clips; WER worse on {w['clips_worse']}, better on {w['clips_better']}.",
        ]
    p = res["perceptual"]
    lines += [
        "",
        "## 4. Perceptual change",
        "",
        f"Over {p['n']} watermarked clips (robustness and WER sets): waveform SNR of watermarked"
        f" vs original, median {p['median_snr_db']:.1f} dB (range {p['min_snr_db']:.1f} to"
        f" {p['max_snr_db']:.1f} dB); integrated loudness change median"
        f" {p['median_loudness_change_lu']:+.2f} LU (largest"
        f" {p['max_abs_loudness_change_lu']:.2f} LU). "
        + "; ".join(
            f"{k}: {v['n']} clips, SNR {v['median_snr_db']:.1f} dB,"
            f" {v['median_loudness_change_lu']:+.2f} LU"
            for k, v in p["by_source"].items()
        )
        + ". The SNR is low for an 'inaudible' mark because the change is a coherent"
        " reshaping of the 0–2 kHz magnitudes, not added noise; no listening test was done.",
        "",
        "## 5. Cost",
        "",
        "| step | clips | median s / clip | median clip length | s per audio second |",
        "|---|---|---|---|---|",
    ]
    for step, tm in res["timing"].items():
        lines.append(
            f"| {step} | {tm['n']} | {tm['median_s_per_clip']:.2f} |"
            f" {tm['median_clip_seconds']:.1f} s | {tm['s_per_audio_second']:.3f} |"
        )
    lines += [
        "",
        f"Model load: {res['model_load_s']} s (once per process). Timings are wall-clock on the"
        " shared machine described above, so they are upper bounds for an idle one. Stages: "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in res["stage_seconds"].items())
        + ".",
        "",
        "## Not measured",
        "",
        "- The watermark's effect on the synthetic-speech detector's EER: the project has no"
        " detector yet, so this cannot be measured; rerun once one exists.",
        "- Listening tests; other codecs (AAC, telephone AMR), time stretching, pitch shift,"
        " reverberation, mixing with music, and deliberate removal attacks.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="clean clips for false positives")
    parser.add_argument("--marked", type=int, default=40, help="watermarked clips (robustness)")
    parser.add_argument(
        "--synthetic", type=int, default=16, help="how many of --marked are Kokoro/Piper outputs"
    )
    parser.add_argument("--wer-clips", type=int, default=30, help="clips for the WER check")
    parser.add_argument("--data", type=Path, default=None, help="shared data directory")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "watermark_robustness")
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite the .md from the existing .json"
    )
    add_overwrite_flag(parser)
    args = parser.parse_args(argv)
    refuse_to_overwrite(
        [args.out.with_suffix(".json"), args.out.with_suffix(".md")], args.overwrite
    )
    if args.render_only:
        results = json.loads(args.out.with_suffix(".json").read_text())
        args.out.with_suffix(".md").write_text(markdown(results))
        return 0
    speech = data_dir(args.data) / "speech"
    if not (speech / "manifest.csv").exists():
        parser.error(f"no speech manifest at {speech} (use --data or DEEPFAKE_STUDIO_DATA)")
    if ffmpeg_path() is None:
        parser.error("ffmpeg is needed for the codec conditions")

    results = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    log(f"wrote {args.out.with_suffix('.md')} and .json")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
