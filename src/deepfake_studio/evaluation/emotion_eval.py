"""`deepfake-studio eval emotion`: can a listener-like classifier tell the emotions apart?

1. A speaker-relative emotion classifier, trained on real acted speech (EmoDB in the shared
   data, `DATA/emotion`): openSMILE eGeMAPS functionals of each clip levelled to one RMS,
   minus the mean of the same speaker's neutral clips (for a neutral clip: of the speaker's
   other neutral clips), standardised, then multinomial logistic regression. Its accuracy on
   actors it never saw (leave one actor out) says how far it can be trusted.
2. For held-out speakers of the clone harness (`speaker_split.json`): a `quick` clone speaks
   a few sentences neutral and in each emotion at the asked strength through `Studio.clone`;
   each clip's features minus the mean of the same voice's neutral clips are classified by
   the classifier trained on all of the corpus. Reported: the confusion matrix and accuracy per
   emotion (surprise: the corpus has none, so only what it is heard as), Whisper-base WER, the
   independent judge's normalised similarity to a real recording of the speaker against the
   neutral clone's, and the synthesis time against neutral.

The classifier only measures; nothing here chooses what a user receives.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from deepfake_studio.audio import load_audio
from deepfake_studio.errors import StudioError
from deepfake_studio.evaluation.emotion_features import (
    CORPUS_EMOTIONS,
    EmotionFeatures,
    read_emotion_corpus,
)
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.evaluation.speakers import data_root

Progress = Callable[[str], None]
SENTENCES = (
    "I cannot believe what they told me about the house this morning.",
    "We will meet again at the station when the last train arrives.",
    "She opened the door and looked at everyone standing in the garden.",
)


@dataclass(frozen=True)
class EmotionEvalConfig:
    """What `eval emotion` measures."""

    data: Path | None = None  # the shared data folder (emotion/ and speech/ inside)
    manifest: Path | None = None  # a speech manifest for the voices; None: DATA/speech
    split: str | None = "test"  # speakers of this split of speaker_split.json; None: all
    speakers: int = 8
    sentences: int = 2  # at least 2: a neutral clip is compared with the voice's other ones
    strength: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.sentences <= len(SENTENCES):
            raise StudioError(f"sentences must be 2 to {len(SENTENCES)}, got {self.sentences}")
        if self.speakers < 1:
            raise StudioError(f"speakers must be at least 1, got {self.speakers}")
        if not 0.0 < self.strength <= 1.0:
            raise StudioError(f"strength must be above 0 and at most 1, got {self.strength}")


def speaker_relative(features: np.ndarray, speakers: list[str], neutral: np.ndarray) -> np.ndarray:
    """Each row minus the mean of its speaker's neutral rows (a neutral row: of the others)."""
    relative = np.empty_like(features)
    for speaker in set(speakers):
        rows = np.array([s == speaker for s in speakers])
        base_rows = rows & neutral
        if not base_rows.any():
            raise StudioError(f"speaker {speaker!r} has no neutral clip to compare with")
        total, count = features[base_rows].sum(axis=0), int(base_rows.sum())
        for i in np.flatnonzero(rows):
            if neutral[i] and count > 1:  # leave the clip itself out of its own baseline
                relative[i] = features[i] - (total - features[i]) / (count - 1)
            else:
                relative[i] = features[i] - total / count
    return relative


class EmotionClassifier:
    """Standardised speaker-relative eGeMAPS → multinomial logistic regression."""

    def __init__(self, c: float = 0.1) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self._model = make_pipeline(
            StandardScaler(), LogisticRegression(C=c, max_iter=5000, random_state=0)
        )

    def fit(self, relative: np.ndarray, labels: list[str]) -> EmotionClassifier:
        self._model.fit(_finite(relative), labels)
        return self

    def predict(self, relative: np.ndarray) -> list[str]:
        return [str(x) for x in self._model.predict(_finite(relative))]


def _finite(x: np.ndarray) -> np.ndarray:
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def corpus_table(
    features: EmotionFeatures, corpus: Path
) -> tuple[np.ndarray, list[str], list[str]]:
    """(eGeMAPS rows, emotions, speakers) of the emotion corpus's five emotions."""
    clips = read_emotion_corpus(corpus, CORPUS_EMOTIONS)
    if not clips:
        raise StudioError(f"no clips of {', '.join(CORPUS_EMOTIONS)} in {corpus}")
    rows = np.stack([features.vector(load_audio(c.path)) for c in clips])
    return rows, [c.emotion for c in clips], [c.speaker for c in clips]


def leave_actors_out(rows: np.ndarray, labels: list[str], speakers: list[str]) -> dict[str, object]:
    """Accuracy of the classifier on each actor it was not trained on, pooled."""
    relative = speaker_relative(rows, speakers, np.array([e == "neutral" for e in labels]))
    predicted: list[str] = [""] * len(labels)
    for actor in sorted(set(speakers)):
        test = np.array([s == actor for s in speakers])
        train = ~test
        model = EmotionClassifier().fit(
            relative[train], [y for y, t in zip(labels, train, strict=True) if t]
        )
        for i, guess in zip(np.flatnonzero(test), model.predict(relative[test]), strict=True):
            predicted[i] = guess
    return _scores(labels, predicted, CORPUS_EMOTIONS)


