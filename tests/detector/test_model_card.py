"""The shipped detector's model card states what its weights and `detector.json` say."""

from __future__ import annotations

import json
import re

import onnxruntime as ort

from deepfake_studio.detector.infer import weights_dir

CARD = (weights_dir() / "MODEL_CARD.md").read_text(encoding="utf-8")
META = json.loads((weights_dir() / "detector.json").read_text(encoding="utf-8"))


def percent(value: float) -> str:
    return f"{100 * value:.2f} %"


def test_input_shape_and_size_match_the_onnx_model() -> None:
    session = ort.InferenceSession(str(weights_dir() / "detector.onnx"))
    n_lfcc = session.get_inputs()[0].shape[1]
    assert n_lfcc == META["model"]["n_lfcc"] == META["features"]["n_lfcc"]
    assert f"(B, {n_lfcc}, T)" in CARD
    assert f"{n_lfcc} coefficients" in CARD
    assert f"{META['parameters']:,} parameters" in CARD


def test_threshold_and_dev_figures_match_detector_json() -> None:
    assert f"Threshold {META['threshold']:.3f}" in CARD
    assert f"shipped threshold ({META['threshold']:.3f})" in CARD
    dev = re.search(r"Dev split .*?(?=\n\n)", CARD, re.S)
    assert dev, "the card has no dev-split paragraph"
    text = " ".join(dev.group(0).split())
    assert f"EER {percent(META['dev']['eer'])}" in text, text
    assert f"false positives {percent(META['dev']['fpr_at_threshold'])}" in text, text
    assert f"missed {percent(META['dev']['miss_at_threshold'])}" in text, text
