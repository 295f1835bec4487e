"""Emotion on Kokoro: the table, the contour edit, the tilt filter, and what the real model
says with them (strength 0 exactly neutral; angry higher and brighter; sad lower, slower)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from deepfake_studio.audio import Audio
from deepfake_studio.errors import EngineError
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.emotion import (
    EMOTIONS,
    check_emotion,
    with_emotion,
)
from deepfake_studio.synthesizer.kokoro import KokoroEngine
from deepfake_studio.synthesizer.kokoro.emotion import (
    EMOTION_TABLE,
    EQ_CENTRES_HZ,
    EmotionSettings,
    equalize,
    sentence_pause_scale,
    tilt,
)
from deepfake_studio.synthesizer.kokoro.model import KokoroModel, Prosody
from deepfake_studio.synthesizer.kokoro.torch_path import F0_STEP_S, ProsodyEdit, TorchKokoro

TEXT = "The weather changed completely while we were walking home."
RATE = 24_000


def test_every_number_in_the_table_has_a_source() -> None:
    assert set(EMOTION_TABLE) == set(EMOTIONS)
    neutral = EmotionSettings()
    for emotion, settings in EMOTION_TABLE.items():
        for f in dataclasses.fields(EmotionSettings):
            if f.name != "sources" and getattr(settings, f.name) != getattr(neutral, f.name):
                assert settings.sources.get(f.name), f"{emotion}.{f.name} has no source"
    assert EMOTION_TABLE["angry"].at(0.0) == neutral  # strength 0: every value neutral
    half = EMOTION_TABLE["angry"].at(0.5)
    assert half.f0_shift_semitones == pytest.approx(EMOTION_TABLE["angry"].f0_shift_semitones / 2)


def test_the_contour_edit_tilts_and_raises_the_end() -> None:
    steps = int(1.0 / F0_STEP_S)
    f0 = torch.full((1, steps), 200.0)
    f0[0, :4] = 0.0  # unvoiced start stays unvoiced
    prosody = Prosody(torch.ones(3, dtype=torch.long), f0, torch.ones(1, steps))
    sloped = ProsodyEdit(f0_slope_semitones_per_s=4.0).apply(prosody).f0[0]
    semitones = 12 * torch.log2(sloped[4:] / 200.0)
    assert (sloped[:4] == 0).all()
    span = (steps - 1 - 4) * F0_STEP_S
    assert semitones[0].item() == pytest.approx(-2.0 * span, abs=0.05)  # centred on the middle
    assert semitones[-1].item() == pytest.approx(2.0 * span, abs=0.05)
    risen = ProsodyEdit(f0_end_rise_semitones=4.0).apply(prosody).f0[0]
    rise = 12 * torch.log2(risen / 200.0)
    assert rise[-1].item() == pytest.approx(4.0, abs=0.01)
    assert rise[steps // 2].item() == pytest.approx(0.0, abs=1e-4)  # only the last 0.3 s


def test_the_voice_quality_filter_lifts_the_presence_band_and_cuts_lows_for_effort() -> None:
    t = np.arange(RATE) / RATE
    for tilt_db, frequency, expected in (
        (6.0, 4000.0, 6.0),  # the 2-5 kHz band gets the whole tilt
        (6.0, 1000.0, 3.0),  # halfway up the log-frequency ramp from 500 Hz to 2 kHz
        (6.0, 10_000.0, 0.0),  # breath and fricative noise above 8 kHz are left alone
        (6.0, 200.0, -3.0),  # effort: half the tilt cut below 300 Hz
        (-4.0, 4000.0, -4.0),  # a darker voice: the band goes down ...
        (-4.0, 200.0, 0.0),  # ... and the lows stay
    ):
        tone = (0.1 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
        out = tilt(tone, RATE, tilt_db)
        gain = 20 * np.log10(np.std(out[2000:-2000]) / np.std(tone[2000:-2000]))
        assert gain == pytest.approx(expected, abs=0.2), (tilt_db, frequency)
    assert tilt(tone, RATE, 0.0) is tone


def test_the_equaliser_follows_its_bands_and_leaves_what_the_data_cannot_say() -> None:
    t = np.arange(RATE) / RATE
    gains = tuple(float(g) for g in np.linspace(-6.0, 6.0, len(EQ_CENTRES_HZ)))
    for frequency, expected in (
        (EQ_CENTRES_HZ[0], gains[0]),
        (40.0, gains[0]),  # held below the first band
        (EQ_CENTRES_HZ[12], gains[12]),  # 1 kHz
        (6349.6, gains[-1]),
        (9500.0, gains[-1] / 2),  # fading out between 8 and 11 kHz: no data above 8 kHz
        (11_500.0, 0.0),
    ):
        tone = (0.1 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
        out = equalize(tone, RATE, gains)
        gain = 20 * np.log10(np.std(out[2000:-2000]) / np.std(tone[2000:-2000]))
        assert gain == pytest.approx(expected, abs=0.25), frequency
    assert equalize(tone, RATE, ()) is tone
    with pytest.raises(ValueError, match="gains"):
        equalize(tone, RATE, (1.0, 2.0))


def test_bad_emotions_are_one_line_errors() -> None:
    assert check_emotion(None, None) == ("neutral", 1.0)
    assert check_emotion(" Happy ", 0.25) == ("happy", 0.25)
    for emotion, strength, message in (
        ("bored", 1.0, "unknown emotion 'bored'"),
        ("sad", 1.5, "from 0 to 1"),
        ("sad", float("nan"), "from 0 to 1"),
        ("sad", "lots", "a number"),
    ):
        with pytest.raises(EngineError, match=message):
            check_emotion(emotion, strength)  # type: ignore[arg-type]
    piper = Conditioning("piper")
    with pytest.raises(EngineError, match="piper engine has no emotion control"):
        with_emotion(piper, "piper", "sad", 1.0)
    assert with_emotion(piper, "piper", "sad", 0.0) is piper  # strength 0: nothing to do
    kokoro = Conditioning("kokoro")
    sad = with_emotion(kokoro, "kokoro", "sad", 0.5)
    assert sentence_pause_scale(sad, "kokoro") == pytest.approx(
        1 + (EMOTION_TABLE["sad"].pause_scale - 1) / 2
    )


@pytest.fixture
def engine(kokoro_engine: KokoroEngine, kokoro_torch: KokoroModel, monkeypatch) -> KokoroEngine:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(kokoro_engine, "torch_path", TorchKokoro(model=kokoro_torch))
    return kokoro_engine


def test_strength_zero_is_exactly_neutral(engine: KokoroEngine) -> None:
    plain = engine.default_conditioning()
    neutral = engine.synthesize(TEXT, plain)
    for emotion, strength in (("angry", 0.0), ("neutral", 1.0)):
        conditioning = with_emotion(plain, "kokoro", emotion, strength)
        assert np.array_equal(engine.synthesize(TEXT, conditioning), neutral)


def test_emotions_move_pitch_tilt_and_tempo_on_the_real_model(engine: KokoroEngine) -> None:
    from tests.conftest import import_or_fail_in_ci

    import_or_fail_in_ci("opensmile", "the [eval] extra")
    from deepfake_studio.evaluation.emotion_features import EmotionFeatures

    features = EmotionFeatures()
    plain = engine.default_conditioning()

    def speak(emotion: str, strength: float) -> tuple[dict[str, float], float]:
        samples = engine.synthesize(TEXT, with_emotion(plain, "kokoro", emotion, strength))
        return features.measures(Audio(samples, RATE)), len(samples) / RATE

    neutral, neutral_s = speak("neutral", 1.0)
    angry, _ = speak("angry", 1.0)
    half, _ = speak("angry", 0.5)
    sad, sad_s = speak("sad", 1.0)
    rise = angry["f0_mean_st"] - neutral["f0_mean_st"]
    brighter = angry["alpha_ratio_db"] - neutral["alpha_ratio_db"]
    print(f"angry: F0 {rise:+.1f} st, alpha ratio {brighter:+.1f} dB; sad {sad_s / neutral_s:.2f}×")
    assert 6.0 < rise < 12.0  # table: +9.2 st
    assert brighter > 6.0  # EmoDB: +10.5 dB; prosody alone gives about -0.5
    half_rise = half["f0_mean_st"] - neutral["f0_mean_st"]
    assert 0.3 * rise < half_rise < 0.7 * rise  # strength interpolates
    assert sad["f0_mean_st"] < neutral["f0_mean_st"] - 1.0  # table: -2.1 st
    assert sad["alpha_ratio_db"] < neutral["alpha_ratio_db"] - 2.0  # darker
    assert sad_s > 1.04 * neutral_s  # slower (tempo 0.89)


def test_happy_brightens_the_rendered_spectrum_as_emodb_does(engine: KokoroEngine) -> None:
    """Happy's equaliser, measured on the output like its calibration (voiced long-term
    spectrum, level-free, minus neutral): EmoDB's happy speech gains 8-10 dB at 1-3 kHz;
    Kokoro's pitch and contour edit alone gives about +1 dB there
    (benchmarks/emotion_spectrum.md), so without the equaliser this fails."""
    from tests.conftest import import_or_fail_in_ci

    import_or_fail_in_ci("opensmile", "the [eval] extra")
    from deepfake_studio.evaluation.emotion_features import EmotionFeatures

    features = EmotionFeatures()
    plain = engine.default_conditioning()

    def levels(emotion: str) -> np.ndarray:
        samples = engine.synthesize(TEXT, with_emotion(plain, "kokoro", emotion, 1.0))
        return features.band_levels(Audio(samples, RATE), EQ_CENTRES_HZ)

    centres = np.array(EQ_CENTRES_HZ)
    mid = (centres > 900) & (centres < 3200)
    change = levels("happy") - levels("neutral")
    print(f"happy: 1-3 kHz {change[mid].mean():+.1f} dB against neutral")
    assert 5.0 < change[mid].mean() < 14.0  # EmoDB +9.5 dB
