"""The emotion equaliser, calibrated (issue 20): `eq_db` in kokoro/emotion.py.

    nice -n 10 .venv/bin/python benchmarks/emotion_spectrum.py [--emotions sad happy] \
        [--speakers 3] [--voice-cache DIR] [--overwrite]

Target: on EmoDB, the long-term spectrum of voiced frames (`EmotionFeatures.band_levels`,
one-third octaves 63 Hz-6.3 kHz, level-free) of each emotion minus the same actor's neutral,
averaged over the 10 actors. Kokoro: quick clones of `--speakers` *dev* speakers (the eval's
test speakers are never used here) say 3 sentences neutral and with the emotion's prosody
edit and tempo but no filter; the same difference. Gain = target - Kokoro,
smoothed over 3 neighbouring bands; below 250 Hz the 250 Hz gain is held, because there the
spectrum is the first harmonics, whose place depends on each voice's pitch (the prosody edit
already moves them). Prints the gains to paste into emotion.py; writes
emotion_spectrum.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite
from emotion_render import SENTENCES

from deepfake_studio.audio import Audio, load_audio
from deepfake_studio.evaluation.emotion_features import EmotionFeatures, read_emotion_corpus
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.evaluation.speakers import (
    data_root,
    load_manifest,
    speaker_case,
    split_speakers,
)
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro import KokoroEngine
from deepfake_studio.synthesizer.kokoro.emotion import (
    EMOTION_TABLE,
    EQ_CENTRES_HZ,
    KokoroEmotion,
)

HOLD_BELOW_HZ = 250.0


def emodb_deltas(features: EmotionFeatures, emotions: list[str]) -> dict[str, np.ndarray]:
    """Per emotion: the mean over actors of (emotion's mean band levels - neutral's)."""
    clips = read_emotion_corpus(data_root(None) / "emotion", ["neutral", *emotions])
    levels = np.stack([features.band_levels(load_audio(c.path), EQ_CENTRES_HZ) for c in clips])
    actors = sorted({c.speaker for c in clips})
    out = {}
    for emotion in emotions:
        per_actor = []
        for actor in actors:
            own = [c.speaker == actor for c in clips]
            mine = levels[[o and c.emotion == emotion for o, c in zip(own, clips, strict=True)]]
            base = levels[[o and c.emotion == "neutral" for o, c in zip(own, clips, strict=True)]]
            per_actor.append(mine.mean(0) - base.mean(0))
        out[emotion] = np.mean(per_actor, axis=0)
    return out


def dev_voices(count: int, cache: Path | None) -> list[tuple[str, Conditioning]]:
    """Quick clones of the first `count` usable dev speakers (cached as pickles)."""
    from deepfake_studio.studio import Studio, StudioConfig
    from deepfake_studio.synthesizer import EngineOptions
    from deepfake_studio.synthesizer.kokoro import KokoroConfig

    clips = load_manifest(None)
    home = Path(tempfile.mkdtemp(prefix="emotion-spectrum-"))
    engines = EngineOptions(kokoro=KokoroConfig(quality="quick"))
    studio = Studio(StudioConfig(data_dir=home, engines=engines))
    out: list[tuple[str, Conditioning]] = []
    for _, speaker in split_speakers("dev"):
        if len(out) >= count:
            break
        saved = cache / f"voice_{speaker}.pkl" if cache else None
        if saved is not None and saved.exists():
            out.append((speaker, pickle.loads(saved.read_bytes())["cond"]))
            continue
        case = speaker_case(speaker, clips)
        if case is None:
            continue
        voice = studio.create_voice(case.reference, name=speaker, seed=0)
        if saved is not None:
            saved.write_bytes(pickle.dumps({"cond": voice.conditioning}))
        out.append((speaker, voice.conditioning))
    return out


def kokoro_deltas(
    engine: KokoroEngine,
    features: EmotionFeatures,
    voices: list[tuple[str, Conditioning]],
    emotions: list[str],
) -> dict[str, np.ndarray]:
    """Per emotion: the mean over voices of (band levels with the unfiltered transform -
    neutral), over the sentences."""

    def levels(conditioning: Conditioning, speed: float) -> np.ndarray:
        said = [engine.synthesize(s, conditioning, speed) for s in SENTENCES]
        rate = engine.sample_rate
        return np.mean([features.band_levels(Audio(x, rate), EQ_CENTRES_HZ) for x in said], 0)

    out: dict[str, list[np.ndarray]] = {e: [] for e in emotions}
    for _, base in voices:
        neutral = levels(base, 1.0)
        for emotion in emotions:
            settings = replace(EMOTION_TABLE[emotion], tilt_db=0.0, eq_db=())
            unfiltered = KokoroEmotion(settings)
            out[emotion].append(levels(unfiltered.conditioning(base), settings.tempo) - neutral)
    return {e: np.mean(v, axis=0) for e, v in out.items()}


def gains(target: np.ndarray, kokoro: np.ndarray) -> np.ndarray:
    raw = target - kokoro
    smooth = np.convolve(np.pad(raw, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    hold = int(np.searchsorted(EQ_CENTRES_HZ, HOLD_BELOW_HZ - 1.0))
    smooth[:hold] = smooth[hold]
    return smooth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emotions", nargs="+", default=["happy", "sad"])
    parser.add_argument("--speakers", type=int, default=3)
    parser.add_argument("--voice-cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out_json, out_md = args.out / "emotion_spectrum.json", args.out / "emotion_spectrum.md"
    refuse_to_overwrite([out_json, out_md], args.overwrite)
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    features = EmotionFeatures()
    target = emodb_deltas(features, args.emotions)
    voices = dev_voices(args.speakers, args.voice_cache)
    kokoro = kokoro_deltas(KokoroEngine(), features, voices, args.emotions)
    report = {
        "centres_hz": list(EQ_CENTRES_HZ),
        "dev_speakers": [s for s, _ in voices],
        "sentences": list(SENTENCES),
        "cpu": cpu_model(),
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "emotions": {
            e: {
                "emodb": target[e].tolist(),
                "kokoro": kokoro[e].tolist(),
                "eq_db": gains(target[e], kokoro[e]).tolist(),
            }
            for e in args.emotions
        },
    }
    for e, r in report["emotions"].items():
        print(f"{e}: eq_db=(" + ", ".join(f"{g:.1f}" for g in r["eq_db"]) + "),")
    out_json.write_text(json.dumps(report, indent=1) + "\n")
    out_md.write_text(markdown(report))
    print(f"wrote {out_md}")


def markdown(report: dict) -> str:  # type: ignore[type-arg]
    centres = report["centres_hz"]
    lines = [
        "# The emotion equaliser: EmoDB's spectrum change against Kokoro's",
        "",
        "`benchmarks/emotion_spectrum.py`. Long-term spectrum of voiced frames in one-third "
        "octaves (dB, each clip relative to its own total: level-free). *EmoDB* = emotion "
        "minus the same actor's neutral, mean over 10 actors; *Kokoro* = quick clones of "
        f"{len(report['dev_speakers'])} dev speakers ({', '.join(report['dev_speakers'])}), 3 "
        "sentences, the emotion's prosody edit and tempo without a filter, "
        "minus neutral; *eq* = EmoDB - Kokoro over 3 bands, held below 250 Hz (the shipped "
        "`eq_db`).",
        "",
        "| band (Hz) | " + " | ".join(f"{c:.0f}" for c in centres) + " |",
        "|---|" + "---|" * len(centres),
    ]
    for emotion, r in report["emotions"].items():
        for name in ("emodb", "kokoro", "eq_db"):
            cells = " | ".join(f"{v:+.1f}" for v in r[name])
            lines.append(f"| {emotion} {name.replace('_db', '')} | {cells} |")
    lines += [
        "",
        "Shipped: happy's `eq` (`EQ_HAPPY`). Sad keeps its tilt: with its `eq` it was still "
        "heard as neutral on the dev voices (`emotion_sad_diagnosis.md`).",
        "",
        f"CPU: {report['cpu']}, one thread on 2 shared cores; load average "
        f"{report['load_start'][0]:.1f} at the start, {report['load_end'][0]:.1f} at the end.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
