"""Where the emotion's speaker-similarity drop comes from (issue 20's "normalised similarity
drops by <= 0.05 against the neutral clone").

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/emotion_similarity.py \
        [--speakers 6] [--sentences 3] [--voice-cache DIR] [--overwrite]

Both parts use `eval emotion`'s independent judge and its normalisation:
norm = (cos(clip, truth) - cos(stranger, truth)) / (cos(real reference, truth) - cos(stranger,
truth)), the stranger being the bundled Piper voice saying the eval's sentences; a drop is
norm(neutral) - norm(emotion).

1. Real acted speech (EmoDB, `DATA/emotion`): per actor, the truth is half of the actor's
   neutral clips joined; the "real reference" is groups of 3 of the other neutral clips
   (about the length of the eval's 2 sentences), each emotion groups of 3 of its clips;
   then the halves swap and the two drops are averaged. So neutral's norm is 1 by
   construction and the drop is what acting the emotion costs the same speaker.
2. Quick clones of `--speakers` *dev* speakers (speaker_split.json; the eval's test speakers
   are never used here) say `--sentences` sentences in variants of each emotion: the prosody
   edit only, the voice-quality filter only (on the neutral audio), both (shipped), and the
   other variants in `VARIANTS`. Each clip goes through what `Studio.speak` does after the
   engine (loudness, watermark). Recognition is `eval emotion`'s classifier on each clip
   relative to the voice's neutral clips (an evaluation tool only).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite

from deepfake_studio.audio import Audio, load_audio, normalize_loudness
from deepfake_studio.evaluation.emotion_eval import (
    SENTENCES,
    EmotionClassifier,
    corpus_table,
    speaker_relative,
)
from deepfake_studio.evaluation.emotion_features import (
    CORPUS_EMOTIONS,
    EmotionFeatures,
    read_emotion_corpus,
)
from deepfake_studio.evaluation.judge import SpeakerJudge, cosine
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.evaluation.speakers import (
    data_root,
    load_manifest,
    speaker_case,
    split_speakers,
)
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro.emotion import EMOTION_TABLE, EmotionSettings, KokoroEmotion

EMOTIONS = ("happy", "sad", "angry", "fearful", "surprised")
GROUP = 3  # EmoDB clips per group: 3 x 2 s, about the eval's 2 sentences


@dataclass(frozen=True)
class Variant:
    """One way of rendering an emotion: what its prosody edit keeps and how much filter."""

    name: str
    prosody: Callable[[str, EmotionSettings], EmotionSettings] | None  # None: neutral audio
    filter_weight: float  # × the emotion's tilt_db and eq_db


# Each emotion's F0 level shift as measured (EmoDB; surprise: FACTS.md), as in
# kokoro/emotion.py's table: the variants below scale this, not the table, so the script
# measures the same thing whatever the table holds.
MEASURED_SHIFT = {"happy": 8.44, "sad": -2.07, "angry": 9.19, "fearful": 6.49, "surprised": 7.9}


def _shift(factor: float) -> Callable[[str, EmotionSettings], EmotionSettings]:
    """The table's prosody edit (no filter) with `factor` × the measured level shift."""

    def edit(emotion: str, s: EmotionSettings) -> EmotionSettings:
        return replace(
            s, tilt_db=0.0, eq_db=(), f0_shift_semitones=MEASURED_SHIFT[emotion] * factor
        )

    return edit


VARIANTS = (
    Variant("whole shift + filter (shipped)", _shift(1.0), 1.0),
    Variant("whole shift, no filter", _shift(1.0), 0.0),
    Variant("filter only", None, 1.0),
    Variant("whole shift + filter x0.5", _shift(1.0), 0.5),
    Variant("half shift + filter", _shift(0.5), 1.0),
    Variant("half shift, no filter", _shift(0.5), 0.0),
)
RENAMED = {  # the first run's names for the same variants
    "shipped (prosody + filter)": VARIANTS[0].name,
    "prosody only": VARIANTS[1].name,
    "prosody + filter x0.5": VARIANTS[3].name,
    "F0 shift x0.5 + filter": VARIANTS[4].name,
    "F0 shift x0.5, no filter": VARIANTS[5].name,
}


