"""Augmentations do what they say, keep length and rate, and are reproducible from a seed."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_studio.audio import Audio
from deepfake_studio.detector.augment import (
    add_noise,
    augment,
    augment_online,
    band_limit,
    codec,
    resample_trip,
    telephone,
)
from deepfake_studio.errors import StudioError


def speechlike(seconds: float = 2.0, rate: int = 16_000) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    harmonics = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 40))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return Audio((0.1 * harmonics * envelope).astype(np.float32), rate)


def test_noise_lands_at_the_requested_snr() -> None:
    clean = speechlike()
    for snr in (5.0, 20.0):
        noisy, what = add_noise(clean, np.random.default_rng(0), snr_db=snr)
        noise = noisy.samples - clean.samples
        measured = 10 * np.log10(np.mean(clean.samples**2) / np.mean(noise**2))
        assert measured == pytest.approx(snr, abs=0.1)
        assert what.endswith(f"{snr:.0f}dB")


def test_telephone_band_removes_everything_above_4_khz() -> None:
    rng = np.random.default_rng(0)
    wide = Audio(rng.normal(0, 0.1, 32_000).astype(np.float32), 16_000)
    narrow, _ = telephone(wide, rng)
    spectrum = np.abs(np.fft.rfft(narrow.samples)) ** 2
    freqs = np.fft.rfftfreq(len(narrow.samples), 1 / 16_000)
    assert spectrum[freqs > 4200].sum() < 1e-3 * spectrum[freqs < 3800].sum()
    assert len(narrow.samples) == len(wide.samples)


def test_codec_round_trip_keeps_length_and_content() -> None:
    clean = speechlike()
    for seed in range(4):  # both mp3 and opus get drawn
        coded, what = codec(clean, np.random.default_rng(seed))
        assert what.startswith(("mp3", "opus"))
        assert len(coded.samples) == len(clean.samples) and coded.sample_rate == 16_000
        assert np.corrcoef(coded.samples, clean.samples)[0, 1] > 0.8
        assert np.abs(coded.samples).max() > 0.01


def test_chains_are_reproducible_and_never_empty() -> None:
    clean = speechlike()
    a, what_a = augment(clean, np.random.default_rng(7))
    b, what_b = augment(clean, np.random.default_rng(7))
    assert what_a == what_b and np.array_equal(a.samples, b.samples)
    kinds = {augment(clean, np.random.default_rng(s))[1] for s in range(12)}
    assert len(kinds) > 6 and all(kinds)


def test_band_limit_keeps_the_band_below_its_cutoff() -> None:
    rng = np.random.default_rng(1)
    wide = Audio(rng.normal(0, 0.1, 32_000).astype(np.float32), 16_000)
    narrow, what = band_limit(wide, np.random.default_rng(2))
    cutoff = 1000 * float(what.removeprefix("lowpass").removesuffix("k"))
    assert 3500 <= cutoff <= 7500
    freqs = np.fft.rfftfreq(32_000, 1 / 16_000)
    before, after = (np.abs(np.fft.rfft(x)) ** 2 for x in (wide.samples, narrow.samples))
    assert after[freqs > cutoff + 400].sum() < 1e-6 * after.sum()
    low = freqs < cutoff - 100
    assert after[low].sum() == pytest.approx(before[low].sum(), rel=1e-3)


def test_online_chains_keep_length_and_level_and_are_reproducible() -> None:
    clean = speechlike(3.0)
    rms = float(np.sqrt(np.mean(clean.samples**2)))
    outs = [augment_online(clean, np.random.default_rng(s)).samples for s in range(20)]
    assert all(len(o) == len(clean.samples) for o in outs)
    assert all(np.sqrt(np.mean(o**2)) == pytest.approx(rms, rel=0.01) for o in outs)
    changed = sum(not np.array_equal(o, clean.samples) for o in outs)
    assert 8 <= changed < 20  # most crops are augmented, some are left clean
    again = augment_online(clean, np.random.default_rng(5)).samples
    assert np.array_equal(again, outs[5])


def _band_energy(x: np.ndarray, bands: int = 16) -> np.ndarray:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    return np.array([b.sum() for b in np.array_split(spectrum, bands)])


def test_rawboost_convolutive_noise_reshapes_the_spectrum_randomly() -> None:
    from deepfake_studio.detector.augment import convolutive_noise

    white = Audio(np.random.default_rng(0).normal(0, 0.1, 32_000).astype(np.float32), 16_000)
    shapes = []
    for seed in range(3):
        out = convolutive_noise(white, np.random.default_rng(seed))
        assert len(out.samples) == 32_000 and np.isfinite(out.samples).all()
        assert np.abs(out.samples).max() <= 1.0
        energy = _band_energy(out.samples)
        shapes.append(10 * np.log10(energy / energy.sum()))
    # White noise in, coloured out: the band levels spread by tens of dB, differently per seed.
    assert all(s.max() - s.min() > 20 for s in shapes)
    assert np.abs(shapes[0] - shapes[1]).max() > 10


def test_rawboost_impulsive_noise_touches_at_most_a_tenth_of_the_samples() -> None:
    from deepfake_studio.detector.augment import impulsive_noise

    clean = speechlike()
    for seed in range(5):
        out = impulsive_noise(clean, np.random.default_rng(seed)).samples
        changed = np.mean(out != clean.samples)
        assert changed <= 0.10
        # Each touched sample moves by at most twice itself (g = 2, |u1·u2| ≤ 1).
        assert np.all(np.abs(out - clean.samples) <= 2 * np.abs(clean.samples) + 1e-6)
    assert max(np.mean(impulsive_noise(clean, np.random.default_rng(s)).samples != clean.samples)
               for s in range(5)) > 0.02  # fmt: skip


def test_rawboost_coloured_noise_is_coloured_and_within_10_to_40_db() -> None:
    from deepfake_studio.detector.augment import coloured_noise

    clean = speechlike()
    for seed in range(6):
        noisy = coloured_noise(clean, np.random.default_rng(seed)).samples
        noise = noisy - clean.samples
        snr = 10 * np.log10(np.mean(clean.samples**2) / np.mean(noise**2))
        assert 9.9 <= snr <= 40.1
        energy = _band_energy(noise)
        assert 10 * np.log10(energy.max() / energy.min()) > 20  # not white


def test_online_rawboost_changes_every_crop_and_is_reproducible() -> None:
    clean = speechlike(3.0)
    rms = float(np.sqrt(np.mean(clean.samples**2)))
    outs = [augment_online(clean, np.random.default_rng(s), 1.0).samples for s in range(8)]
    assert all(not np.array_equal(o, clean.samples) for o in outs)
    assert all(np.sqrt(np.mean(o**2)) == pytest.approx(rms, rel=0.01) for o in outs)
    again = augment_online(clean, np.random.default_rng(3), 1.0).samples
    assert np.array_equal(again, outs[3])
    # Off (the default), the random stream is untouched: the same crops as without the option.
    assert np.array_equal(
        augment_online(clean, np.random.default_rng(4), 0.0).samples,
        augment_online(clean, np.random.default_rng(4)).samples,
    )


def test_aac_round_trip_keeps_length_and_content() -> None:
    clean = speechlike()
    coded, what = codec(clean, np.random.default_rng(0), ("aac",))
    assert what.startswith("aac") and what.endswith("k")
    assert len(coded.samples) == len(clean.samples) and coded.sample_rate == 16_000
    assert np.corrcoef(coded.samples, clean.samples)[0, 1] > 0.9  # realigned: measured 0.999
    assert not np.array_equal(coded.samples, clean.samples)


def test_resample_trip_keeps_length_and_loses_the_band_above_the_lower_nyquist() -> None:
    rng = np.random.default_rng(0)
    wide = Audio(rng.normal(0, 0.1, 32_000).astype(np.float32), 16_000)
    freqs = np.fft.rfftfreq(32_000, 1 / 16_000)
    low_rate_seen = 0
    for seed in range(20):
        out, what = resample_trip(wide, np.random.default_rng(seed))
        assert len(out.samples) == 32_000 and what.startswith("resample")
        assert not np.array_equal(out.samples, wide.samples)
        if what.startswith("resample11.025k"):  # only 5.5 kHz survive an 11.025 kHz trip
            spectrum = np.abs(np.fft.rfft(out.samples)) ** 2
            assert spectrum[freqs > 6000].sum() < 0.05 * spectrum[freqs < 5000].sum()
            low_rate_seen += 1
    assert low_rate_seen >= 2


def test_builds_draw_aac_and_resampling_only_when_asked() -> None:
    clean = speechlike(1.0)
    default = {augment(clean, np.random.default_rng(s))[1] for s in range(30)}
    assert not any("aac" in d or "resample" in d for d in default)
    wider = [
        augment(clean, np.random.default_rng(s), kinds=("codec", "resample"), codecs=("aac",))[1]
        for s in range(8)
    ]
    assert any("aac" in d for d in wider) and any("resample" in d for d in wider)
    assert not any(d.startswith(("mp3", "opus")) for d in wider)
    with pytest.raises(StudioError, match="unknown codec 'flac'"):
        augment(clean, np.random.default_rng(0), codecs=("flac",))
    with pytest.raises(StudioError, match="unknown augmentation 'reverb'"):
        augment(clean, np.random.default_rng(0), kinds=("reverb",))
