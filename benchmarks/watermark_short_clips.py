"""PerthNet on short clips: a stricter threshold below 3 s of sound (issue 22, false positives).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/watermark_short_clips.py [--overwrite]
    (~20 min on 2 AMD EPYC cores)

Session 17's rerun of `watermark_robustness.py` counted 10 false positives of PerthNet in
3,128 held-out real clips (0.32 %, target 0.1 %), every one a 1.5-2.8 s crop scoring
0.87-0.97: its score is a mean over the clip's loud frames, and fewer frames scatter more.
The rule under test: below `SHORT_FRAMES` loud frames (PerthNet's 10 ms hop: 3 s of sound,
fixed beforehand because every false positive so far was under 3 s and clips of 3-5 s peaked
at 0.81), PerthNet needs a higher score, the highest one unmarked short clips of the **train**
speakers reach, rounded up to 0.01 (the rule that chose 0.85 for whole recordings).

With fixed seeds, in one process:

1. Tuning: every train-speaker recording whole and in three passes of consecutive 1.5-3 s crops
   (`watermark_robustness.held_out_real`'s recipe on the train split): PerthNet's score and
   frame count; the short threshold is chosen here.
2. Held out: the same on the dev and test speakers and EmoDB (the false-positive set of
   `watermark_robustness.md`): false positives at 0.85 alone and with the short rule.
3. Worst case per recording: on every dev/test-speaker recording, crops of 1.5, 2 and 2.5 s
   starting every 0.5 s (overlapping: not a rate, but which recordings can be cut so that
   PerthNet reads a mark in them at all, and how high).
4. The price: marked 1.5-3 s crops of test speakers and Kokoro/Piper short sentences, at -20
   LUFS, both layers as `Studio` marks, after each attack of issue 22's list: PerthNet's
   detections at 0.85 and with the short rule, the keyed layer's, and either layer's.

Writes benchmarks/watermark_short_clips.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

from _output import add_overwrite_flag, refuse_to_overwrite
from watermark_attacks import ATTACKS, real_crops, synthetic
from watermark_layers import benchmark_keys
from watermark_robustness import clopper_pearson_upper, held_out_real, machine, wilson

from deepfake_studio.audio import normalize_loudness
from deepfake_studio.provenance import AudioWatermarker
from deepfake_studio.provenance.watermark import DETECTION_THRESHOLD

OUT = Path(__file__).resolve().parent
SHORT_FRAMES = 300  # PerthNet frames (10 ms hop) of sound: 3 s


def perthnet_row(marker: AudioWatermarker, audio) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """PerthNet's mean score and the loud frames it averaged."""
    score, frames = marker.perthnet_score(audio)
    return round(score, 4), frames


def measure(args: argparse.Namespace) -> dict[str, object]:
    keys = benchmark_keys()
    marker = AudioWatermarker(key=keys[0])
    assert marker.spread is not None
    res: dict[str, object] = {
        "about": "benchmarks/watermark_short_clips.py (issue 22: PerthNet on short clips)",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "short_frames": SHORT_FRAMES,
    }
    for name, splits, emodb in (("tuning", ("train",), False), ("held_out", ("dev", "test"), True)):
        rows = []
        for group, clip_name, clip in held_out_real(args.passes, args.seed, splits, emodb):
            score, frames = perthnet_row(marker, clip)
            rows.append([group, clip_name, round(clip.duration, 2), score, frames])
        res[name] = rows
        print(name, len(rows), flush=True)
    clips = real_crops(args.real, args.seed, "test", (1.5, 3.0)) + synthetic(args.synthetic)
    attacks = {k: v for k, v in ATTACKS.items() if k != "tempo_+5%"}
    marked_rows: dict[str, list] = {name: [] for name in attacks}  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for i, (kind, clip_name, clip) in enumerate(clips):
            marked = marker.embed(normalize_loudness(clip, -20.0))
            for attack_name, (_, attack) in attacks.items():
                attacked = attack(marked, tmp, i)
                score, frames = perthnet_row(marker, attacked)
                keyed = marker.spread.score(attacked.samples, attacked.sample_rate).present
                marked_rows[attack_name].append(
                    [kind, clip_name, round(clip.duration, 2), score, frames, keyed]
                )
    res["marked"] = marked_rows
    res["sliding"] = sliding_crops(marker)
    res["load_at_end"] = os.getloadavg()
    return res


def sliding_crops(marker: AudioWatermarker) -> dict[str, object]:
    """Every dev/test-speaker recording cut at 0.5 s steps into 1.5 / 2 / 2.5 s crops: how many
    crops, and each crop's score of 0.85 or more with its recording, start, length and frames."""
    from watermark_robustness import held_out_real

    recordings = [(n, a) for g, n, a in held_out_real(0, 0, ("dev", "test"), False) if g == "whole"]
    count, high = 0, []
    for name, audio in recordings:
        rate = audio.sample_rate
        for start in [0.5 * i for i in range(int(audio.duration / 0.5))]:
            for length in (1.5, 2.0, 2.5):
                if start + length > audio.duration:
                    continue
                crop = audio.with_samples(audio.samples[int(start * rate) :][: int(length * rate)])
                score, frames = perthnet_row(marker, crop)
                count += 1
                if score >= DETECTION_THRESHOLD:
                    high.append([name, start, length, score, frames])
    return {"recordings": len(recordings), "crops": count, "at_least_0.85": high}


def short_threshold(tuning: list[list]) -> float:  # type: ignore[type-arg]
    """The highest unmarked short-clip score of the tuning set, rounded up to 0.01."""
    top = max(r[3] for r in tuning if r[4] < SHORT_FRAMES)
    return max(DETECTION_THRESHOLD, math.ceil(top * 100 + 1e-9) / 100)