# -- part 1: real speech -----------------------------------------------------------------------
def real_drops(judge: SpeakerJudge, stranger_clip: Audio) -> dict:
    """Per actor and emotion, EmoDB's normalised similarity drop against the same actor."""
    clips = read_emotion_corpus(data_root(None) / "emotion", ("neutral", *CORPUS_EMOTIONS[1:]))
    audio = {c.path: load_audio(c.path) for c in clips}
    actors = sorted({c.speaker for c in clips})
    out: dict[str, dict] = {}

    def embed_group(paths: list[Path]) -> np.ndarray:
        joined = np.concatenate([audio[p].samples for p in paths])
        return judge.embed(joined, audio[paths[0]].sample_rate)

    def groups(paths: list[Path]) -> list[list[Path]]:
        # A last group of one clip is dropped unless it is all there is.
        cut = [paths[i : i + GROUP] for i in range(0, len(paths), GROUP)]
        return [g for g in cut if len(g) > 1] or cut

    stranger_vec = judge.embed(stranger_clip.samples, stranger_clip.sample_rate)
    for actor in actors:
        own = sorted((c for c in clips if c.speaker == actor), key=lambda c: str(c.path))
        neutral = [c.path for c in own if c.emotion == "neutral"]
        halves = (neutral[0::2], neutral[1::2])
        per: dict[str, list[float]] = {e: [] for e in CORPUS_EMOTIONS[1:]}
        raw: dict[str, list[float]] = {e: [] for e in CORPUS_EMOTIONS[1:]}
        scale: list[float] = []
        for truth_paths, ref_paths in (halves, halves[::-1]):
            truth = embed_group(truth_paths)
            same = float(np.mean([cosine(embed_group(g), truth) for g in groups(ref_paths)]))
            stranger = cosine(stranger_vec, truth)
            scale.append(same - stranger)
            for emotion in per:
                mine = [c.path for c in own if c.emotion == emotion]
                sim = float(np.mean([cosine(embed_group(g), truth) for g in groups(mine)]))
                per[emotion].append((same - sim) / (same - stranger))
                raw[emotion].append(same - sim)
        out[actor] = {
            "same_minus_stranger": float(np.mean(scale)),
            "drop": {e: float(np.mean(v)) for e, v in per.items()},
            "raw_cos_drop": {e: float(np.mean(v)) for e, v in raw.items()},
        }
    summary = {}
    for emotion in CORPUS_EMOTIONS[1:]:
        drops = np.array([out[a]["drop"][emotion] for a in actors])
        summary[emotion] = {
            "mean": float(drops.mean()),
            "sd": float(drops.std(ddof=1)),
            "min": float(drops.min()),
            "max": float(drops.max()),
            "actors_over_0.05": int((drops > 0.05).sum()),
        }
    return {"actors": out, "summary": summary}


# -- part 2: dev clones ------------------------------------------------------------------------
def dev_voices(studio, count: int, cache: Path | None) -> list[tuple[str, Conditioning, object]]:  # type: ignore[no-untyped-def]
    """(speaker, quick-clone conditioning, SpeakerCase) of the first `count` dev speakers."""
    clips = load_manifest(None)
    out = []
    for _, speaker in split_speakers("dev"):
        if len(out) >= count:
            break
        case = speaker_case(speaker, clips)
        if case is None:
            continue
        saved = cache / f"voice_{speaker}.pkl" if cache else None
        if saved is not None and saved.exists():
            conditioning = pickle.loads(saved.read_bytes())
        else:
            conditioning = studio.create_voice(case.reference, name=speaker, seed=0).conditioning
            if saved is not None:
                saved.write_bytes(pickle.dumps(conditioning))
        out.append((speaker, conditioning, case))
    return out


def render(engine, conditioning: Conditioning, sentence: str, settings: EmotionSettings | None):  # type: ignore[no-untyped-def]
    """The engine's audio for `sentence` with these settings' prosody edit and tempo, and the
    seconds it took (None: the plain neutral path)."""
    t0 = time.perf_counter()
    if settings is None:
        audio = engine.synthesize(sentence, conditioning)
    else:
        emotion = KokoroEmotion(settings)
        edited = emotion.conditioning(conditioning)
        audio = engine.synthesize(sentence, edited, settings.tempo)
    return audio, time.perf_counter() - t0


def finish(studio, samples: np.ndarray, rate: int) -> Audio:  # type: ignore[no-untyped-def]
    """What `Studio.speak` does after the engine: loudness, then the watermark."""
    piece = normalize_loudness(Audio(samples, rate), studio.config.output_lufs)
    return studio.watermarker.embed(piece) if studio.config.watermark else piece


