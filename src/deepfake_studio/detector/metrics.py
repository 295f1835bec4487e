"""Equal error rate as the ASVspoof challenges compute it, and rates at a threshold.

Scores are "synthetic-ness": higher means more likely a spoof. The DET curve follows ASVspoof's
`compute_det_curve` (eval_metrics.py of the 2019/2021 baselines): sort all scores, accumulate
misses of spoofs and false alarms on real speech at every threshold, and take the EER where the
two rates are closest (their mean there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DetCurve:
    """Miss rate (spoofs let through) and false-alarm rate (real speech flagged) per threshold."""

    miss: np.ndarray
    false_alarm: np.ndarray
    thresholds: np.ndarray


def det_curve(bona_fide: np.ndarray, spoof: np.ndarray) -> DetCurve:
    """ASVspoof's DET curve; a clip is called synthetic when its score is > threshold."""
    bona_fide = np.asarray(bona_fide, np.float64).ravel()
    spoof = np.asarray(spoof, np.float64).ravel()
    if bona_fide.size == 0 or spoof.size == 0:
        raise ValueError("an EER needs at least one real and one synthetic score")
    scores = np.concatenate([spoof, bona_fide])
    is_spoof = np.concatenate([np.ones(spoof.size), np.zeros(bona_fide.size)])
    order = np.argsort(scores, kind="mergesort")
    is_spoof = is_spoof[order]
    # Threshold just above the k-th lowest score: spoofs at or below it are missed, real
    # clips above it are false alarms.
    spoofs_below = np.cumsum(is_spoof)
    real_above = bona_fide.size - (np.arange(1, scores.size + 1) - spoofs_below)
    miss = np.concatenate([[0.0], spoofs_below / spoof.size])
    false_alarm = np.concatenate([[1.0], real_above / bona_fide.size])
    thresholds = np.concatenate([[scores[order[0]] - 1e-3], scores[order]])
    return DetCurve(miss, false_alarm, thresholds)


def equal_error_rate(bona_fide: np.ndarray, spoof: np.ndarray) -> tuple[float, float]:
    """(EER in 0..1, the threshold where it occurs)."""
    curve = det_curve(bona_fide, spoof)
    i = int(np.argmin(np.abs(curve.miss - curve.false_alarm)))
    return float((curve.miss[i] + curve.false_alarm[i]) / 2), float(curve.thresholds[i])


def rates_at(bona_fide: np.ndarray, spoof: np.ndarray, threshold: float) -> tuple[float, float]:
    """(false-positive rate on real speech, miss rate on spoofs) when calling score > threshold."""
    fpr = float(np.mean(np.asarray(bona_fide) > threshold)) if len(bona_fide) else float("nan")
    miss = float(np.mean(np.asarray(spoof) <= threshold)) if len(spoof) else float("nan")
    return fpr, miss