def _scores(intended: list[str], heard: list[str], classes: tuple[str, ...]) -> dict[str, object]:
    confusion = {a: {b: 0 for b in classes} for a in sorted(set(intended), key=_order)}
    for a, b in zip(intended, heard, strict=True):
        confusion[a][b] += 1
    known = [(a, b) for a, b in zip(intended, heard, strict=True) if a in classes]
    per = {
        a: (row[a] / sum(row.values()) if a in classes and sum(row.values()) else None)
        for a, row in confusion.items()
    }
    accuracy = sum(a == b for a, b in known) / len(known) if known else float("nan")
    return {"accuracy": accuracy, "clips": len(known), "per_emotion": per, "confusion": confusion}


def _order(emotion: str) -> int:
    from deepfake_studio.synthesizer.emotion import EMOTIONS

    return EMOTIONS.index(emotion) if emotion in EMOTIONS else len(EMOTIONS)


def run_emotion_eval(
    config: EmotionEvalConfig, out_json: Path, progress: Progress | None = None
) -> dict:
    """Measure, write `out_json` and its `.md`; returns the JSON data."""
    from deepfake_studio.evaluation.asr import Transcriber, word_error_rate
    from deepfake_studio.evaluation.judge import SpeakerJudge, cosine
    from deepfake_studio.evaluation.speakers import load_manifest, speaker_case, split_speakers
    from deepfake_studio.studio import Studio, StudioConfig
    from deepfake_studio.synthesizer import EngineOptions
    from deepfake_studio.synthesizer.emotion import EMOTIONS
    from deepfake_studio.synthesizer.kokoro import KokoroConfig

    say = progress or (lambda _m: None)
    root = data_root(config.data)
    features = EmotionFeatures()
    say("extracting eGeMAPS from the emotion corpus")
    rows, labels, actors = corpus_table(features, root / "emotion")
    real = leave_actors_out(rows, labels, actors)
    say(f"classifier, leave one actor out: {real['accuracy']:.1%} of {real['clips']} clips")
    neutral_rows = np.array([e == "neutral" for e in labels])
    classifier = EmotionClassifier().fit(speaker_relative(rows, actors, neutral_rows), labels)

    clips = load_manifest(config.manifest or root / "speech" / "manifest.csv")
    wanted = split_speakers(config.split) if config.split else None
    names = sorted({c.speaker for c in clips}) if wanted is None else [s for _, s in wanted]
    sentences = SENTENCES[: config.sentences]
    voices: dict[str, dict] = {}
    intended: list[str] = []
    heard: list[str] = []
    with tempfile.TemporaryDirectory(prefix="emotion-eval-") as home:
        engines = EngineOptions(kokoro=KokoroConfig(quality="quick"))
        studio = Studio(StudioConfig(data_dir=Path(home), engines=engines))
        judge, asr = SpeakerJudge(), Transcriber()
        piper = studio.engine("piper").default_conditioning()
        for speaker in names:
            if len(voices) >= config.speakers:
                break
            case = speaker_case(speaker, clips)
            if case is None:
                continue
            say(f"[{len(voices) + 1}/{config.speakers}] {speaker}: enrolling (quick)")
            voice = studio.create_voice(case.reference, name=speaker, seed=config.seed)
            truth = judge.embed(case.ground_truth.samples, case.ground_truth.sample_rate)
            same = cosine(judge.embed(case.reference.samples, case.reference.sample_rate), truth)
            stranger_voice = _plain_voice(studio, piper)
            stranger_clip = studio.clone(" ".join(sentences), voice=stranger_voice)
            stranger = cosine(judge.embed(stranger_clip.samples, stranger_clip.sample_rate), truth)
            per: dict[str, dict] = {}
            vectors: list[np.ndarray] = []
            tags: list[str] = []
            for emotion in EMOTIONS:
                strength = 0.0 if emotion == "neutral" else config.strength
                said, wer, seconds = [], [], 0.0
                for sentence in sentences:
                    t0 = time.perf_counter()
                    clip = studio.clone(
                        sentence, voice=voice, emotion=emotion, emotion_strength=strength
                    )
                    seconds += time.perf_counter() - t0
                    said.append(clip.samples)
                    vectors.append(features.vector(clip))
                    tags.append(emotion)
                    words = asr.transcribe(clip.samples, clip.sample_rate)
                    wer.append(word_error_rate(sentence, words))
                joined = np.concatenate(said)
                sim = cosine(judge.embed(joined, clip.sample_rate), truth)
                per[emotion] = {
                    "wer": float(np.mean(wer)),
                    "sim": sim,
                    "norm_sim": (sim - stranger) / (same - stranger) if same > stranger else None,
                    "synthesis_s": seconds,
                }
            relative = speaker_relative(
                np.stack(vectors), [speaker] * len(tags), np.array([t == "neutral" for t in tags])
            )
            guesses = classifier.predict(relative)
            intended += tags
            heard += guesses
            voices[speaker] = {
                "corpus": case.corpus,
                "same": same,
                "stranger": stranger,
                "emotions": per,
                "heard": [[t, g] for t, g in zip(tags, guesses, strict=True)],
            }
            # Written after every speaker, so a long run that is stopped still reports.
            _write(out_json, config, real, _scores(intended, heard, CORPUS_EMOTIONS), voices)
            say(
                f"[{len(voices)}/{config.speakers}] {speaker}: "
                + ", ".join(
                    f"{t}→{g}" for t, g in zip(tags, guesses, strict=True) if t != "neutral"
                )
            )
    if not voices:
        raise StudioError("no speaker of the chosen split has a usable reference")
    return _write(out_json, config, real, _scores(intended, heard, CORPUS_EMOTIONS), voices)