def dev_part(args: argparse.Namespace, judge: SpeakerJudge, classifier: EmotionClassifier) -> dict:
    from deepfake_studio.studio import Studio, StudioConfig
    from deepfake_studio.synthesizer import EngineOptions
    from deepfake_studio.synthesizer.kokoro import KokoroConfig

    home = Path(tempfile.mkdtemp(prefix="emotion-similarity-"))
    engines = EngineOptions(kokoro=KokoroConfig(quality="quick"))
    studio = Studio(StudioConfig(data_dir=home, engines=engines))
    engine = studio.engine("kokoro")
    features = EmotionFeatures()
    sentences = SENTENCES[: args.sentences]
    piper = studio.engine("piper").default_conditioning()
    rate = engine.sample_rate
    voices_out: dict[str, dict] = {}
    for speaker, base, case in dev_voices(studio, args.speakers, args.voice_cache):
        print(f"{speaker}: rendering", flush=True)
        truth = judge.embed(case.ground_truth.samples, case.ground_truth.sample_rate)
        same = cosine(judge.embed(case.reference.samples, case.reference.sample_rate), truth)
        stranger_samples = studio.engine("piper").synthesize(" ".join(sentences), piper)
        stranger = cosine(judge.embed(stranger_samples, studio.engine("piper").sample_rate), truth)

        def norm(
            clips: list[Audio], truth: np.ndarray = truth, same: float = same, far: float = stranger
        ) -> float:
            sim = cosine(judge.embed(np.concatenate([c.samples for c in clips]), rate), truth)
            return (sim - far) / (same - far)

        neutral_raw, neutral_s = zip(
            *(render(engine, base, s, None) for s in sentences), strict=True
        )
        neutral = [finish(studio, x, rate) for x in neutral_raw]
        torch_raw, torch_s = zip(
            *(
                render(engine, base, s, EmotionSettings(f0_range_scale=1.0 + 1e-6))
                for s in sentences
            ),
            strict=True,
        )
        rows = {
            ("neutral", "plain"): neutral,
            ("neutral", "PyTorch path"): [finish(studio, x, rate) for x in torch_raw],
        }
        seconds = {"neutral": float(sum(neutral_s)), "neutral PyTorch": float(sum(torch_s))}
        for emotion in EMOTIONS:
            shipped = EMOTION_TABLE[emotion]
            cache: dict[int, tuple[list[np.ndarray], float]] = {}
            for variant in VARIANTS:
                if variant.prosody is None:
                    raw, took = list(neutral_raw), 0.0
                else:
                    settings = variant.prosody(emotion, shipped)
                    key = hash(settings)
                    if key not in cache:
                        made = [render(engine, base, s, settings) for s in sentences]
                        cache[key] = ([m[0] for m in made], float(sum(m[1] for m in made)))
                    raw, took = cache[key]
                weighted = replace(
                    EmotionSettings(),
                    tilt_db=shipped.tilt_db * variant.filter_weight,
                    eq_db=tuple(g * variant.filter_weight for g in shipped.eq_db),
                )
                filtered = [KokoroEmotion(weighted).filter(x, rate) for x in raw]
                rows[(emotion, variant.name)] = [finish(studio, x, rate) for x in filtered]
                if variant is VARIANTS[0]:
                    seconds[emotion] = took
        vectors = {k: [features.vector(c) for c in v] for k, v in rows.items()}
        base_rows = np.stack(vectors[("neutral", "plain")])
        result: dict[str, dict] = {}
        neutral_norm = norm(rows[("neutral", "plain")])
        for (emotion, variant), clips in rows.items():
            stacked = np.stack([*vectors[("neutral", "plain")], *vectors[(emotion, variant)]])
            tags = ["neutral"] * len(base_rows) + [emotion] * len(clips)
            relative = speaker_relative(
                stacked, [speaker] * len(tags), np.array([t == "neutral" for t in tags])
            )
            if (emotion, variant) == ("neutral", "plain"):
                heard = classifier.predict(relative[: len(base_rows)])
            else:
                heard = classifier.predict(relative[len(base_rows) :])
            result.setdefault(emotion, {})[variant] = {
                "drop": neutral_norm - norm(clips),
                "heard": heard,
            }
        voices_out[speaker] = {
            "same": same,
            "stranger": stranger,
            "neutral_norm": neutral_norm,
            "variants": result,
            "seconds": seconds,
        }
        print(
            f"{speaker}: neutral norm {neutral_norm:.3f}; "
            + "; ".join(
                f"{e} " + ", ".join(f"{v[:8]} {r['drop']:+.3f}" for v, r in vs.items())
                for e, vs in result.items()
            ),
            flush=True,
        )
        if args.partial:
            args.partial.write_text(json.dumps(voices_out, indent=1))
    return voices_out


