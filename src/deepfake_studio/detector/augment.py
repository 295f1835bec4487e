"""Augmentations applied alike to real and synthetic clips, so the detector cannot key on them.

Each is a small function `(Audio, rng) -> (Audio, description)`; `augment` draws a random chain
(at least one) from a seeded generator, so a clip's augmentation is reproducible from its seed.
What the chain did is returned as text and stored in the data manifest.

* noise: white, pink or brown noise at 5–30 dB SNR (speech-band recordings are rarely clean);
* gain: ±6 dB (the detector also normalises loudness, so this mostly tests clipping/quantising);
* time shift: the clip starts up to 0.3 s later or earlier (zeros fill the gap);
* pitch shift: ±2 semitones by resampling (tempo moves with it; a phase vocoder would add its
  own artefacts, and then "processed real speech" would look like a vocoder);
* codec round trips through ffmpeg: mp3 at 32–128 kbps, opus at 12–48 kbps, and (when a build
  asks for it: `DataConfig.codecs`) AAC at 32–128 kbps;
* telephone: 8 kHz resampling round trip (everything above 4 kHz is gone);
* resample (when a build asks for it: `DataConfig.augmentations`): a round trip through
  11.025–44.1 kHz with a random resampler quality (the cheap ones leave aliasing and imaging,
  as uploads and editors do);
* band limit (training only): a low-pass at 3.5–7.5 kHz, the bandwidth low-bitrate codecs keep.

`augment` builds the stored augmented copies (all of the above but the band limit);
`augment_online` is the cheap subset (no ffmpeg) that training applies to every crop it draws.

RawBoost (Tak et al., ICASSP 2022; `rawboost`, training only, off unless asked) distorts the
waveform in ways no real channel is tied to, so that neither class owns a channel:
* convolutive noise, linear and non-linear: the sum of x, x², x³, ... each through its own
  random multi-band FIR filter, higher powers quieter (a random microphone/amplifier chain);
* impulsive, signal-dependent noise: up to 10 % of samples pushed by a random multiple of
  themselves (clipping, bit errors);
* stationary, signal-independent noise: white noise through a random multi-band filter
  (coloured), at 10–40 dB SNR.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

from deepfake_studio.audio import Audio, ffmpeg_path, resample
from deepfake_studio.errors import AudioError, StudioError

Augmentation = Callable[[Audio, np.random.Generator], tuple[Audio, str]]


def add_noise(
    audio: Audio, rng: np.random.Generator, snr_db: float | None = None
) -> tuple[Audio, str]:
    snr = float(rng.uniform(5, 30)) if snr_db is None else snr_db
    colour = str(rng.choice(["white", "pink", "brown"]))
    white = rng.standard_normal(len(audio.samples))
    if colour == "white":
        noise = white
    else:  # shape the spectrum: 1/f power (pink) or 1/f² (brown)
        spectrum = np.fft.rfft(white)
        f = np.maximum(np.fft.rfftfreq(len(white)), 1.0 / len(white))
        spectrum /= np.sqrt(f) if colour == "pink" else f
        noise = np.fft.irfft(spectrum, n=len(white))
    signal_power = float(np.mean(audio.samples.astype(np.float64) ** 2)) + 1e-12
    noise *= np.sqrt(signal_power / (np.mean(noise**2) + 1e-12) / 10 ** (snr / 10))
    return audio.with_samples(
        audio.samples + noise.astype(np.float32)
    ), f"noise-{colour}-{snr:.0f}dB"


def gain(audio: Audio, rng: np.random.Generator) -> tuple[Audio, str]:
    db = float(rng.uniform(-6, 6))
    return audio.with_samples(np.clip(audio.samples * 10 ** (db / 20), -1, 1)), f"gain{db:+.0f}dB"


def time_shift(audio: Audio, rng: np.random.Generator) -> tuple[Audio, str]:
    shift = int(rng.uniform(-0.3, 0.3) * audio.sample_rate)
    out = np.zeros_like(audio.samples)
    if shift >= 0:
        out[shift:] = audio.samples[: len(out) - shift]
    else:
        out[:shift] = audio.samples[-shift:]
    return audio.with_samples(out), f"shift{shift / audio.sample_rate:+.2f}s"


def pitch_shift(audio: Audio, rng: np.random.Generator) -> tuple[Audio, str]:
    semitones = float(rng.uniform(-2, 2))
    factor = 2 ** (semitones / 12)
    # Played back `factor` times faster: resample to rate/factor, keep the original rate label.
    shifted = soxr.resample(audio.samples, audio.sample_rate, audio.sample_rate / factor, "HQ")
    n = len(audio.samples)  # keep the clip's length: cut, or repeat a shortened clip
    return audio.with_samples(
        np.tile(shifted, -(-n // len(shifted)))[:n]
    ), f"pitch{semitones:+.1f}st"


CODECS: dict[str, tuple[list[str], tuple[int, ...]]] = {
    # name: (ffmpeg encoder and container, bit rates in kbps)
    "mp3": (["-c:a", "libmp3lame", "-f", "mp3"], (32, 64, 96, 128)),
    "opus": (["-c:a", "libopus", "-f", "ogg"], (12, 16, 24, 32, 48)),
    "aac": (["-c:a", "aac", "-f", "adts"], (32, 64, 96, 128)),
}
DEFAULT_CODECS = ("mp3", "opus")


def codec(
    audio: Audio, rng: np.random.Generator, names: tuple[str, ...] = DEFAULT_CODECS
) -> tuple[Audio, str]:
    # One uniform draw picks the codec (for mp3/opus: the draws of every earlier build).
    name = names[min(int(rng.random() * len(names)), len(names) - 1)]
    args, rates = CODECS[name]
    kbps = int(rng.choice(list(rates)))
    return codec_round_trip(audio, args, kbps), f"{name}{kbps}k"


def codec_round_trip(audio: Audio, codec_args: list[str], kbps: int) -> Audio:
    """Encode with ffmpeg and decode back to the original rate and length."""
    ffmpeg = ffmpeg_path()
    if ffmpeg is None:
        raise AudioError("codec augmentation needs ffmpeg: install ffmpeg")
    wav = io.BytesIO()
    sf.write(wav, np.clip(audio.samples, -1, 1), audio.sample_rate, format="WAV", subtype="PCM_16")
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "wav", "-i", "pipe:0"]
    cmd += [*codec_args, "-b:a", f"{kbps}k", "pipe:1"]
    proc = subprocess.run(cmd, input=wav.getvalue(), capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise AudioError(f"ffmpeg codec round trip failed: {proc.stderr.decode()[-200:].strip()}")
    if "adts" in codec_args:  # libsndfile cannot read AAC: ffmpeg decodes it to raw float
        decode = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "aac"]
        decode += ["-i", "pipe:0", "-ac", "1", "-ar", str(audio.sample_rate), "-f", "f32le"]
        raw = subprocess.run(
            [*decode, "pipe:1"], input=proc.stdout, capture_output=True, timeout=60, check=False
        )
        if raw.returncode != 0:
            raise AudioError(f"ffmpeg AAC decode failed: {raw.stderr.decode()[-200:].strip()}")
        data, rate = np.frombuffer(raw.stdout, np.float32)[:, None], audio.sample_rate
    else:
        data, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    decoded = resample(Audio(data.mean(axis=1), rate), audio.sample_rate).samples
    # Encoders add a delay (mp3 on a pipe has no gapless header to undo it): realign.
    decoded = decoded[_delay(decoded, audio.samples, max_lag=audio.sample_rate // 4) :]
    out = np.zeros_like(audio.samples)
    out[: min(len(out), len(decoded))] = decoded[: len(out)]
    return audio.with_samples(out)


def _delay(decoded: np.ndarray, original: np.ndarray, max_lag: int) -> int:
    """Samples by which `decoded` lags `original` (0..max_lag), by FFT cross-correlation."""
    n = min(len(decoded), len(original))
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(decoded[:n], size) * np.conj(np.fft.rfft(original[:n], size))
    correlation = np.fft.irfft(spectrum, size)[: max_lag + 1]
    return int(np.argmax(correlation))


def telephone(audio: Audio, rng: np.random.Generator) -> tuple[Audio, str]:
    return resample(resample(audio, 8000), audio.sample_rate), "tel8k"


def resample_trip(audio: Audio, rng: np.random.Generator) -> tuple[Audio, str]:
    rate = int(rng.choice([11_025, 22_050, 24_000, 32_000, 44_100]))
    quality = str(rng.choice(["QQ", "LQ", "MQ", "HQ"]))  # soxr: quick cubic ... high quality
    there = soxr.resample(audio.samples, audio.sample_rate, rate, quality)
    back = soxr.resample(there, rate, audio.sample_rate, quality)
    out = np.zeros_like(audio.samples)
    out[: min(len(out), len(back))] = back[: len(out)]
    return audio.with_samples(out), f"resample{rate / 1000:g}k-{quality}"


def band_limit(audio: Audio, rng: np.random.Generator) -> tuple[Audio, str]:
    cutoff = float(rng.uniform(3500, 7500))
    spectrum = np.fft.rfft(audio.samples)
    freqs = np.fft.rfftfreq(len(audio.samples), 1.0 / audio.sample_rate)
    # A 300 Hz cosine roll-off rather than a brick wall, which would ring.
    slope = np.clip((freqs - cutoff) / 300.0, 0.0, 1.0)
    spectrum *= 0.5 + 0.5 * np.cos(np.pi * slope)
    out = np.fft.irfft(spectrum, n=len(audio.samples)).astype(np.float32)
    return audio.with_samples(out), f"lowpass{cutoff / 1000:.1f}k"


AUGMENTATIONS: dict[str, tuple[float, Augmentation]] = {
    # name: (probability in a chain, function); applied in this order
    "pitch": (0.3, pitch_shift),
    "shift": (0.4, time_shift),
    "noise": (0.5, add_noise),
    "codec": (0.4, codec),
    "telephone": (0.2, telephone),
    "resample": (0.3, resample_trip),
    "gain": (0.4, gain),
}
# What a build draws from unless told otherwise (the shipped model's data: no resample).
DEFAULT_AUGMENTATIONS = ("pitch", "shift", "noise", "codec", "telephone", "gain")


def check_choices(kinds: tuple[str, ...], codecs: tuple[str, ...]) -> None:
    """One clear error for an augmentation or codec name this module does not have."""
    if unknown := [k for k in kinds if k not in AUGMENTATIONS]:
        raise StudioError(
            f"unknown augmentation {unknown[0]!r} (known: {', '.join(AUGMENTATIONS)})"
        )
    if unknown := [c for c in codecs if c not in CODECS]:
        raise StudioError(f"unknown codec {unknown[0]!r} (known: {', '.join(CODECS)})")
    if not kinds:
        raise StudioError("no augmentations to draw from")


def augment(
    audio: Audio,
    rng: np.random.Generator,
    only: str | None = None,
    kinds: tuple[str, ...] = DEFAULT_AUGMENTATIONS,
    codecs: tuple[str, ...] = DEFAULT_CODECS,
) -> tuple[Audio, str]:
    """A random chain of the augmentations in `kinds` (at least one), or just `only`; returns
    its description. `codecs`: the codecs the codec step draws from."""
    check_choices((*kinds, *([only] if only else [])), codecs)
    names = [n for n in AUGMENTATIONS if n in kinds]
    chosen = [only] if only else [n for n in names if rng.random() < AUGMENTATIONS[n][0]]
    if not chosen:
        chosen = [names[int(rng.integers(len(names)))]]
    steps = []
    for name in chosen:
        if name == "codec":
            audio, what = codec(audio, rng, codecs)
        else:
            audio, what = AUGMENTATIONS[name][1](audio, rng)
        steps.append(what)
    return audio, "+".join(steps)


# -- RawBoost ----------------------------------------------------------------------------------
def random_band_filter(
    rng: np.random.Generator, rate: int, bands: int = 5, gain_db: float = 0.0
) -> np.ndarray:
    """FIR taps: the cascade of `bands` band-pass filters at random centres (20 Hz-8 kHz),
    widths (100-1000 Hz) and lengths (10-100 taps), scaled to a peak gain of `gain_db`.
    Cascading band-passes at different centres gives an irregular, random response."""
    nyquist = rate / 2
    taps = np.ones(1)
    for _ in range(bands):
        centre, width = float(rng.uniform(20, nyquist)), float(rng.uniform(100, 1000))
        n = int(rng.integers(10, 101)) | 1  # odd length: a linear-phase band-pass exists
        low = min(max(centre - width / 2, 1.0), nyquist - 2.0)
        high = min(max(centre + width / 2, low + 1.0), nyquist - 1.0)
        taps = np.convolve(taps, signal.firwin(n, [low, high], pass_zero=False, fs=rate))
    _, response = signal.freqz(taps, worN=512)
    return taps * 10 ** (gain_db / 20) / max(float(np.abs(response).max()), 1e-12)


def _peak_safe(x: np.ndarray) -> np.ndarray:
    peak = float(np.abs(x).max())
    return x / peak if peak > 1 else x


def convolutive_noise(audio: Audio, rng: np.random.Generator, orders: int = 5) -> Audio:
    """RawBoost 1: Σₖ hₖ * xᵏ, k = 1..orders, each power 5-20 dB quieter than the one before."""
    x = audio.samples.astype(np.float64)
    out = np.zeros_like(x)
    gain = 0.0
    for k in range(1, orders + 1):
        h = random_band_filter(rng, audio.sample_rate, gain_db=gain)
        out += signal.oaconvolve(x**k, h)[: len(x)]
        gain -= float(rng.uniform(5, 20))
    return audio.with_samples(_peak_safe(out).astype(np.float32))


def impulsive_noise(audio: Audio, rng: np.random.Generator, share: float = 0.10) -> Audio:
    """RawBoost 2: up to `share` of the samples get xᵢ·g·u₁·u₂ added (g = 2, u uniform ±1)."""
    x = audio.samples.astype(np.float64).copy()
    hits = rng.choice(len(x), size=int(rng.integers(0, int(share * len(x)) + 1)), replace=False)
    x[hits] += 2.0 * x[hits] * rng.uniform(-1, 1, len(hits)) * rng.uniform(-1, 1, len(hits))
    return audio.with_samples(_peak_safe(x).astype(np.float32))


def coloured_noise(audio: Audio, rng: np.random.Generator) -> Audio:
    """RawBoost 3: white noise through a random multi-band filter, at 10-40 dB SNR."""
    x = audio.samples.astype(np.float64)
    h = random_band_filter(rng, audio.sample_rate)
    noise = signal.oaconvolve(rng.standard_normal(len(x)), h)[: len(x)]
    snr = float(rng.uniform(10, 40))
    power = float(np.mean(x**2)) + 1e-12
    noise *= np.sqrt(power / (float(np.mean(noise**2)) + 1e-12) / 10 ** (snr / 10))
    return audio.with_samples((x + noise).astype(np.float32))


RAWBOOST_CHAINS: tuple[tuple[Callable[[Audio, np.random.Generator], Audio], ...], ...] = (
    # one is drawn per crop: each algorithm alone, and the series the paper found best
    (convolutive_noise,),
    (impulsive_noise,),
    (coloured_noise,),
    (convolutive_noise, impulsive_noise),
    (convolutive_noise, impulsive_noise, coloured_noise),
)


def rawboost(audio: Audio, rng: np.random.Generator) -> Audio:
    """One randomly drawn RawBoost chain (see the module docstring)."""
    for step in RAWBOOST_CHAINS[int(rng.integers(len(RAWBOOST_CHAINS)))]:
        audio = step(audio, rng)
    return audio


ONLINE_AUGMENTATIONS: dict[str, tuple[float, Augmentation]] = {
    # name: (probability, function); about a third of the crops stay as they are
    "pitch": (0.2, pitch_shift),
    "noise": (0.3, add_noise),
    "band": (0.15, band_limit),
    "telephone": (0.1, telephone),
    "gain": (0.2, gain),
}


def augment_online(audio: Audio, rng: np.random.Generator, rawboost_share: float = 0.0) -> Audio:
    """A random chain (possibly empty) of the cheap augmentations, at the input's RMS level
    (the detector normalises loudness before scoring, so the level itself carries nothing).
    `rawboost_share` of the crops first get a RawBoost chain."""
    level = float(np.sqrt(np.mean(audio.samples.astype(np.float64) ** 2)))
    changed = False
    # Drawn only when asked, so runs without RawBoost keep their random streams (and weights).
    if rawboost_share > 0 and rng.random() < rawboost_share:
        audio, changed = rawboost(audio, rng), True
    for probability, function in ONLINE_AUGMENTATIONS.values():
        if rng.random() < probability:
            audio, _ = function(audio, rng)
            changed = True
    if changed and level > 0:
        now = float(np.sqrt(np.mean(audio.samples.astype(np.float64) ** 2)))
        audio = audio.with_samples(audio.samples * np.float32(level / max(now, 1e-9)))
    return audio
