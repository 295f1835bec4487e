"""The shipped studio watermark, measured honestly: issue 22 item 2 (rerun of issue 6's report).

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/watermark_robustness.py --overwrite
    (~35 min on 2 shared cores; --fp-passes 1 --wer-clips 6 for a quick look)

Both layers exactly as `Studio` embeds them (PerthNet, then the keyed spread-spectrum layer of
a fixed benchmark signing key) and as its verify decides "present": either layer found. With
fixed seeds, in one process:

1. Detection per attack (issue 22's list: white and pink noise at 20 dB SNR, MP3 64 kbps, Opus
   32 kbps, AAC 64 kbps, 8 kHz resampling, speed +-5 %; plus a plain WAV round trip) on marked
   clips of several engines and speakers, each at -20 LUFS: 3-5 s crops of one recording per
   test speaker and 6-12 s crops of one per dev speaker (speaker split of
   `evaluation/speaker_split.json`), Kokoro (its five bundled packs) and Piper speaking short
   and long sentences. Per layer and either, per source, with Wilson 95 % intervals.
2. False positives on unmarked real clips of speakers the thresholds were not chosen on (both
   were chosen on train speakers: `watermark_threshold_split.md`, `watermark_layers.md`): every
   dev- and test-speaker recording whole, consecutive 1.5-3 s crops of it in several passes
   (each pass starts 0.75 s later, so crops of different passes overlap), and the EmoDB clips
   whole plus one 1.5 s crop of each. PerthNet once, the keyed layer with four keys (the
   marking key decides; the others show the spread). Clopper-Pearson upper bounds for all
   clips and for the non-overlapping subset.
3. Loudness change (BS.1770) of the embedding, both layers and the keyed layer alone.
4. Whisper-base WER with and without the mark on test-speaker recordings with the corpus's
   own transcript.
5. Embed and verify seconds per clip: wall and process CPU during the run, and a short timing
   run taken when the load average is below 1.5 (waited for, up to 2 min; its load is kept).

The attack, clip and layer helpers are `watermark_attacks.py`'s and `watermark_layers.py`'s
(imported where used: they import this module's codec helpers). Writes
benchmarks/watermark_robustness.{json,md}.
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
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _output import add_overwrite_flag, refuse_to_overwrite

from deepfake_studio.audio import Audio, ffmpeg_path, load_audio, resample, save_audio
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.provenance import AudioWatermarker
from deepfake_studio.provenance.watermark import model_version

OUT_DIR = Path(__file__).resolve().parent
SEED_NOISE = 4  # white-noise attack seed (kept from issue 6, so its noise is the same)
TARGET = 0.95  # issue 22: detected after each attack
FP_TARGET = 0.001  # issue 22: false positives on held-out real clips
LONG_SENTENCES = (  # issue 6's synthetic sentences: 4-7 s clips next to the short ones
    "The museum opens at nine, and tickets are free for everyone on Sundays.",
    "Please remember to bring your umbrella when you visit the north coast in spring.",
    "A small boat drifted past the harbour wall while the gulls circled overhead.",
    "Our train was delayed by twenty minutes, so we bought coffee and waited on the platform.",
    "The library will be closed on Monday while the heating system is repaired.",
    "He wrote the phone number on the back of an old envelope and lost it the same day.",
    "Every autumn the orchard fills with people picking apples and pears.",
    "Before you leave, check that the windows are shut and the lights are off.",
)
SHORT_MAX_S = 5.5  # clips up to this long are reported as "short" (voice-message length)
WER_MAX_S = 12.0  # longer slow read clips with pauses make Whisper-base loop


# -- conditions ---------------------------------------------------------------------------------
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
    # Generous: on the shared machine a job may be paused for minutes; a real hang is rare.
    proc = subprocess.run(cmd, capture_output=True, check=False, timeout=900)
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


FFMPEG = ffmpeg_path() or "ffmpeg"
CODED_KBPS: dict[str, list[float]] = {}  # measured bitrate of each codec condition's files


# -- statistics -----------------------------------------------------------------------------
def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def lufs(audio: Audio) -> float:
    import pyloudnorm

    meter = pyloudnorm.Meter(audio.sample_rate)
    return float(meter.integrated_loudness(audio.samples.astype(np.float64)))


def machine() -> dict[str, object]:
    cpu = cpu_model()
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "nice": os.nice(0),
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


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a proportion k/n (exact, from the beta law)."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(confidence, k + 1, n - k))


# -- the measurement ------------------------------------------------------------------------
def held_out_real(
    passes: int, seed: int, splits: tuple[str, ...] = ("dev", "test"), emodb: bool = True
) -> list[tuple[str, str, Audio]]:
    """(set, name, clip) for every unmarked held-out clip: dev/test-speaker recordings whole
    and in `passes` passes of consecutive 1.5-3 s crops (pass p starts 0.75 p s in), EmoDB
    whole and one 1.5 s crop of each starting 0.5 s in. Other `splits` (the train speakers,
    without EmoDB) give the same recipe on the speakers thresholds are chosen on."""
    from watermark_layers import consecutive_crops

    from deepfake_studio.evaluation.speakers import SPLIT_FILE, data_root, load_manifest

    table = json.loads(SPLIT_FILE.read_text(encoding="utf-8"))["splits"]
    held = {s: split for split in splits for v in table[split].values() for s in v}
    rng = random.Random(seed)
    out: list[tuple[str, str, Audio]] = []
    for clip in load_manifest():
        if clip.speaker not in held:
            continue
        audio = load_audio(clip.path)
        name = f"{held[clip.speaker]}:{clip.corpus}:{clip.path.name}"  # split first: see below
        out.append(("whole", name, audio))
        for p in range(passes):
            shifted = audio.with_samples(audio.samples[int(0.75 * p * audio.sample_rate) :])
            if p and shifted.duration < 1.5:
                continue  # too short to cut again: it would repeat the whole clip
            crops = consecutive_crops(shifted, rng)
            out += [(f"crops_pass{p}", f"{name}#{j}", c) for j, c in enumerate(crops)]
    if not emodb:
        return out
    emotion = data_root() / "emotion"
    with open(emotion / "manifest.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            audio = load_audio(emotion / row["path"])
            out.append(("emodb", row["path"], audio))
            rate = audio.sample_rate
            out.append(
                (
                    "emodb_crop",
                    row["path"],
                    audio.with_samples(audio.samples[rate // 2 :][: 3 * rate // 2]),
                )
            )
    return out


def false_positives(
    marker: AudioWatermarker,
    keys: list[bytes],
    passes: int,
    seed: int,
    checkpoint: Callable[[dict[str, object]], None],
) -> dict[str, object]:
    """Both layers on every held-out clip; the marking key (keys[0]) decides "either". Clips
    are scored in a seeded random order and `checkpoint` gets the summary every 250 clips, so
    a run cut short still reports an unbiased part of every set."""
    from deepfake_studio.provenance import spread_watermark as spread

    layers = [spread.SpreadSpectrumWatermark(k) for k in keys]
    clips = held_out_real(passes, seed)
    random.Random(seed).shuffle(clips)
    log(f"false positives: {len(clips)} held-out real clips")
    rows: list[dict] = []  # type: ignore[type-arg]
    started = time.time()
    for i, (group, name, clip) in enumerate(clips):
        perth = marker._detect_perthnet(clip)  # PerthNet alone: keyless, read once per clip
        found = [layer.score(clip.samples, clip.sample_rate) for layer in layers]
        rows.append(
            {
                "set": group,
                "clip": name,
                "seconds": round(clip.duration, 2),
                "perthnet": round(perth.score, 4),
                # 0.85, or 0.98 under 3 s of sound (watermark_short_clips.md)
                "perthnet_threshold": perth.threshold,
                "spread_z": [round(f.z, 3) for f in found],
                # z at the threshold and above every decoy (watermark_attribution.md)
                "spread_present": [f.present for f in found],
            }
        )
        if (i + 1) % 250 == 0:
            log(f"  {i + 1}/{len(clips)} after {(time.time() - started) / 60:.1f} min")
            checkpoint(fp_summary(rows, len(clips), marker.threshold, layers[0].threshold, started))
    return fp_summary(rows, len(clips), marker.threshold, layers[0].threshold, started)


def fp_summary(
    rows: list[dict],  # type: ignore[type-arg]
    planned: int,
    perth_thr: float,
    z_thr: float,
    started: float,
) -> dict[str, object]:
    def count(sel: list[dict]) -> dict[str, object]:  # type: ignore[type-arg]
        n = len(sel)
        # Rows of runs before session 18 hold scores only: their verdicts are the fixed
        # thresholds' (no short-clip threshold, no decoy rule).
        p = [r["perthnet"] >= r.get("perthnet_threshold", perth_thr) for r in sel]
        s = [
            [
                r["spread_present"][k] if "spread_present" in r else r["spread_z"][k] >= z_thr
                for r in sel
            ]
            for k in range(len(sel[0]["spread_z"]))
        ]
        either = [a or b for a, b in zip(p, s[0], strict=True)]
        return {
            "clips": n,
            "perthnet": sum(p),
            "spread": sum(s[0]),
            "either": sum(either),
            "spread_per_key": [sum(x) for x in s],
            "either_per_key": [sum(a or b for a, b in zip(p, x, strict=True)) for x in s],
            "perthnet_max": max(r["perthnet"] for r in sel),
            "spread_max_z": max(r["spread_z"][0] for r in sel),
            "spread_max_z_any_key": max(max(r["spread_z"]) for r in sel),
            "either_upper95": clopper_pearson_upper(sum(either), n),
        }

    sets = sorted({r["set"] for r in rows})
    # Non-overlapping subset: the first crop pass and EmoDB whole (the other passes and the
    # whole recordings overlap the first pass, EmoDB's crops overlap the whole clips).
    independent = [r for r in rows if r["set"] in ("crops_pass0", "emodb")]
    return {
        "perthnet_threshold": perth_thr,
        "spread_threshold": z_thr,
        "keys": len(rows[0]["spread_z"]),
        "planned": planned,
        "all": count(rows),
        "non_overlapping": count(independent),
        # PerthNet's 0.85 was re-derived on train + dev speakers (watermark_threshold_split.md),
        # so for it only test speakers and EmoDB are held out.
        "test_and_emodb": count([r for r in rows if not r["clip"].startswith("dev:")]),
        "test_and_emodb_non_overlapping": count(
            [r for r in independent if not r["clip"].startswith("dev:")]
        ),
        "per_set": {g: count([r for r in rows if r["set"] == g]) for g in sets},
        "minutes": (time.time() - started) / 60,
        "clips": rows,
    }


def marked_clip_set(
    seed: int, short_real: int, long_real: int, short_syn: int, long_syn: int
) -> list[tuple[str, str, Audio]]:
    """(kind, name, clip) with kind real/kokoro/piper: short test-speaker crops, longer
    dev-speaker crops, Kokoro/Piper short and long sentences."""
    from watermark_attacks import real_crops, synthetic

    return (
        real_crops(short_real, seed)
        + real_crops(long_real, seed + 1, "dev", (6.0, 12.0))
        + synthetic(short_syn)
        + synthetic(long_syn, LONG_SENTENCES, first=1)
    )


def group_of(kind: str, clip: Audio) -> str:
    return f"{kind} {'short' if clip.duration <= SHORT_MAX_S else 'long'}"


def wer(marker: AudioWatermarker, count: int) -> dict[str, object]:
    """Whisper-base on test-speaker recordings of at most WER_MAX_S (corpus transcripts),
    plain and marked, both through a 16-bit WAV round trip as a saved file would be."""
    import tempfile

    from watermark_layers import wer_clips, wer_measure

    picked = [(t, a) for t, a in wer_clips(2 * count) if a.duration <= WER_MAX_S][:count]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        return wer_measure(marker, picked, lambda a: wav_round_trip(a, tmp))


def quiet_timing(marker: AudioWatermarker, clips: list[Audio], wait_s: float) -> dict[str, object]:
    """Embed and verify seconds per clip, wall and process CPU, started when the 1-minute load
    average is below 1.5 (or after `wait_s`, the load then recorded either way)."""
    deadline = time.time() + wait_s
    while os.getloadavg()[0] >= 1.5 and time.time() < deadline:
        time.sleep(15)
    load_before = os.getloadavg()
    rows = []
    for clip in clips:
        t, c = time.time(), time.process_time()
        mark = marker.embed(clip)
        embed = (time.time() - t, time.process_time() - c)
        t, c = time.time(), time.process_time()
        marker.detect(mark)
        rows.append((clip.duration, *embed, time.time() - t, time.process_time() - c))
    return {
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "clips": len(rows),
        "clip_seconds_median": statistics.median(r[0] for r in rows),
        "embed_wall_median": statistics.median(r[1] for r in rows),
        "embed_cpu_median": statistics.median(r[2] for r in rows),
        "verify_wall_median": statistics.median(r[3] for r in rows),
        "verify_cpu_median": statistics.median(r[4] for r in rows),
        "rows": [[round(x, 3) for x in r] for r in rows],
    }


def run(args: argparse.Namespace, save: Callable[[dict[str, object]], None]) -> dict[str, object]:
    """The measurement; `save` gets the results so far after each stage (and during the
    false-positive scan), so a run stopped early still leaves a report."""
    from watermark_attacks import ATTACKS, clip_summary
    from watermark_layers import (
        benchmark_keys,
        detection_table,
        embed_clips,
        flag_count,
        wrong_key_count,
    )

    from deepfake_studio.audio import normalize_loudness
    from deepfake_studio.provenance import spread_watermark as spread

    started, stages = time.time(), {}

    def progress() -> None:
        res["stage_minutes"] = {k: round(v / 60, 1) for k, v in stages.items()}
        res["load_at_end"] = os.getloadavg()
        res["minutes"] = (time.time() - started) / 60
        save(res)

    res: dict[str, object] = {
        "about": "benchmarks/watermark_robustness.py (issue 22 item 2)",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "spread_method": spread.METHOD,
    }
    keys = benchmark_keys()
    marker = AudioWatermarker(key=keys[0])  # shipped thresholds: 0.85 and z >= 7
    wrong = spread.SpreadSpectrumWatermark(keys[1])
    assert marker.spread is not None
    res["thresholds"] = {
        "perthnet": marker.threshold,
        "perthnet_short": marker.threshold_for(0),
        "spread_z": marker.spread.threshold,
    }

    t = time.time()
    clips = marked_clip_set(
        args.seed, args.short_real, args.long_real, args.short_syn, args.long_syn
    )
    stages["synthesis"] = time.time() - t
    groups = [group_of(kind, clip) for kind, _, clip in clips]
    log(
        f"{len(clips)} marked clips: "
        + ", ".join(f"{g} {groups.count(g)}" for g in dict.fromkeys(groups))
    )
    # issue 22's list and a plain WAV round trip (tempo alone is in watermark_layers.md)
    attacks = {k: v for k, v in ATTACKS.items() if k != "tempo_+5%"}
    t = time.time()
    marks = embed_clips(marker, marker.spread, clips)
    stages["embed"] = time.time() - t
    z_thr = marker.spread.threshold
    loud, alone = marks["loudness"], marks["loudness_spread"]
    res.update(
        {
            **clip_summary(clips),
            "groups": {g: groups.count(g) for g in dict.fromkeys(groups)},
            "speakers": {
                "real": len({n for k, n, _ in clips if k == "real"}),
                "kokoro_packs": len({n.split(":")[1] for k, n, _ in clips if k == "kokoro"}),
            },
            "unmarked_synthetic": flag_count(marks["unmarked_synthetic_z"], z_thr),
            "loudness_change_lu": {
                "both_median": statistics.median(loud),
                "both_median_abs": statistics.median(abs(x) for x in loud),
                "both_max_abs": max(abs(x) for x in loud),
                "both_median_abs_per_group": {
                    g: statistics.median(
                        abs(x) for x, h in zip(loud, groups, strict=True) if h == g
                    )
                    for g in dict.fromkeys(groups)
                },
                "spread_median_abs": statistics.median(abs(x) for x in alone),
                "spread_max_abs": max(abs(x) for x in alone),
            },
            "during_run_seconds_per_clip": {
                "embed_wall_median": statistics.median(marks["embed_s"]),
                "embed_cpu_median": statistics.median(marks["embed_cpu_s"]),
            },
        }
    )

    def attack_checkpoint(table: dict[str, dict]) -> None:  # type: ignore[type-arg]
        res["detection"] = table
        # The attacks fill this module's counter as imported by watermark_attacks (a second
        # copy of this file when it runs as __main__).
        coded = sys.modules["watermark_robustness"].CODED_KBPS
        res["codec_kbps_median"] = {k: statistics.median(v) for k, v in coded.items()}
        progress()

    t = time.time()
    res["detection"], detect_s, wrong_key = detection_table(
        marker, marks["marked"], groups, attacks, wrong, attack_checkpoint
    )
    stages["attacks"] = time.time() - t
    res["wrong_key_on_marked"] = wrong_key_count(wrong_key, z_thr)
    res["during_run_seconds_per_clip"]["verify_wall_median"] = statistics.median(detect_s)  # type: ignore[index]
    log(f"attacks done after {(time.time() - started) / 60:.1f} min")
    progress()

    t = time.time()

    def fp_checkpoint(fp: dict[str, object]) -> None:
        res["false_positives"] = fp
        progress()

    res["false_positives"] = false_positives(marker, keys, args.fp_passes, args.seed, fp_checkpoint)
    progress()
    stages["false_positives"] = time.time() - t
    log(f"false positives: {res['false_positives']['all']}")
    t = time.time()
    res["wer"] = wer(marker, args.wer_clips)
    progress()
    stages["wer"] = time.time() - t
    short = [normalize_loudness(c, -20.0) for k, _, c in clips if group_of(k, c).endswith("short")]
    long_ = [normalize_loudness(c, -20.0) for k, _, c in clips if group_of(k, c).endswith("long")]
    t = time.time()
    res["quiet_timing"] = {  # the second set follows at once: one wait for a quiet machine
        "short": quiet_timing(marker, short[:: max(1, len(short) // 12)][:12], args.wait_quiet),
        "long": quiet_timing(marker, long_[:: max(1, len(long_) // 12)][:12], 0.0),
    }
    stages["timing"] = time.time() - t
    progress()
    return res


# -- report ---------------------------------------------------------------------------------
def pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.1f} %)" if n else "-"


def markdown(r: dict) -> str:  # type: ignore[type-arg]
    m, thr, loud = r["machine"], r["thresholds"], r["loudness_change_lu"]
    fp = r.get("false_positives")
    secs, w, q, run_s = (
        r["clip_seconds"],
        r.get("wer"),
        r.get("quiet_timing", {}),
        r["during_run_seconds_per_clip"],
    )
    n_marked = sum(r["groups"].values())
    lines = [
        "# Watermark robustness: the shipped studio watermark (issue 22 item 2, rerun)",
        "",
        f"`benchmarks/watermark_robustness.py` (`{r['command']}`) on {r['date']}, "
        f"{r['minutes']:.0f} min at nice {m.get('nice', 19)} on {m['cpu']} "
        f"({m['cores']} cores shared "
        f"with other jobs: load average {m['load_average_at_start'][0]:.1f} at start, "
        f"{r['load_at_end'][0]:.1f} at end; torch {m['torch_threads']} thread(s)), "
        f"{m['watermark_model']}, {r['spread_method']}, {m['ffmpeg']}. Every per-clip score is "
        "in `watermark_robustness.json`."
        + ("" if r.get("complete") else " **Partial run: stopped before every stage ended.**"),
        "",
        "Both layers are embedded as `Studio` embeds them (PerthNet, then the keyed layer of a "
        "fixed benchmark signing key), on clips at -20 LUFS; a clip is **marked** when either "
        f"layer finds it, as `Studio`'s verify decides (PerthNet >= {thr['perthnet']}, "
        + (
            f"{thr['perthnet_short']} under 3 s of sound (`watermark_short_clips.md`); keyed "
            f"layer z >= {thr['spread_z']} and above every decoy (`watermark_attribution.md`)). "
            if "perthnet_short" in thr
            else f"keyed layer z >= {thr['spread_z']}). "
        )
        + "The keyed layer's threshold was chosen on train speakers "
        "(`watermark_layers.md`); PerthNet's 0.85 was first set on the whole corpus and later "
        "re-derived on train + dev speakers (`watermark_threshold_split.md`), so for PerthNet "
        "only the test speakers and EmoDB are held out.",
        "",
        "## 1. Detection per attack",
        "",
        f"{n_marked} marked clips of {secs['min']:.1f}-{secs['max']:.1f} s (median "
        f"{secs['median']:.1f} s): "
        + ", ".join(f"{n} {g}" for g, n in r["groups"].items())
        + f". Real: {r['speakers']['real']} speakers (3-5 s crops of one recording per test "
        "speaker, 6-12 s crops of one per dev speaker, LibriSpeech, speechocean762, VCTK, "
        f"alphanumeric); Kokoro: its {r['speakers']['kokoro_packs']} bundled packs; Piper: "
        "en_US-joe-medium; short = at most 5.5 s. Issue 22's target: >= 95 % after each attack.",
        "",
        "| attack | PerthNet | keyed layer (median z, min) | **either** | either 95 % CI | "
        + " | ".join(r["groups"])
        + " |",
        "|---|---|---|---|---|" + "---|" * len(r["groups"]),
    ]
    for name, d in r["detection"].items():
        n = d["clips"]
        lo, hi = d["either_wilson95"]
        miss = "" if d["either"] >= TARGET * n else " **(below 95 %)**"
        per = " | ".join(f"{s['either']}/{s['clips']}" for s in d["per_source"].values())
        lines.append(
            f"| {r['attacks'][name]} | {d['perthnet']}/{n} | {d['spread']}/{n} "
            f"({d['spread_median_z']:.1f}, {d['spread_min_z']:.1f}) | **{d['either']}/{n}**"
            f"{miss} | {100 * lo:.1f}-{100 * hi:.1f} % | {per} |"
        )
    kbps = ", ".join(f"{k} {v:.0f} kbps" for k, v in r["codec_kbps_median"].items())
    wk, us = r.get("wrong_key_on_marked"), r["unmarked_synthetic"]
    lines += [
        "",
        (f"Measured file bitrates (median): {kbps}. " if kbps else "")
        + (
            f"Another studio's key on the marked clips (unattacked): {wk['flagged']}/"
            f"{wk['clips']} called present"
            + (
                f" ({wk['z_at_threshold']} reach z {r['thresholds']['spread_z']:g} but do not "
                "beat the decoys: watermark_attribution.md)"
                if "z_at_threshold" in wk
                else ""
            )
            + f", highest z {wk['max']:.2f}. "
            if wk
            else ""
        )
        + "The Kokoro/Piper clips "
        f"unmarked: {us['flagged']}/{us['clips']} flagged by the keyed layer (highest "
        f"{us['max']:.2f}).",
        "",
    ]
    lines += (
        fp_section(fp)
        if fp
        else ["## 2. False positives on held-out real clips", "", "Not reached in this run.", ""]
    )
    lines += [
        "## 3. Loudness change",
        "",
        f"BS.1770 integrated loudness, marked minus unmarked, over the {n_marked} clips: both "
        f"layers median |change| {loud['both_median_abs']:.2f} LU (signed median "
        f"{loud['both_median']:+.2f}), largest {loud['both_max_abs']:.2f} LU; per group "
        + ", ".join(f"{g} {v:.2f}" for g, v in loud["both_median_abs_per_group"].items())
        + f". The keyed layer alone: median {loud['spread_median_abs']:.2f} LU, largest "
        f"{loud['spread_max_abs']:.2f} LU. Target: <= 0.5 LU median.",
        "",
        "## 4. Whisper-base WER with and without the mark",
        "",
    ]
    lines += (
        ["Not reached in this run.", ""]
        if not w
        else [
            f"{w['clips']} test-speaker recordings of at most {WER_MAX_S:.0f} s with the corpus's "
            f"own transcript ({w['words']} words), at -20 LUFS, both through a 16-bit WAV: "
            f"{100 * w['plain']:.1f} % unmarked, {100 * w['marked']:.1f} % marked "
            f"({100 * (w['marked'] - w['plain']):+.1f} points; target within 1 point); the same "
            f"transcript for {w['same_transcript']} of {w['clips']} clips.",
            "",
        ]
    )
    lines += [
        "## 5. Embed and verify time per clip",
        "",
        "| run | load average (1 / 5 / 15 min) | clips (median length) | embed wall / CPU s | "
        "verify wall / CPU s |",
        "|---|---|---|---|---|",
    ]
    for name, t in q.items():
        la = t["load_before"]
        lines.append(
            f"| timing run, {name} clips{' (load >= 1.5: not idle)' if la[0] >= 1.5 else ''} "
            f"| {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} | "
            f"{t['clips']} ({t['clip_seconds_median']:.1f} s) | {t['embed_wall_median']:.2f} / "
            f"{t['embed_cpu_median']:.2f} | {t['verify_wall_median']:.2f} / "
            f"{t['verify_cpu_median']:.2f} |"
        )
    lines += [
        f"| during the run (all {n_marked} clips, attacked copies for verify) | shared, "
        f"{m['load_average_at_start'][0]:.1f} at start | {n_marked} ({secs['median']:.1f} s) | "
        f"{run_s['embed_wall_median']:.2f} / {run_s['embed_cpu_median']:.2f} | "
        f"{run_s.get('verify_wall_median', float('nan')):.2f} / - |",
        "",
        "Medians. Wall seconds taken at a load average above 1.5 or while the process may be "
        "paused are not speed figures; process CPU seconds (all threads) are not inflated by "
        "other jobs. Stages (min): "
        + ", ".join(f"{k} {v}" for k, v in r["stage_minutes"].items())
        + ".",
        "",
        "Not measured here: reverb, pitch shift without tempo, mixing with music, cropping "
        "below 1.5 s, deliberate removal attacks, listening tests.",
        "",
    ]
    return "\n".join(lines)


def fp_section(fp: dict) -> list[str]:  # type: ignore[type-arg]
    a = fp["all"]
    partial = (
        []
        if a["clips"] >= fp["planned"]
        else [
            f"**Scan incomplete**: {a['clips']} of {fp['planned']} planned clips were scored "
            "(in a seeded random order, so every set is sampled) before the run was stopped.",
            "",
        ]
    )
    redone = (
        [
            f"Measured again on {fp['redone']} with the same clips, after the detection rules "
            "changed (`--redo-false-positives`); the other sections are from the run above.",
            "",
        ]
        if "redone" in fp
        else []
    )
    lines = [
        "## 2. False positives on held-out real clips",
        "",
        *partial,
        *redone,
        "Unmarked real clips of speakers the keyed layer's threshold never saw: the "
        f"{fp['per_set']['whole']['clips']} "
        "dev- and test-speaker recordings of shared/data/speech whole, consecutive 1.5-3 s crops "
        "of them in passes starting 0.75 s apart (so crops of different passes overlap), and "
        "the EmoDB clips (2 s, German, 10 actors) whole and cropped to 1.5 s. Scored as "
        "stored. The keyed layer is read with the marking key (and three other keys: per key "
        "in brackets).",
        "",
        "| set | clips | PerthNet | keyed layer (4 keys) | either | highest PerthNet / z |",
        "|---|---|---|---|---|---|",
    ]
    rows = [
        *fp["per_set"].items(),
        ("**all**", fp["all"]),
        ("non-overlapping subset (crop pass 0 + EmoDB whole)", fp["non_overlapping"]),
        ("test speakers + EmoDB (held out for PerthNet too)", fp["test_and_emodb"]),
        ("the same, non-overlapping", fp["test_and_emodb_non_overlapping"]),
    ]
    for name, d in rows:
        per = ", ".join(str(x) for x in d["spread_per_key"])
        lines.append(
            f"| {name} | {d['clips']} | {d['perthnet']} | {d['spread']} ({per}) | {d['either']} "
            f"| {d['perthnet_max']:.3f} / {d['spread_max_z']:.2f} (any key "
            f"{d['spread_max_z_any_key']:.2f}) |"
        )
    a, ind = fp["all"], fp["non_overlapping"]
    te, ten = fp["test_and_emodb"], fp["test_and_emodb_non_overlapping"]
    lines += [
        "",
        f"Either layer: {pct(a['either'], a['clips'])} of all held-out clips, one-sided 95 % "
        f"Clopper-Pearson upper bound {100 * a['either_upper95']:.3f} %; on the "
        f"{ind['clips']} clips that share no audio {pct(ind['either'], ind['clips'])}, bound "
        f"{100 * ind['either_upper95']:.3f} %. Target <= {100 * FP_TARGET:.1f} %: "
        + (
            "met by the bound over all clips."
            if a["either_upper95"] <= FP_TARGET
            else f"**missed**: the measured rate itself is {100 * a['either'] / a['clips']:.2f} %."
            if a["either"] > FP_TARGET * a["clips"]
            else "not shown by the bound over all clips (the overlapping crops are not "
            "independent draws, so the honest bound lies between the two figures)."
        )
        + f" The keyed layer alone: {pct(a['spread'], a['clips'])}, bound "
        f"{100 * clopper_pearson_upper(a['spread'], a['clips']):.3f} %; PerthNet alone: "
        f"{pct(a['perthnet'], a['clips'])}."
        + f" PerthNet alone on the test speakers + EmoDB ({te['clips']} clips): "
        f"{pct(te['perthnet'], te['clips'])}, bound "
        f"{100 * clopper_pearson_upper(te['perthnet'], te['clips']):.3f} % (non-overlapping "
        f"{pct(ten['perthnet'], ten['clips'])}, bound "
        f"{100 * clopper_pearson_upper(ten['perthnet'], ten['clips']):.3f} %). Scan: "
        f"{fp['minutes']:.1f} min.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short-real", type=int, default=90, help="test speakers tried")
    parser.add_argument("--long-real", type=int, default=24, help="dev speakers tried")
    parser.add_argument("--short-syn", type=int, default=45)
    parser.add_argument("--long-syn", type=int, default=12)
    parser.add_argument("--fp-passes", type=int, default=3, help="crop passes (0.75 s apart)")
    parser.add_argument("--wer-clips", type=int, default=24)
    parser.add_argument("--wait-quiet", type=float, default=120.0, help="seconds, for timing")
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "watermark_robustness")
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite the .md from the existing .json"
    )
    parser.add_argument(
        "--redo-false-positives",
        action="store_true",
        help="measure step 2 again into the existing .json (e.g. after a threshold change)",
    )
    add_overwrite_flag(parser)
    args = parser.parse_args(argv)
    outputs = [args.out.with_suffix(".json"), args.out.with_suffix(".md")]
    if args.render_only:
        outputs[1].write_text(markdown(json.loads(outputs[0].read_text())), encoding="utf-8")
        return 0
    if args.redo_false_positives:
        from watermark_layers import benchmark_keys

        res = json.loads(outputs[0].read_text(encoding="utf-8"))
        keys = benchmark_keys()
        marker = AudioWatermarker(key=keys[0])
        res["thresholds"]["perthnet_short"] = marker.threshold_for(0)
        res["false_positives"] = false_positives(
            marker, keys, args.fp_passes, args.seed, lambda fp: None
        )
        res["false_positives"]["redone"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        outputs[0].write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
        outputs[1].write_text(markdown(res), encoding="utf-8")
        return 0
    refuse_to_overwrite(outputs, args.overwrite)
    if ffmpeg_path() is None:
        parser.error("ffmpeg is needed for the codec attacks")
    outputs[0].parent.mkdir(parents=True, exist_ok=True)

    def save(res: dict[str, object]) -> None:
        # The JSON first: a report that fails to render can be redone with --render-only.
        outputs[0].write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
        outputs[1].write_text(markdown(res), encoding="utf-8")

    res = run(args, save)
    res["complete"] = True
    save(res)
    log(f"wrote {outputs[0]} and {outputs[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