def flagged(score: float, frames: int, short: float | None) -> bool:
    threshold = short if short is not None and frames < SHORT_FRAMES else DETECTION_THRESHOLD
    return frames > 0 and score >= threshold


def markdown(res: dict) -> str:  # type: ignore[type-arg]
    short = short_threshold(res["tuning"])
    tuning, held = res["tuning"], res["held_out"]
    m = res["machine"]

    def fp_line(rows: list[list], label: str) -> str:  # type: ignore[type-arg]
        n = len(rows)
        short_n = sum(r[4] < SHORT_FRAMES for r in rows)
        before = sum(flagged(r[3], r[4], None) for r in rows)
        after = sum(flagged(r[3], r[4], short) for r in rows)
        return (
            f"| {label} | {n} ({short_n} under {SHORT_FRAMES // 100} s of sound) | "
            f"{before} ({100 * before / n:.2f} %) | {after} ({100 * after / n:.2f} %) |"
        )

    top_short = max(r[3] for r in tuning if r[4] < SHORT_FRAMES)
    top_long = max(r[3] for r in tuning if r[4] >= SHORT_FRAMES)
    lines = [
        "# PerthNet on short clips (issue 22)",
        "",
        f"`benchmarks/watermark_short_clips.py`, {res['date']}; {m.get('cpu')}, load at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in res['load_at_end'])}.",
        "",
        f"PerthNet's score is a mean over a clip's loud frames (10 ms each). Chosen on the train "
        f"speakers' clips: below {SHORT_FRAMES} frames (3 s of sound) the highest unmarked score "
        f"is {top_short:.4f}, so the short-clip threshold is **{short:.2f}** (0.85 stays for "
        f"longer clips; their highest here: {top_long:.4f}).",
        "",
        "## False positives (unmarked real clips)",
        "",
        "| set | clips | PerthNet at 0.85 | with the short-clip threshold |",
        "|---|---:|---:|---:|",
        fp_line(tuning, "tuning: train speakers"),
        fp_line(held, "held out: dev + test speakers, EmoDB"),
    ]
    after = sum(flagged(r[3], r[4], short) for r in held)
    upper = clopper_pearson_upper(after, len(held))
    lines += [
        "",
        f"Held out with the rule: {after}/{len(held)}, 95 % upper bound {100 * upper:.3f} % "
        "(crops of one recording in different passes overlap, so the clips are not all "
        "independent).",
        "",
        *sliding_lines(res, short),
        "",
        "## The price: marked short clips",
        "",
        "Marked 1.5-3 s crops of test speakers and Kokoro/Piper short sentences (both layers). "
        "Detected by PerthNet at 0.85 / with the short-clip rule, by the keyed layer, and by "
        "either (with the rule: what `verify` says). Issue 22's detection target is for clips "
        "of 3 s and more; these are shorter, to show what the rule costs where it applies.",
        "",
        "| attack | clips | PerthNet 0.85 | PerthNet rule | keyed | either (0.85) "
        "| either (rule) | Wilson 95 % |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, rows in res["marked"].items():
        n = len(rows)
        p0 = sum(flagged(r[3], r[4], None) for r in rows)
        p1 = sum(flagged(r[3], r[4], short) for r in rows)
        keyed = sum(r[5] for r in rows)
        either_before = sum(flagged(r[3], r[4], None) or r[5] for r in rows)
        either = sum(flagged(r[3], r[4], short) or r[5] for r in rows)
        lo, hi = wilson(either, n)
        lines.append(
            f"| {name} | {n} | {p0} | {p1} | {keyed} | {either_before} | {either} "
            f"| {100 * lo:.0f}-{100 * hi:.0f} % |"
        )
    return "\n".join(lines) + "\n"


def sliding_lines(res: dict, short: float) -> list[str]:  # type: ignore[type-arg]
    sliding = res.get("sliding")
    if not sliding:
        return []
    high = sliding["at_least_0.85"]
    over = [r for r in high if flagged(r[3], r[4], short)]
    by_recording: dict[str, float] = {}
    for r in over:
        by_recording[r[0]] = max(by_recording.get(r[0], 0.0), r[3])
    worst = ", ".join(f"{n} (up to {v:.3f})" for n, v in sorted(by_recording.items()))
    return [
        "",
        f"**Worst case per recording.** {sliding['crops']} overlapping crops (1.5 / 2 / 2.5 s "
        f"every 0.5 s) of the {sliding['recordings']} dev/test-speaker recordings: "
        f"{len(high)} reach 0.85 and {len(over)} reach the rule, from "
        f"{len(by_recording)} recording(s)" + (f": {worst}." if worst else "."),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, default=3, help="crop passes (0.75 s apart)")
    parser.add_argument("--real", type=int, default=60, help="test speakers tried (marked)")
    parser.add_argument("--synthetic", type=int, default=30, help="Kokoro/Piper short clips")
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--out", type=Path, default=OUT / "watermark_short_clips")
    parser.add_argument("--from-json", action="store_true", help="rewrite the report only")
    parser.add_argument(
        "--add-sliding", action="store_true", help="measure step 3 only, into the existing JSON"
    )
    add_overwrite_flag(parser)
    args = parser.parse_args()
    paths = [args.out.with_suffix(".json"), args.out.with_suffix(".md")]
    if args.from_json or args.add_sliding:
        res = json.loads(paths[0].read_text(encoding="utf-8"))
        if args.add_sliding:
            res["sliding"] = sliding_crops(AudioWatermarker())
            paths[0].write_text(json.dumps(res) + "\n", encoding="utf-8")
    else:
        refuse_to_overwrite(paths, args.overwrite)
        res = measure(args)
        paths[0].write_text(json.dumps(res) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(res), encoding="utf-8")
    print(paths[1].read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