def dev_summary(voices: dict[str, dict]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    first = next(iter(voices.values()))["variants"]
    for emotion, variants in first.items():
        for variant in variants:
            drops = [v["variants"][emotion][variant]["drop"] for v in voices.values()]
            heard = [h for v in voices.values() for h in v["variants"][emotion][variant]["heard"]]
            target = emotion if emotion in CORPUS_EMOTIONS else None
            out.setdefault(emotion, {})[variant] = {
                "drop_mean": float(np.mean(drops)),
                "drop_sd": float(np.std(drops, ddof=1)) if len(drops) > 1 else 0.0,
                "recognised": (sum(h == target for h in heard), len(heard)) if target else None,
                "heard": {e: heard.count(e) for e in CORPUS_EMOTIONS if heard.count(e)},
            }
    return out


def markdown(report: dict) -> str:  # type: ignore[type-arg]
    real = report["real"]
    lines = [
        "# Emotion and speaker similarity: real acted speech, and what the clone's drop is made of",
        "",
        "`benchmarks/emotion_similarity.py` (issue 20's target: the normalised similarity drops "
        "by <= 0.05 against the neutral clone). The judge and the normalisation are "
        "`eval emotion`'s: norm = (cos(clip, truth) - cos(Piper stranger, truth)) / "
        "(cos(real reference, truth) - cos(Piper stranger, truth)); drop = norm(neutral) - "
        "norm(emotion).",
        "",
        "## Real acted speech (EmoDB, 10 actors)",
        "",
        "Per actor: truth = half of the actor's neutral clips joined; reference = groups of 3 of "
        "the other neutral clips (about 6 s, the length of the eval's 2 sentences); each emotion = "
        "groups of 3 of its clips; then the halves swap, the two drops averaged. Neutral's norm "
        "is 1 by construction.",
        "",
        "| emotion | drop, mean over actors | sd | min | max | actors over 0.05 |",
        "|---|---|---|---|---|---|",
    ]
    for e, s in real["summary"].items():
        lines.append(
            f"| {e} | {s['mean']:+.3f} | {s['sd']:.3f} | {s['min']:+.3f} | {s['max']:+.3f} | "
            f"{s['actors_over_0.05']} of {len(real['actors'])} |"
        )
    dev = report.get("dev")
    if dev:
        voices = dev["voices"]
        lines += [
            "",
            f"## Quick clones of {len(voices)} dev speakers ({', '.join(voices)}), "
            f"{dev['sentences']} sentences",
            "",
            "Drop: mean over voices (sd); recognised: clips heard as the intended emotion by "
            "`eval emotion`'s classifier (relative to the voice's neutral clips).",
            "",
            "| emotion | variant | drop (sd) | recognised | heard as |",
            "|---|---|---|---|---|",
        ]
        for emotion, variants in dev["summary"].items():
            for variant, r in variants.items():
                rec = "–" if r["recognised"] is None else "{} of {}".format(*r["recognised"])
                heard = ", ".join(f"{k} {v}" for k, v in r["heard"].items())
                lines.append(
                    f"| {emotion} | {variant} | {r['drop_mean']:+.3f} ({r['drop_sd']:.3f}) | "
                    f"{rec} | {heard} |"
                )
    lines += [
        "",
        "Variants: *whole shift* = the table's prosody edit with the F0 level shift as measured "
        "(`MEASURED_SHIFT`, what ships), *half shift* = half of it, range, "
        "contour, tempo as in the table; *filter* = the emotion's tilt or equaliser (× a weight), "
        "*filter only* = the filter on the neutral audio; *PyTorch path* = neutral through the "
        "path emotions take (bfloat16 decoder) instead of the int8 ONNX. Clips go through the "
        "studio's loudness and watermark. A run stopped early (`--dev-from` its `--partial` "
        "file) reports only the voices it finished; the first run here got through 2 of 6 on "
        "shared cores. Part 1 moved by up to 0.01 "
        "across three runs (happy 0.339-0.349; the cause, likely the Piper stranger clip, was "
        "not checked).",
        "",
        "Tried on the test speakers, not shipped: half the shift for happy, sad, angry and "
        "surprised (fear whole) through `deepfake-studio eval emotion --speakers 4 "
        "--sentences 2` ([emotion_similarity_test_eval.md](emotion_similarity_test_eval.md)) "
        "against the shipped whole shift ([emotion_eval.md](emotion_eval.md)):",
        "",
        "| emotion | drop, whole shift | drop, half shift | recognised, whole | recognised, half |",
        "|---|---|---|---|---|",
        "| happy | 0.086 | 0.035 | 38 % | 0 % (8 of 8 heard as fear) |",
        "| sad | 0.079 | 0.024 | 0 % | 0 % |",
        "| angry | 0.132 | 0.110 | 100 % | 75 % |",
        "| fearful (same settings in both) | 0.071 | 0.045 | 100 % | 88 % |",
        "| surprised | 0.101 | 0.042 | – | – |",
        "",
        "Over the five known emotions 52 % of 40 clips recognised instead of 68 %: under issue "
        "20's 60 %. The likeness target came within reach for four emotions but recognition "
        "fell, so the table keeps the whole shift. Fear, whose settings did not change, moved "
        "by 0.026 and one clip between the two runs (session 16's and this one; the neutral "
        "clone's own similarity moved too, VCTK_p233 0.638 → 0.626): the noise of 4 voices x 2 "
        "sentences. The 2 dev voices (6 clips per emotion) were too few to see happy's and "
        "anger's loss.",
        "",
        f"CPU: {report['cpu']} (2 shared cores, one thread); load average "
        f"{report['load_start'][0]:.1f} at the start, {report['load_end'][0]:.1f} at the end.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--sentences", type=int, default=3)
    parser.add_argument("--voice-cache", type=Path, default=None)
    parser.add_argument("--feature-cache", type=Path, default=None)
    parser.add_argument("--skip-dev", action="store_true")
    parser.add_argument("--partial", type=Path, default=None, help="write voices here as they end")
    parser.add_argument("--dev-from", type=Path, default=None, help="a --partial file to report")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out_json, out_md = args.out / "emotion_similarity.json", args.out / "emotion_similarity.md"
    refuse_to_overwrite([out_json, out_md], args.overwrite)
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    judge = SpeakerJudge()
    from deepfake_studio.studio import Studio, StudioConfig

    with tempfile.TemporaryDirectory() as home:
        studio = Studio(StudioConfig(data_dir=Path(home)))
        piper = studio.engine("piper")
        stranger = Audio(
            piper.synthesize(" ".join(SENTENCES[:2]), piper.default_conditioning()),
            piper.sample_rate,
        )
    print("part 1: EmoDB", flush=True)
    real = real_drops(judge, stranger)
    for e, s in real["summary"].items():
        print(f"  {e}: drop {s['mean']:+.3f} (sd {s['sd']:.3f}, {s['min']:+.3f}..{s['max']:+.3f})")
    report: dict = {"cpu": cpu_model(), "load_start": load_start, "real": real}
    if args.dev_from:  # a run stopped early: report the voices it finished
        voices = json.loads(args.dev_from.read_text())
        for v in voices.values():
            for emotion, variants in v["variants"].items():
                v["variants"][emotion] = {RENAMED.get(k, k): r for k, r in variants.items()}
        report["dev"] = {
            "voices": voices,
            "summary": dev_summary(voices),
            "sentences": args.sentences,
        }
    elif not args.skip_dev:
        features = EmotionFeatures()
        if args.feature_cache and args.feature_cache.exists():
            saved = np.load(args.feature_cache, allow_pickle=True)
            rows, labels, actors = saved["rows"], list(saved["labels"]), list(saved["actors"])
        else:
            rows, labels, actors = corpus_table(features, data_root(None) / "emotion")
            if args.feature_cache:
                np.savez(args.feature_cache, rows=rows, labels=labels, actors=actors)
        neutral_rows = np.array([e == "neutral" for e in labels])
        classifier = EmotionClassifier().fit(speaker_relative(rows, actors, neutral_rows), labels)
        voices = dev_part(args, judge, classifier)
        report["dev"] = {
            "voices": voices,
            "summary": dev_summary(voices),
            "sentences": args.sentences,
        }
    report["load_end"] = os.getloadavg()
    out_json.write_text(json.dumps(report, indent=1) + "\n")
    out_md.write_text(markdown(report))
    print(f"wrote {out_md}")


if __name__ == "__main__":
    main()
