"""Emotion directions in Kokoro's style space, fitted on EmoDB (issue 20): a probe. The studio
does not use them: sad along the mean direction was still heard as neutral on dev voices
(benchmarks/emotion_sad_diagnosis.md).

    nice -n 10 .venv/bin/python benchmarks/emotion_directions.py --actors 03 08 10 13 \
        --emotions sad happy [--clips 2] [--cache DIR] [--overwrite]

Per actor: the gradient style fit of the `standard` enrollment (`kokoro/reconstruct.py`,
`StyleFitConfig` without the noise floor, as it ran before that became the default; seed 0) on
the actor's first `--clips` *complete* neutral clips (EmoDB's copy is cut or padded to 2 s;
complete = the last 0.25 s is silence, so the transcript matches the audio), then on their first
complete clips of each emotion, starting from the pack the neutral fit chose (so the difference
is the emotion, not a change of pack). The German words are read by espeak-ng's German voice,
registered here for this calibration only (the studio does not offer German). Direction = mean
over actors of (emotional fit - neutral fit); the decoder half is the voice quality. Fits are
cached per actor in `--cache` (a run can resume). Writes emotion_directions.{json,md}; prints
the decoder half as float16 base64 (a Python literal), for a transform that would use it.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite

from deepfake_studio.audio import Audio, load_audio
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.evaluation.speakers import data_root
from deepfake_studio.synthesizer import languages
from deepfake_studio.synthesizer.kokoro import KokoroEngine
from deepfake_studio.synthesizer.kokoro.reconstruct import FRAME as FIT_FRAME
from deepfake_studio.synthesizer.kokoro.reconstruct import RATE as FIT_RATE
from deepfake_studio.synthesizer.kokoro.reconstruct import StyleFitConfig, fit_style_segments

STYLE_HALF = 128  # decoder half first, prosody half second
# The fit as this probe ran it (session 14, before the noise floor became the default).
FIT = StyleFitConfig(noise_floor_percentile=None)


def complete(audio: Audio) -> bool:
    """True when the clip ends in silence: the mirror padded it, so the sentence is whole."""
    tail = audio.samples[-int(0.25 * audio.sample_rate) :]
    return bool(np.sqrt(np.mean(tail**2)) < 0.01 * np.abs(audio.samples).max())


def clips_of(
    root: Path, actor: str, emotion: str, count: int, phonemize: Callable[[str], list[str]]
) -> list[tuple[Audio, str, str]]:
    """(audio, transcript, path) of the actor's first `count` complete clips of `emotion`.

    A clip whose text has more phonemes than it has Kokoro frames (25 ms) was cut although
    it ends in a pause: the fit could not align it."""
    out = []
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["speaker"] != f"emodb_{actor}" or row["emotion"] != emotion:
                continue
            audio = load_audio(root / row["path"])
            phonemes = sum(len(p) for p in phonemize(row["text"]))
            frames = len(audio.samples) * FIT_RATE // audio.sample_rate // FIT_FRAME
            if complete(audio) and phonemes + 2 <= frames:
                out.append((audio, row["text"], row["path"]))
            if len(out) >= count:
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", nargs="+", default=["03", "08", "10", "13"])
    parser.add_argument("--emotions", nargs="+", default=["sad", "happy"])
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out_json, out_md = args.out / "emotion_directions.json", args.out / "emotion_directions.md"
    refuse_to_overwrite([out_json, out_md], args.overwrite)
    torch.set_num_threads(1)  # shared cores; one thread also makes a fit repeatable
    # German for this calibration only: EmoDB's transcripts are German.
    languages.LANGUAGES["de"] = languages.Language("de", "German", "espeak", "de")
    root = data_root(None) / "emotion"
    engine = KokoroEngine()

    def phonemize(text: str) -> list[str]:
        return engine.phonemes(text, "de")

    load_start = os.getloadavg()
    per_actor: dict[str, dict] = {}
    for actor in args.actors:
        cache = args.cache / f"styledir_{actor}.npz" if args.cache else None
        fitted: dict[str, np.ndarray] = {}
        pack: str | None = None
        if cache is not None and cache.exists():
            saved = np.load(cache)
            fitted = {k.split("_", 1)[1]: saved[k] for k in saved.files if k != "pack"}
            pack = str(saved["pack"]) if "pack" in saved.files else None
        info: dict[str, object] = {"clips": {}, "seconds": {}}
        for emotion in ["neutral", *args.emotions]:
            clips = clips_of(root, actor, emotion, args.clips, phonemize)
            info["clips"][emotion] = [p for _, _, p in clips]  # type: ignore[index]
            if emotion in fitted or not clips:
                continue
            packs = engine.style_packs if pack is None else {pack: engine.style_packs[pack]}
            started = time.perf_counter()
            result = fit_style_segments(
                engine.torch_path.model,
                packs,
                phonemize,
                engine._vocab,
                [(a, t) for a, t, _ in clips],
                seed=0,
                config=FIT,
            )
            info["seconds"][emotion] = time.perf_counter() - started  # type: ignore[index]
            pack = result.start_pack
            fitted[emotion] = result.style - result.start_row
            print(f"{actor} {emotion}: {len(clips)} clips, pack {pack}", flush=True)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cache, pack=pack, **{f"{actor}_{k}": v for k, v in fitted.items()})
        info["pack"] = pack
        info["deltas"] = {
            e: (fitted[e] - fitted["neutral"]).tolist()
            for e in args.emotions
            if e in fitted and "neutral" in fitted
        }
        per_actor[actor] = info
    directions: dict[str, dict] = {}
    for emotion in args.emotions:
        deltas = [
            np.array(a["deltas"][emotion]) for a in per_actor.values() if emotion in a["deltas"]
        ]
        if not deltas:
            continue
        mean = np.mean(deltas, axis=0)
        decoder = mean[:STYLE_HALF].astype(np.float16)
        cosines = [
            float(d[:STYLE_HALF] @ mean[:STYLE_HALF])
            / float(np.linalg.norm(d[:STYLE_HALF]) * np.linalg.norm(mean[:STYLE_HALF]))
            for d in deltas
        ]
        directions[emotion] = {
            "actors": len(deltas),
            "decoder_norm": float(np.linalg.norm(mean[:STYLE_HALF])),
            "prosody_norm": float(np.linalg.norm(mean[STYLE_HALF:])),
            "actor_decoder_norms": [float(np.linalg.norm(d[:STYLE_HALF])) for d in deltas],
            "cosine_actor_to_mean": cosines,
            "b64": base64.b64encode(decoder.tobytes()).decode(),
        }
        b64 = directions[emotion]["b64"]
        print(f'    "{emotion}": (')
        for start in range(0, len(b64), 80):
            print(f'        "{b64[start : start + 80]}"')
        print("    ),")
    report = {
        "cpu": cpu_model(),
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "clips_per_emotion": args.clips,
        "style_fit": FIT.__dict__,
        "actors": per_actor,
        "directions": directions,
    }
    out_json.write_text(json.dumps(report, indent=1) + "\n")
    out_md.write_text(markdown(report))
    print(f"wrote {out_md}")


def markdown(report: dict) -> str:  # type: ignore[type-arg]
    lines = [
        "# Emotion directions in Kokoro's style space (EmoDB)",
        "",
        "`benchmarks/emotion_directions.py`: per actor, the `standard` enrollment's gradient "
        f"style fit on {report['clips_per_emotion']} complete neutral clips and on "
        f"{report['clips_per_emotion']} complete clips of each emotion from the same start "
        "pack; direction = mean over actors of (emotional fit - neutral fit). A probe, not used "
        "by the studio: `emotion_sad_diagnosis.md` has what it did on dev voices.",
        "",
        "| emotion | actors | decoder-half norm of the mean | per-actor norms | cosine of each "
        "actor's to the mean | prosody-half norm (not used) |",
        "|---|---|---|---|---|---|",
    ]
    for emotion, d in report["directions"].items():
        lines.append(
            f"| {emotion} | {d['actors']} | {d['decoder_norm']:.2f} | "
            + ", ".join(f"{n:.2f}" for n in d["actor_decoder_norms"])
            + " | "
            + ", ".join(f"{c:.2f}" for c in d["cosine_actor_to_mean"])
            + f" | {d['prosody_norm']:.2f} |"
        )
    lines += ["", "| actor | start pack | clips |", "|---|---|---|"]
    for actor, a in report["actors"].items():
        clips = "; ".join(f"{e}: {', '.join(p)}" for e, p in a["clips"].items())
        lines.append(f"| {actor} | {a['pack']} | {clips} |")
    lines += [
        "",
        f"CPU: {report['cpu']}, one thread per fit on 2 shared cores; load average "
        f"{report['load_start'][0]:.1f} at the start, {report['load_end'][0]:.1f} at the end.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
