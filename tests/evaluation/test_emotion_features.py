"""Emotion measures (openSMILE eGeMAPS) on signals whose answers are known, and the
speaker-relative aggregation the calibration table is built from."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepfake_studio.audio import Audio
from tests.conftest import import_or_fail_in_ci

import_or_fail_in_ci("opensmile", "the [eval] extra")

from deepfake_studio.evaluation.emotion_features import (  # noqa: E402
    EmotionFeatures,
    relative_to_neutral,
)


@pytest.fixture(scope="module")
def features() -> EmotionFeatures:
    return EmotionFeatures()


def _voice(f0: float, tilt_db_per_octave: float, seconds: float = 1.5) -> Audio:
    """A harmonic tone: harmonics fall off by `tilt_db_per_octave`, a gentle vibrato."""
    rate = 16_000
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) / rate
    samples = sum(
        10 ** (tilt_db_per_octave * math.log2(k) / 20) * np.sin(k * phase)
        for k in range(1, int(5000 / f0))
    )
    return Audio((0.1 * samples / np.abs(samples).max()).astype(np.float32), rate)


def test_pitch_in_semitones_and_tilt_follow_the_signal(features: EmotionFeatures) -> None:
    low = features.measures(_voice(150.0, -12.0))
    high = features.measures(_voice(300.0, -12.0))
    # One octave up is 12 semitones (eGeMAPS counts semitones from 27.5 Hz).
    assert high["f0_mean_st"] - low["f0_mean_st"] == pytest.approx(12.0, abs=0.5)
    assert low["f0_mean_st"] == pytest.approx(12 * math.log2(150 / 27.5), abs=0.5)
    steep = features.measures(_voice(150.0, -15.0))
    flat = features.measures(_voice(150.0, -6.0))
    # A flatter tilt: more energy above 1 kHz (alpha ratio up, Hammarberg index down).
    assert flat["alpha_ratio_db"] > steep["alpha_ratio_db"] + 5
    assert flat["hammarberg_db"] < steep["hammarberg_db"] - 5


def test_band_levels_show_the_tilt_and_ignore_the_level(features: EmotionFeatures) -> None:
    centres = [300.0, 600.0, 1200.0, 2400.0, 4800.0]  # on harmonics of 150 Hz
    steep = features.band_levels(_voice(150.0, -12.0), centres)
    flat = features.band_levels(_voice(150.0, -6.0), centres)
    # 6 dB per octave flatter: the 4.8 kHz band gains 6 dB/octave x 4 octaves on 300 Hz.
    contrast = (flat[-1] - flat[0]) - (steep[-1] - steep[0])
    assert contrast == pytest.approx(24.0, abs=4.0)
    louder = _voice(150.0, -12.0)
    louder = Audio(louder.samples * 4, louder.sample_rate)
    assert np.allclose(features.band_levels(louder, centres), steep, atol=0.01)


def test_relative_to_neutral_is_per_speaker() -> None:
    rows = [
        {"speaker": "a", "emotion": "neutral", "f0": 20.0, "loudness_sone": 1.0},
        {"speaker": "a", "emotion": "angry", "f0": 30.0, "loudness_sone": 2.0},
        {"speaker": "a", "emotion": "angry", "f0": 32.0, "loudness_sone": 2.0},
        {"speaker": "b", "emotion": "neutral", "f0": 40.0, "loudness_sone": 1.0},
        {"speaker": "b", "emotion": "angry", "f0": 45.0, "loudness_sone": 1.0},
        {"speaker": "c", "emotion": "angry", "f0": 90.0, "loudness_sone": 9.0},  # no neutral
    ]
    table = relative_to_neutral(rows, ["f0", "loudness_sone"])
    assert table["angry"]["f0"] == {"mean": 8.0, "std": 3.0, "speakers": 2}  # (11 + 5) / 2
    assert table["angry"]["loudness_sone"]["mean"] == pytest.approx(20 * math.log10(2) / 2)
