"""Synthetic-speech detector: a SpecRNet-like CNN on LFCCs, trained here, shipped as ONNX.

* `features.py` LFCC (160 coefficients, 50/10 ms, 16 kHz) and the window arithmetic;
* `model.py` SpecRNet-lite (PyTorch, for training and export only);
* `generators.py`, `augment.py`, `data.py` build the real/synthetic training set;
* `train.py` trains, calibrates and exports; `metrics.py` ASVspoof EER;
* `infer.py` `Detector`: the shipped ONNX model over audio of any length;
* `evaluate.py` seen / leave-one-generator-out EER with and without augmentation, DET plot.

Detection needs only onnxruntime and numpy; the weights are in `weights/` with a model card.
"""

from deepfake_studio.detector.infer import DetectionResult, Detector, DetectorConfig, Segment

__all__ = ["DetectionResult", "Detector", "DetectorConfig", "Segment"]
