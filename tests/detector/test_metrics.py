"""ASVspoof EER on score sets whose EER is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_studio.detector.metrics import det_curve, equal_error_rate, rates_at


def asvspoof_reference_eer(target: np.ndarray, nontarget: np.ndarray) -> float:
    """ASVspoof 2019/2021 `compute_eer`, transcribed (targets = the higher-scoring class)."""
    n = target.size + nontarget.size
    scores = np.concatenate((target, nontarget))
    labels = np.concatenate((np.ones(target.size), np.zeros(nontarget.size)))
    idx = np.argsort(scores, kind="mergesort")
    labels = labels[idx]
    tar_sums = np.cumsum(labels)
    nontar_sums = nontarget.size - (np.arange(1, n + 1) - tar_sums)
    frr = np.concatenate((np.atleast_1d(0), tar_sums / target.size))
    far = np.concatenate((np.atleast_1d(1), nontar_sums / nontarget.size))
    i = np.argmin(np.abs(frr - far))
    return float(np.mean((frr[i], far[i])))


def test_overlap_of_five_in_a_hundred_gives_five_percent() -> None:
    real = np.arange(100.0)  # 0..99
    spoof = np.arange(90.5, 190.5)  # 90.5..189.5: 5 of each class on the wrong side of 94.5
    eer, threshold = equal_error_rate(real, spoof)
    assert eer == pytest.approx(0.05)
    assert 94 <= threshold < 95


def test_separated_scores_give_zero_and_swapped_give_one() -> None:
    assert equal_error_rate(np.zeros(10), np.ones(10))[0] == 0.0
    assert equal_error_rate(np.ones(10), np.zeros(10))[0] == 1.0


def test_identical_distributions_give_about_half() -> None:
    rng = np.random.default_rng(0)
    eer, _ = equal_error_rate(rng.normal(size=5000), rng.normal(size=5000))
    assert 0.47 < eer < 0.53


def test_matches_the_asvspoof_reference_on_random_scores() -> None:
    rng = np.random.default_rng(1)
    for shift in (0.5, 1.0, 2.0, 3.0):
        real, spoof = rng.normal(size=300), rng.normal(shift, 1.0, size=170)
        assert equal_error_rate(real, spoof)[0] == pytest.approx(
            asvspoof_reference_eer(spoof, real)
        )


def test_det_curve_ends_and_rates_at_threshold() -> None:
    curve = det_curve(np.array([0.1, 0.2, 0.9]), np.array([0.8, 0.95]))
    assert (curve.miss[0], curve.false_alarm[0]) == (0.0, 1.0)
    assert (curve.miss[-1], curve.false_alarm[-1]) == (1.0, 0.0)
    fpr, miss = rates_at(np.array([0.1, 0.2, 0.9]), np.array([0.8, 0.95]), 0.85)
    assert fpr == pytest.approx(1 / 3) and miss == pytest.approx(0.5)
    with pytest.raises(ValueError):
        equal_error_rate(np.array([]), np.array([1.0]))
