"""Speaking-rate matching: make an engine speak about as fast as the reference speaker.

The rate is articulation rate: syllables per second of detected speech (pauses excluded).

- The engine's own rate is exact: it reads `CALIBRATION_TEXT`, whose syllables are counted
  (`CALIBRATION_SYLLABLES`), and its speech is timed.
- The reference has no transcript, so its syllables are estimated as voiced peaks of the
  300-3000 Hz energy envelope (`syllable_rate`), scaled so that on real read speech of known
  text the estimate reads in text syllables (`ESTIMATE_PER_SYLLABLE`).

The speed makes the engine's rate equal the reference's (kept within the range of native
readers, `MIN_RATE`..`MAX_RATE`), clipped to `MIN_SPEED`..`MAX_SPEED`.

Measured (`tests/synthesizer/test_rate.py` guards it): on 162 real clips of known text (VCTK
50, LJ Speech 32, VCC2016 40 with Whisper texts, speechocean762 40 children) the estimate reads
0.94 voiced peaks per text syllable (per corpus 0.90-1.00), median error 6 % per clip; on
those clips time-stretched without pitch change (WSOLA) to 0.75x and 1.3x it moves by 0.81x
and 1.25x (median). The old estimator (8 Hz smoothing, 100 ms spacing, no voicing check) read
them at 0.94 per syllable with 9 % error, moved only 0.80x / 1.15x, and on Kokoro's own
speech at speed 0.75 / 1.0 / 1.3 read 3.63 / 3.96 / 4.17 for true rates 3.63 / 4.99 / 6.16:
so the engine side now counts the text instead of estimating.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from scipy import signal

from deepfake_studio.audio import Audio, resample, speech_seconds

if TYPE_CHECKING:
    from deepfake_studio.synthesizer.base import Conditioning, Engine

# A phonetically varied paragraph the engine reads to measure its own rate.
CALIBRATION_TEXT = (
    "When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow. "
    "People look, but no one ever finds the end of it."
)
CALIBRATION_SYLLABLES = 34  # counted by hand; espeak's vowel groups give the same
# Articulation rates of native read speech (122 clips of VCTK, LJ Speech, VCC2016 with their
# texts; 2nd-98th percentile): 3.6-6.2 syllables/s. A reference outside is taken as at that
# edge (children and learners read at ~2.4/s; both engines sound unnatural that slow).
MIN_RATE, MAX_RATE = 3.6, 6.2
# Safety limits of the speed itself. Piper's voice reads at 5.6/s, Kokoro's packs at 4.8-5.5,
# and Piper's rate goes as speed^0.6, so reaching 3.6/s takes Piper a speed of ~0.5.
MIN_SPEED, MAX_SPEED = 0.5, 1.5
ESTIMATE_PER_SYLLABLE = 0.94  # voiced envelope peaks per text syllable on real read speech

_RATE = 16_000
_HOP = 160  # 10 ms frames
_VOICING = 0.5  # normalised autocorrelation peak (60-420 Hz) that counts as voiced


def syllable_rate(audio: Audio) -> float:
    """Estimated syllables per second of speech (0.0 if there is no speech)."""
    audio16 = resample(audio, _RATE)
    voiced = speech_seconds(audio16)
    if voiced < 0.3:
        return 0.0
    return len(syllable_nuclei(audio16.samples)) / ESTIMATE_PER_SYLLABLE / voiced


def syllable_nuclei(samples: np.ndarray) -> np.ndarray:
    """10 ms frame indices of syllable nuclei in 16 kHz speech.

    Nuclei are peaks of the 300-3000 Hz energy envelope (smoothed over 50 ms) at least 60 ms
    apart, 4 dB more prominent than their surroundings and within 30 dB of the loud part,
    at which the signal is voiced: fricatives and bursts also make envelope peaks, and
    without the voicing check they were counted as syllables.
    """
    x = samples.astype(np.float64)
    sos = signal.butter(4, [300, 3000], btype="bandpass", fs=_RATE, output="sos")
    band = signal.sosfiltfilt(sos, x)
    frames = len(band) // _HOP
    if frames < 8:
        return np.zeros(0, dtype=int)
    energy = np.sqrt(np.mean(band[: frames * _HOP].reshape(frames, _HOP) ** 2, axis=1) + 1e-12)
    smooth = np.hanning(5) / np.hanning(5).sum()
    envelope_db = 20 * np.log10(np.convolve(energy, smooth, "same"))
    floor = np.percentile(envelope_db, 95) - 30.0
    peaks, _ = signal.find_peaks(envelope_db, height=floor, prominence=4.0, distance=6)
    periodic = _periodicity(x)
    if periodic.size == 0:
        return peaks[:0]
    # Periodicity frame j spans samples j*hop .. j*hop + 640: it is centred on envelope frame j + 2.
    return peaks[periodic[np.clip(peaks - 2, 0, len(periodic) - 1)] > _VOICING]


def _periodicity(x: np.ndarray, frame: int = 640) -> np.ndarray:
    """Per 10 ms hop: highest normalised autocorrelation at lags of 60-420 Hz (1 = periodic)."""
    n = 1 + (len(x) - frame) // _HOP
    if n <= 0:
        return np.zeros(0)
    window = np.hanning(frame)
    frames = x[np.arange(frame)[None, :] + _HOP * np.arange(n)[:, None]]
    frames = (frames - frames.mean(axis=1, keepdims=True)) * window
    acf = np.fft.irfft(np.abs(np.fft.rfft(frames, 2 * frame)) ** 2)[:, :frame]
    # Divide out the window's own autocorrelation so long lags are not penalised.
    window_acf = np.fft.irfft(np.abs(np.fft.rfft(window, 2 * frame)) ** 2)[:frame]
    acf = acf / np.maximum(acf[:, :1], 1e-12) / np.maximum(window_acf / window_acf[0], 1e-3)
    return acf[:, _RATE // 420 : _RATE // 60].max(axis=1)


def engine_rate(
    engine: Engine, conditioning: Conditioning, speed: float = 1.0, readings: int = 1
) -> float:
    """The engine's articulation rate with `conditioning` at `speed`: syllables per second of
    speech, from a text whose syllables are known (no estimate needed); the median of
    `readings` readings for an engine that samples its durations."""
    rates = []
    for _ in range(readings):
        own = Audio(engine.synthesize(CALIBRATION_TEXT, conditioning, speed), engine.sample_rate)
        seconds = speech_seconds(own)
        rates.append(CALIBRATION_SYLLABLES / seconds if seconds > 0 else 0.0)
    return float(np.median(rates))


@dataclass(frozen=True)
class RateCurve:
    """An engine's articulation rate, with one conditioning, at two speeds far apart (0.8x
    and 1.25x the conditioning's speed): what `match_rate` needs besides the reference."""

    base_speed: float  # the conditioning's speed the two readings are relative to
    at_slow: float  # syllables per second at 0.8 x base_speed
    at_fast: float  # ... at 1.25 x base_speed

    SLOW: ClassVar[float] = 0.8
    FAST: ClassVar[float] = 1.25

    def speed_for(self, target: float) -> float:
        """Speed setting at which the engine reads `target` syllables per second (a
        reference's `syllable_rate`; 0 or less: nothing to match)."""
        if target <= 0 or self.at_slow <= 0 or self.at_fast <= 0:
            return self.base_speed
        target = float(np.clip(target, MIN_RATE, MAX_RATE))
        # rate = middle_rate * (speed / middle_speed)^k, through both readings.
        exponent = np.log(self.at_fast / self.at_slow) / np.log(self.FAST / self.SLOW)
        k = float(np.clip(exponent, 0.3, 1.5))
        middle_rate = float(np.sqrt(self.at_slow * self.at_fast))  # the rate at base_speed
        return _clip(self.base_speed * (target / middle_rate) ** (1 / k))


