"""The emotion classifier of `eval emotion`: speaker-relative features, and its accuracy on real
acted speech of actors it was not trained on (a subset of EmoDB, to stay quick)."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_studio.errors import StudioError
from tests.conftest import SHARED_DATA, import_or_fail_in_ci, skip_or_fail_in_ci

import_or_fail_in_ci("opensmile", "the [eval] extra")

from deepfake_studio.audio import load_audio  # noqa: E402
from deepfake_studio.evaluation.emotion_eval import (  # noqa: E402
    EmotionEvalConfig,
    leave_actors_out,
    speaker_relative,
)
from deepfake_studio.evaluation.emotion_features import (  # noqa: E402
    EmotionFeatures,
    read_emotion_corpus,
)


def test_features_are_relative_to_the_speakers_own_neutral_clips() -> None:
    rows = np.array([[1.0], [3.0], [10.0], [20.0], [24.0], [50.0]])
    speakers = ["a", "a", "a", "b", "b", "b"]
    neutral = np.array([True, True, False, True, True, False])
    relative = speaker_relative(rows, speakers, neutral)
    # a neutral clip against the speaker's *other* neutral clips; the rest against all of them
    assert relative[:, 0].tolist() == [-2.0, 2.0, 8.0, -4.0, 4.0, 28.0]
    with pytest.raises(StudioError, match="no neutral clip"):
        speaker_relative(rows, speakers, np.array([True, True, False, False, False, False]))
    with pytest.raises(StudioError, match="sentences must be 2"):
        EmotionEvalConfig(sentences=1)


def test_the_classifier_recognises_actors_it_never_heard() -> None:
    corpus = SHARED_DATA / "emotion"
    if not (corpus / "manifest.csv").exists():
        skip_or_fail_in_ci(f"no emotion corpus at {corpus}")
    actors = ("emodb_03", "emodb_08", "emodb_09", "emodb_10")  # two men, two women
    clips = [c for c in read_emotion_corpus(corpus) if c.speaker in actors]
    features = EmotionFeatures()
    rows = np.stack([features.vector(load_audio(c.path)) for c in clips])
    result = leave_actors_out(rows, [c.emotion for c in clips], [c.speaker for c in clips])
    print(f"leave one of 4 actors out: {result['accuracy']:.1%} of {result['clips']} clips")
    assert result["clips"] == len(clips) > 100
    assert result["accuracy"] > 0.45  # five emotions: chance 20 %; measured 62 %
    per = result["per_emotion"]
    assert all(per[e] > 0.2 for e in ("neutral", "sad", "angry")), per  # type: ignore[index]