def _write(
    out_json: Path, config: EmotionEvalConfig, real: dict, synthetic: dict, voices: dict
) -> dict:
    data = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "cpu": cpu_model(),
        "load": os.getloadavg(),
        "classifier_real": real,
        "synthetic": synthetic,
        "voices": voices,
        "summary": _summary(voices),
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(data, indent=1) + "\n")
    out_json.with_suffix(".md").write_text(report(data))
    return data


def _plain_voice(studio, conditioning):  # type: ignore[no-untyped-def]
    from deepfake_studio.voices import Voice

    return Voice(
        name="stranger",
        embedding=np.zeros(256, np.float32),
        conditioning=conditioning,
        consent="the bundled Piper voice (the stranger baseline)",
        source_sha256="0" * 64,
    )


def _summary(voices: dict[str, dict]) -> dict[str, dict[str, float | None]]:
    """Per emotion, over voices: mean WER, mean normalised-similarity drop from neutral,
    median synthesis time relative to neutral."""
    out: dict[str, dict[str, float | None]] = {}
    emotions = next(iter(voices.values()))["emotions"] if voices else {}
    for emotion in emotions:
        wer = [v["emotions"][emotion]["wer"] for v in voices.values()]
        drops = [
            v["emotions"]["neutral"]["norm_sim"] - v["emotions"][emotion]["norm_sim"]
            for v in voices.values()
            if v["emotions"][emotion]["norm_sim"] is not None
        ]
        times = [
            v["emotions"][emotion]["synthesis_s"] / v["emotions"]["neutral"]["synthesis_s"]
            for v in voices.values()
        ]
        out[emotion] = {
            "wer": float(np.mean(wer)),
            "norm_sim_drop": float(np.mean(drops)) if drops else None,
            "time_vs_neutral": float(np.median(times)),
        }
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def report(data: dict) -> str:
    """The markdown tables of an `eval emotion` run."""
    real, synthetic = data["classifier_real"], data["synthetic"]
    s = data["settings"]
    lines = [
        "# Emotion evaluation (`deepfake-studio eval emotion`)",
        "",
        "Classifier: openSMILE eGeMAPS v02 functionals (every clip levelled to one RMS) minus "
        "the same speaker's neutral mean, standardised, logistic regression; five emotions "
        "(chance 20 %).",
        "",
        f"**Real speech, actors left out one at a time** (EmoDB, {real['clips']} clips): "
        f"accuracy {_pct(real['accuracy'])}; per emotion "
        + ", ".join(f"{e} {_pct(v)}" for e, v in real["per_emotion"].items())
        + ".",
        "",
        f"**Kokoro clones** ({len(data['voices'])} {s['split'] or 'manifest'} speakers, quick "
        f"enrollment, {s['sentences']} sentences each, strength {s['strength']}): accuracy over "
        f"the five known emotions {_pct(synthetic['accuracy'])} ({synthetic['clips']} clips).",
        "",
        "| intended ↓ / heard → | " + " | ".join(CORPUS_EMOTIONS) + " | recognised |",
        "|---|" + "---|" * (len(CORPUS_EMOTIONS) + 1),
    ]
    for emotion, row in synthetic["confusion"].items():
        cells = " | ".join(str(row[h]) for h in CORPUS_EMOTIONS)
        lines.append(f"| {emotion} | {cells} | {_pct(synthetic['per_emotion'][emotion])} |")
    lines += [
        "",
        "| emotion | WER | normalised similarity drop vs neutral | synthesis time × neutral |",
        "|---|---|---|---|",
    ]
    for emotion, v in data["summary"].items():
        drop = "–" if v["norm_sim_drop"] is None else f"{v['norm_sim_drop']:+.3f}"
        lines.append(
            f"| {emotion} | {100 * v['wer']:.1f} % | {drop} | {v['time_vs_neutral']:.2f} |"
        )
    lines += [
        "",
        f"CPU: {data['cpu']}; load average at the end {data['load'][0]:.1f} (shared cores). "
        "Neutral speech runs on the int8 ONNX, an emotion on the PyTorch path.",
        "",
    ]
    return "\n".join(lines)
