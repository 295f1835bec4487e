"""A second, keyed audio watermark: a slow spectral modulation read by correlation (issue 22).

PerthNet (``watermark.py``) is lost on short clips under white or pink noise at 20 dB SNR and
under any change of playback speed. This layer is a classic spread-spectrum design built for
exactly those cases; both layers are embedded in every generated clip.

Embedding: the 300-3800 Hz band is cut into 175 Hz chips, and the level of each chip is
modulated by ``depth_db`` (4 dB peak) at 12.5 Hz, with a keyed phase per chip. Chips come in
adjacent pairs in opposite phase, so anything smooth across frequency (formants, a channel's
EQ, broadband level changes) cancels in the correlation. It is a gain on the speech's own
short-time spectrum, so the change follows the speech (shaped under it by construction): there
is nothing in silence and nothing outside the band; the average level does not move.

Detection integrates over the whole file: the log spectrogram (16 kHz, 32 ms frames) is
demodulated at the modulation rate per frequency bin, which gives one complex number per bin and
window of about 2 s, and those are correlated with the key's chip pattern. A speed change
scales both the frequency axis and the modulation rate, a tempo change only the rate, and a
codec's or a crop's delay only rotates the phase, which the magnitude ignores: the detector
tries a grid of frequency scales and modulation rates (±7 %) and keeps the best. Windows are
combined incoherently (powers added), so long files gain without any time alignment. The
statistic is the correlation power over its null expectation, turned into a standard-normal
score ``z`` (``Gamma`` tail of the windows' count); the threshold was chosen on real clips of
the train and dev speakers and checked on other speakers (benchmarks/watermark_layers.md).
Present means ``z`` at the threshold *and* our pattern above each of 64 public decoy patterns
searched the same way: a strong mark of another key lifts every chip-aligned pattern, ours
among them, and only the rank tells whose mark it is (benchmarks/watermark_attribution.md).

The key: the pattern (chip phases) is derived from the studio's Ed25519 private key
(:func:`layer_key`) with HMAC-SHA-256, so only a studio holding that key can embed or read this
layer, and a wrong key reads noise. The key handling itself is unchanged (``keys.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import soxr
from cryptography.hazmat.primitives import serialization

from deepfake_studio.provenance.keys import SigningKey

# Recorded in provenance records. v1 (125 Hz chips, 3 dB; issue 22's first version, one
# session old) is not read any more (v2 reads clearly more short clips under noise:
# benchmarks/watermark_layers.md); v1 files keep their PerthNet layer.
METHOD = "keyed-spectral-modulation-v2"
LAYER = "spread-spectrum"
ANALYSIS_RATE = 16_000
_N_FFT = 512  # 32 ms at 16 kHz: 31 Hz bins, between five and six per chip
_HOP = 128  # 8 ms: 125 frames per second, ten per modulation period
_FRAMES_PER_S = ANALYSIS_RATE / _HOP
_EMBED_BATCH = 4096  # STFT frames per batch, so memory stays bounded on long files
_SILENCE_DB = 40.0  # frames this far below the window's loudest are left out
_CLIP_SIGMAS = 3.0  # residuals are clipped here, so a click cannot dominate the correlation
_MAX_Z = 37.5  # beyond double precision's normal tail
_FLOOR_PERCENTILE = 20
_FLOOR_MARGIN_DB = 3.0
_FLOOR_RAMP_DB = 10.0
_DECOYS = 64
_UNCALIBRATED_WINDOWS = 8  # files up to about 17 s keep the raw ratio (see `score`)


@dataclass(frozen=True)
class SpreadSpectrumConfig:
    """Where and how strongly the layer is embedded, and how widely the detector searches."""

    low_hz: float = 300.0
    high_hz: float = 3800.0  # below 8 kHz telephony's 4 kHz edge, inside every codec's band
    # Wider chips and a deeper swing than v1's 125 Hz / 3 dB: the analysis windows smear a
    # chip's edges into its opposite-phase neighbour, which costs narrow chips most, and under
    # noise at 20 dB SNR every bit of depth counts (60-80 train-speaker crops: white-noise
    # detections 72-75 % -> 94 %). Not wider: 250 Hz chips (7 keyed phases) let another
    # studio's key read 4 % of marked clips, 175 Hz (10 phases) 0.3 %. PESQ-WB against the
    # unmarked clip barely moves (benchmarks/watermark_quality.md).
    chip_hz: float = 175.0
    modulation_hz: float = 12.5
    depth_db: float = 4.0  # peak level change of a chip
    window_s: float = 2.0  # coherent integration length; windows add incoherently
    search: float = 0.07  # speed / tempo changes tried: +-7 %
    frequency_step: float = 0.005  # a chip is 5-60 % of its frequency: 0.5 % keeps alignment
    rate_step: float = 0.008  # 2 s windows tolerate about 2 % modulation-rate error
    threshold: float = 0.0  # z; 0 means DETECTION_Z (set per instance only in experiments)


DETECTION_Z = 7.0
"""``present`` when the score is at least this: above every unmarked score of 2,079 real clips
of the train speakers (761 recordings whole and 1,318 consecutive 2-4 s crops), each scored with
four keys (unmarked scores depend on the key's pattern and grow with a file's length), rounded
up to 0.25. False positives were then counted on other speakers (dev and test splits, EmoDB):
benchmarks/watermark_layers.md."""


@dataclass(frozen=True)
class LayerScore:
    """The spread-spectrum statistic of one clip and the search position it was found at."""

    z: float
    frequency_scale: float
    rate_scale: float
    windows: int
    decoy_z: float  # the best of the decoy patterns, searched over the same grid
    present: bool  # z at the threshold or above, and above every decoy


def layer_key(signing_key: SigningKey) -> bytes:
    """32 secret bytes for this layer, derived from the studio's private signing key.

    A one-way derivation: the pattern reveals nothing about the signing key, and the signing
    key file stays the only secret the studio keeps."""
    raw = signing_key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return hmac.new(raw, b"deepfake-studio audio watermark layer 2 v1", hashlib.sha256).digest()


class SpreadSpectrumWatermark:
    """Embed and detect the keyed spectral-modulation layer. Stateless apart from the key."""

    def __init__(self, key: bytes, config: SpreadSpectrumConfig | None = None) -> None:
        if len(key) < 16:
            raise ValueError("the watermark key must be at least 16 bytes")
        self.config = config or SpreadSpectrumConfig()
        self.threshold = self.config.threshold or DETECTION_Z
        self._phases = _chip_phases(key, self.config)
        # Decoy patterns (public, fixed): what this clip scores with patterns nobody embedded
        # says how its statistic is scaled (neighbouring bins are correlated, differently for
        # each clip), so the score stays calibrated however many windows a file has.
        self._decoys = [
            _chip_phases(b"decoy %d" % i + bytes(16), self.config) for i in range(_DECOYS)
        ]
        cfg = self.config
        freqs = np.fft.rfftfreq(_N_FFT, 1 / ANALYSIS_RATE)
        self._band = (freqs >= cfg.low_hz * (1 - cfg.search)) & (
            freqs <= cfg.high_hz * (1 + cfg.search)
        )
        self._f_scales = _grid(cfg.search, cfg.frequency_step)
        # The search grid: (frequency-scale index, rate scale) pairs. A speed change scales
        # frequency and modulation rate alike (f, f); a tempo change only the rate (1, r).
        # Searching only these keeps unmarked scores low.
        unit = int(np.argmin(np.abs(self._f_scales - 1.0)))
        self._hypotheses = [(i, float(f)) for i, f in enumerate(self._f_scales)]
        self._hypotheses += [(unit, float(r)) for r in _grid(cfg.search, cfg.rate_step)]
        self._unit_hypothesis = self._hypotheses.index((unit, 1.0))  # the unchanged clip's
        self._patterns: tuple[np.ndarray, np.ndarray] | None = None

    # -- embedding ------------------------------------------------------------------------
    def embed(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """``samples`` with the layer added (same length, float32)."""
        cfg = self.config
        n = 2 * round(0.016 * rate)  # 32 ms at any rate, even
        hop = n // 4
        window = np.sqrt(np.hanning(n + 1)[:-1])
        freqs = np.fft.rfftfreq(n, 1 / rate)
        taper, phase = self._pattern(freqs)
        # A level swinging +-d dB averages above 0 dB in power (10^(x/10) is convex): a static
        # cut of the mean of each bin keeps its average power, so loudness does not move.
        swing = cfg.depth_db * taper
        mean_power_db = 10 * np.log10(np.i0(swing * np.log(10) / 10))
        padded = np.pad(samples.astype(np.float64), (n, n))
        out = np.zeros(len(padded))
        norm = np.zeros(len(padded))
        count = 1 + (len(padded) - n) // hop
        for first in range(0, count, _EMBED_BATCH):
            index = np.arange(first, min(count, first + _EMBED_BATCH))
            starts = index * hop
            spectra = np.fft.rfft(padded[starts[:, None] + np.arange(n)] * window, axis=1)
            t = (starts + n / 2 - n) / rate  # frame centres on the clip's own time axis
            angle = 2 * np.pi * cfg.modulation_hz * t[:, None] + phase
            gain_db = swing * np.cos(angle) - mean_power_db
            frames = np.fft.irfft(spectra * 10 ** (gain_db / 20), n, axis=1) * window
            for row, start in enumerate(starts):
                out[start : start + n] += frames[row]
                norm[start : start + n] += window**2
        inner = slice(n, n + len(samples))
        marked = np.where(norm[inner] > 1e-6, out[inner] / np.maximum(norm[inner], 1e-6), 0.0)
        return marked.astype(np.float32)

    # -- detection ------------------------------------------------------------------------
    def score(self, samples: np.ndarray, rate: int) -> LayerScore:
        """The best standard-normal score over the search grid (about 0-4 for unmarked audio),
        the best decoy pattern's score, and whether the layer is ``present``."""
        ratio, decoy_ratio, windows = self.ratios(samples, rate)
        if windows == 0:
            return LayerScore(0.0, 1.0, 1.0, 0, 0.0, False)
        best = int(ratio.argmax())
        z = _gamma_z(float(ratio[best]) * windows, windows)
        # Attribution: a clip marked with *another* key raises every chip-coherent pattern,
        # ours included, sometimes past the threshold (8 of 132 such clips in session 17).
        # Our pattern is then just one more random pattern, so it must also beat every decoy,
        # each searched over the same grid: a wrong key passes that with probability
        # 1 / (decoys + 1), while our own mark beats them by far (benchmarks/
        # watermark_attribution.md).
        decoy_best = float(decoy_ratio.max())
        decoy_z = _gamma_z(decoy_best * windows, windows)
        present = z >= self.threshold and float(ratio[best]) > decoy_best
        i, r = self._hypotheses[best]
        return LayerScore(z, float(self._f_scales[i]), r, windows, decoy_z, present)

    def ratios(self, samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Per search hypothesis: our pattern's correlation power over its null expectation
        (mean over windows), the same for every decoy (hypotheses x decoys), and the number of
        windows with sound. Benchmarks read these to weigh detection rules."""
        cfg = self.config
        x = samples if rate == ANALYSIS_RATE else soxr.resample(samples, rate, ANALYSIS_RATE)
        x = np.asarray(x, dtype=np.float64)
        q, decoy_q = self._search_patterns()
        q_power = np.abs(q) ** 2
        hypotheses = self._hypotheses
        num = np.zeros(len(hypotheses))
        den = np.zeros(len(hypotheses))
        decoy_num = np.zeros((len(hypotheses), len(self._decoys)))
        windows = 0
        seconds = len(x) / ANALYSIS_RATE
        count = max(1, round(seconds / cfg.window_s))
        bounds = np.linspace(0, len(x), count + 1).astype(int)
        for a, b in itertools.pairwise(bounds):
            residual, t = _residual(x[a:b], self._band, a / ANALYSIS_RATE)
            if residual is None:
                continue
            windows += 1
            taper_t = np.hanning(len(t) + 2)[1:-1]
            for h, (i, r) in enumerate(hypotheses):
                demod = (np.exp(-2j * np.pi * cfg.modulation_hz * r * t) * taper_t) @ residual
                # Square-root compression: a few strongly modulated bins (vibrato, a buzz)
                # cannot dominate the correlation on their own.
                demod = demod / np.sqrt(np.abs(demod) + 1e-12)
                num[h] += np.abs(q[i] @ demod) ** 2
                den[h] += q_power[i] @ (np.abs(demod) ** 2)
                decoy_num[h] += np.abs(decoy_q[i] @ demod) ** 2
        if windows == 0:
            return num, decoy_num, 0
        ratio = num / np.maximum(den, 1e-12)
        decoy_ratio = decoy_num / np.maximum(den, 1e-12)[:, None]
        if windows > _UNCALIBRATED_WINDOWS:
            # Long files: the raw ratio's mean is above 1 for unmarked speech (neighbouring
            # bins are correlated) and the excess adds up over windows (5 min of real speech
            # reached z 7-13). Divide by what decoy patterns score on this file. Short clips
            # keep the raw ratio: the mark also raises the decoys (it is coherent within a
            # chip), which would cost a third of the noise detections, and the threshold was
            # chosen on such clips, so their excess is inside it.
            scale = max(float(decoy_ratio[self._unit_hypothesis].mean()), 1e-6)
            ratio, decoy_ratio = ratio / scale, decoy_ratio / scale
        return ratio, decoy_ratio, windows

    def _search_patterns(self) -> tuple[np.ndarray, np.ndarray]:
        """Our pattern (scales x bins) and the decoys' (scales x decoys x bins), as the
        detector expects them under each frequency scale; built once per instance."""
        if self._patterns is None:
            freqs = np.fft.rfftfreq(_N_FFT, 1 / ANALYSIS_RATE)[self._band]
            own, decoys = [], []
            for scale in self._f_scales:
                taper, phase = self._pattern(freqs / scale)
                own.append(taper * np.exp(-1j * phase))
                decoys.append(
                    [taper * np.exp(-1j * self._pattern(freqs / scale, d)[1]) for d in self._decoys]
                )
            self._patterns = (np.array(own), np.array(decoys))
        return self._patterns

    def _pattern(
        self, freqs: np.ndarray, phases: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per frequency: the chip's weight (a half-sine across the chip, 0 outside the band)
        and its keyed modulation phase (or ``phases``' for a decoy)."""
        cfg = self.config
        phases = self._phases if phases is None else phases
        position = (freqs - cfg.low_hz) / cfg.chip_hz
        chip = np.floor(position).astype(int)
        inside = (chip >= 0) & (chip < len(phases))
        taper = np.where(inside, np.sin(np.pi * (position - chip)), 0.0)
        phase = phases[np.clip(chip, 0, len(phases) - 1)]
        return taper, phase


def _chip_phases(key: bytes, cfg: SpreadSpectrumConfig) -> np.ndarray:
    """A uniform keyed phase per pair of chips; the pair's second chip in opposite phase."""
    chips = int((cfg.high_hz - cfg.low_hz) // cfg.chip_hz)
    seed = hmac.new(key, b"chip phases", hashlib.sha256).digest()
    pairs = np.random.default_rng(np.frombuffer(seed, dtype=np.uint32)).uniform(
        0, 2 * np.pi, (chips + 1) // 2
    )
    phases = np.repeat(pairs, 2)[:chips]
    phases[1::2] += np.pi
    return phases


def _residual(x: np.ndarray, band: np.ndarray, t0: float) -> tuple[np.ndarray | None, np.ndarray]:
    """The window's log spectrogram in the band, with each bin's mean and each frame's mean
    removed (what is left is the fine, fast structure the mark lives in), silent frames zeroed.
    Returns (frames x bins, frame times) or (None, ...) when the window has too little sound."""
    padded = np.pad(x, (_N_FFT // 2, _N_FFT // 2))
    count = 1 + (len(padded) - _N_FFT) // _HOP
    if count < 16:
        return None, np.zeros(0)
    index = _HOP * np.arange(count)[:, None] + np.arange(_N_FFT)
    spectra = np.fft.rfft(padded[index] * np.hanning(_N_FFT + 1)[:-1], axis=1)[:, band]
    level = 10 * np.log10(np.abs(spectra) ** 2 + 1e-10)
    energy = level.mean(axis=1)
    active = energy > energy.max() - _SILENCE_DB
    if active.sum() < 16 or not np.isfinite(level).all():
        return None, np.zeros(0)
    # Tiles near the noise floor carry noise, not mark: weigh each by how far it rises above
    # its bin's quiet level (20th percentile), full weight 13 dB above it.
    floor = np.percentile(level[active], _FLOOR_PERCENTILE, axis=0)
    weight = np.clip((level - floor - _FLOOR_MARGIN_DB) / _FLOOR_RAMP_DB, 0.0, 1.0)
    level = level - level[active].mean(axis=0)
    level = level - level.mean(axis=1, keepdims=True)
    level = level * weight
    spread = float(level[active].std()) + 1e-9
    level = np.clip(level, -_CLIP_SIGMAS * spread, _CLIP_SIGMAS * spread) * active[:, None]
    times = t0 + np.arange(count) * _HOP / ANALYSIS_RATE
    return level, times


def _grid(search: float, step: float) -> np.ndarray:
    half = math.ceil(search / step)
    return 1.0 + step * np.arange(-half, half + 1)


def _gamma_z(x: float, k: int) -> float:
    """Standard-normal score of ``x`` under a Gamma(k, 1) null (the sum of ``k`` windows'
    normalised correlation powers, each exponential when the clip is unmarked)."""
    # log of the upper tail: -x + log(sum_{i<k} x^i / i!)
    terms = [i * math.log(x) - math.lgamma(i + 1) for i in range(k)] if x > 0 else [0.0]
    peak = max(terms)
    log_tail = -x + peak + math.log(sum(math.exp(t - peak) for t in terms))
    if log_tail >= 0:
        return 0.0
    if log_tail < -700:
        return _MAX_Z
    return min(_MAX_Z, -NormalDist().inv_cdf(math.exp(log_tail)))