def rate_curve(engine: Engine, conditioning: Conditioning, readings: int = 1) -> RateCurve:
    """The engine's `RateCurve` with `conditioning` (`readings` per speed, median)."""
    return RateCurve(
        base_speed=conditioning.speed,
        at_slow=engine_rate(engine, conditioning, RateCurve.SLOW, readings),
        at_fast=engine_rate(engine, conditioning, RateCurve.FAST, readings),
    )


def match_rate(
    engine: Engine, reference: Audio, conditioning: Conditioning, readings: int = 1
) -> float:
    """Speed factor that makes `engine` with `conditioning` speak at the reference's rate.

    Rate is not proportional to the speed setting for every engine: Piper's articulation rate
    goes as speed^0.6 (at 0.75 / 1.3 it reads 0.84x / 1.15x as fast), Kokoro's as speed^0.8
    to speed^1.1. So the engine reads the calibration text at two speeds far apart (0.8x and
    1.25x its current speed), and the power law through those two readings gives the speed.
    (A secant step from speed 1 was tried first: for a reference within a few percent of the
    engine's rate, the exponent came out of two nearly equal, noisy readings and the speed
    overshot by 10 %.) `readings` > 1 takes the median of that many readings per speed, for
    an engine whose durations vary from one reading to the next. An engine whose
    conditioning never changes (Piper) keeps its `rate_curve` and calls `speed_for` instead.
    """
    target = syllable_rate(reference)
    if target <= 0:
        return conditioning.speed  # nothing to match: no calibration readings needed
    return rate_curve(engine, conditioning, readings).speed_for(target)


def _clip(speed: float) -> float:
    return float(np.clip(speed, MIN_SPEED, MAX_SPEED))
