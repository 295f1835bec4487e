"""Acoustic measures of emotional speech, relative to the same speaker's neutral speech.

openSMILE's eGeMAPS v02 (the `opensmile` package, `[eval]` extra) gives the functionals:
F0 in semitones, loudness, spectral tilt (alpha ratio, Hammarberg index, slopes), HNR,
jitter/shimmer, rate proxies. Its frame-level F0 gives the declination slope. Measures only:
nothing here makes what a user receives.

The emotion corpus (`DATA/emotion/manifest.csv`: path, speaker, emotion, ...) is EmoDB in the
shared data set; see its README for what its 2 s clips can and cannot say.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepfake_studio.audio import Audio, resample

ANALYSIS_RATE = 16_000
# The emotions the studio controls; EmoDB has all but "surprised" (and a "disgust" we skip).
CORPUS_EMOTIONS = ("neutral", "happy", "sad", "angry", "fearful")

# Named measures → eGeMAPS functional (voiced-frame ones end in V / sma3nz).
FUNCTIONALS = {
    "f0_mean_st": "F0semitoneFrom27.5Hz_sma3nz_amean",
    "f0_p20_st": "F0semitoneFrom27.5Hz_sma3nz_percentile20.0",
    "f0_p80_st": "F0semitoneFrom27.5Hz_sma3nz_percentile80.0",
    "f0_range_st": "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2",
    "loudness_sone": "loudness_sma3_amean",
    "level_db": "equivalentSoundLevel_dBp",
    "alpha_ratio_db": "alphaRatioV_sma3nz_amean",
    "hammarberg_db": "hammarbergIndexV_sma3nz_amean",
    "slope_0_500": "slopeV0-500_sma3nz_amean",
    "slope_500_1500": "slopeV500-1500_sma3nz_amean",
    "hnr_db": "HNRdBACF_sma3nz_amean",
    "h1_h2_db": "logRelF0-H1-H2_sma3nz_amean",
    "jitter": "jitterLocal_sma3nz_amean",
    "shimmer_db": "shimmerLocaldB_sma3nz_amean",
    "loudness_peaks_per_s": "loudnessPeaksPerSec",
    "voiced_segments_per_s": "VoicedSegmentsPerSec",
    "voiced_segment_s": "MeanVoicedSegmentLengthSec",
    "unvoiced_segment_s": "MeanUnvoicedSegmentLength",
}


@dataclass(frozen=True)
class EmotionClip:
    path: Path
    speaker: str
    emotion: str


def read_emotion_corpus(
    folder: str | Path, emotions: Iterable[str] = CORPUS_EMOTIONS
) -> list[EmotionClip]:
    """The clips of `folder/manifest.csv` whose emotion is one of `emotions`."""
    folder = Path(folder)
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"no emotion corpus at {folder} (expected manifest.csv)")
    wanted = set(emotions)
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        EmotionClip(folder / r["path"], r["speaker"], r["emotion"])
        for r in rows
        if r["emotion"] in wanted
    ]


class EmotionFeatures:
    """eGeMAPS functionals and frame F0 of a clip; the openSMILE objects are made once."""

    def __init__(self) -> None:
        import opensmile

        self._functionals = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02,
            feature_level=opensmile.FeatureLevel.Functionals,
        )
        self._frames = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02,
            feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
        )
        self.names: list[str] = list(self._functionals.feature_names)

    @staticmethod
    def _prepared(audio: Audio, level_invariant: bool) -> np.ndarray:
        samples = resample(audio, ANALYSIS_RATE).samples.astype(np.float32)
        if level_invariant:  # one RMS for every clip: only the level-free measures then differ
            rms = float(np.sqrt(np.mean(samples**2))) or 1.0
            samples = samples * (0.05 / rms)
        return samples

    def vector(self, audio: Audio, level_invariant: bool = True) -> np.ndarray:
        """All 88 eGeMAPS functionals (in `self.names` order)."""
        samples = self._prepared(audio, level_invariant)
        table = self._functionals.process_signal(samples, ANALYSIS_RATE)
        return table.to_numpy(np.float64)[0]

    def measures(self, audio: Audio) -> dict[str, float]:
        """The named measures of `FUNCTIONALS` (at the clip's own level) + F0 declination."""
        samples = self._prepared(audio, level_invariant=False)
        table = self._functionals.process_signal(samples, ANALYSIS_RATE)
        row = {name: float(table[column].iloc[0]) for name, column in FUNCTIONALS.items()}
        frames = self._frames.process_signal(samples, ANALYSIS_RATE)
        f0 = frames["F0semitoneFrom27.5Hz_sma3nz"].to_numpy(np.float64)
        voiced = np.flatnonzero(f0 > 0)
        row["f0_slope_st_per_s"] = float("nan")
        if len(voiced) >= 10:  # frames are 10 ms apart
            t = voiced * 0.01
            row["f0_slope_st_per_s"] = float(np.polyfit(t, f0[voiced], 1)[0])
        # Rate over the span from the first to the last voiced frame, so the silence a
        # padded clip ends with does not lower it.
        if len(voiced) >= 2:
            span = (voiced[-1] - voiced[0] + 1) * 0.01
            starts = np.count_nonzero(np.diff(voiced) > 1) + 1
            row["voiced_onsets_per_s"] = float(starts / span)
        else:
            row["voiced_onsets_per_s"] = float("nan")
        return row

    def band_levels(self, audio: Audio, centres: Sequence[float]) -> np.ndarray:
        """The long-term spectrum of the voiced frames (openSMILE's F0 says which), as the dB
        level of each one-third-octave band around `centres`, relative to the clip's total
        over the bands (level-free: only the spectrum's shape counts)."""
        samples = self._prepared(audio, level_invariant=False).astype(np.float64)
        f0 = self._frames.process_signal(samples.astype(np.float32), ANALYSIS_RATE)
        voiced = f0["F0semitoneFrom27.5Hz_sma3nz"].to_numpy(np.float64) > 0
        # 128 ms windows: the lowest third-octave (63 Hz, 15 Hz wide) needs bins 8 Hz apart;
        # hop 10 ms, as openSMILE's frames.
        n, hop = 2048, ANALYSIS_RATE // 100
        padded = np.pad(samples, (n // 2, n // 2))
        frames = np.lib.stride_tricks.sliding_window_view(padded, n)[::hop]
        count = min(len(frames), len(voiced))
        # Under 5 voiced frames (50 ms) is too little spectrum to average: take every frame.
        chosen = voiced[:count] if voiced[:count].sum() >= 5 else np.ones(count, bool)
        power = (np.abs(np.fft.rfft(frames[:count][chosen] * np.hanning(n), axis=1)) ** 2).mean(0)
        freqs = np.fft.rfftfreq(n, 1.0 / ANALYSIS_RATE)
        edge = 2 ** (1 / 6)
        bands = np.array([power[(freqs >= c / edge) & (freqs < c * edge)].mean() for c in centres])
        return 10 * np.log10(bands / bands.sum())


def relative_to_neutral(
    rows: list[Mapping[str, object]], measures: Iterable[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Per emotion and measure: mean, std and n over speakers of (speaker's emotion mean −
    the same speaker's neutral mean). Ratios of loudness are in dB (20·log10)."""
    measures = list(measures)
    by_speaker: dict[str, dict[str, list[Mapping[str, object]]]] = {}
    for row in rows:
        by_speaker.setdefault(str(row["speaker"]), {}).setdefault(str(row["emotion"]), []).append(
            row
        )
    result: dict[str, dict[str, dict[str, float]]] = {}
    emotions = sorted({str(r["emotion"]) for r in rows} - {"neutral"})
    for emotion in emotions:
        result[emotion] = {}
        for measure in measures:
            deltas = []
            for groups in by_speaker.values():
                if "neutral" not in groups or emotion not in groups:
                    continue
                mean = _mean(groups[emotion], measure)
                base = _mean(groups["neutral"], measure)
                if measure == "loudness_sone":
                    delta = 20 * np.log10(mean / base) if mean > 0 and base > 0 else np.nan
                else:
                    delta = mean - base
                if np.isfinite(delta):
                    deltas.append(float(delta))
            result[emotion][measure] = {
                "mean": float(np.mean(deltas)) if deltas else float("nan"),
                "std": float(np.std(deltas)) if deltas else float("nan"),
                "speakers": len(deltas),
            }
    return result


def _mean(rows: list[Mapping[str, object]], measure: str) -> float:
    values = np.array([float(r[measure]) for r in rows], np.float64)  # type: ignore[arg-type]
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")
