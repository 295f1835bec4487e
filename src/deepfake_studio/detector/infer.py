"""`Detector`: the shipped ONNX model over audio of any length → calibrated probability + label.

    audio ─► 16 kHz, loudness-normalised ─► LFCC of the whole clip ─► 3 s windows every 1.5 s
          ─► ONNX logits ─► mean over the windows that contain speech ─► Platt calibration
          ─► probability of being synthetic, "synthetic" when ≥ the shipped threshold

Windows come from one feature pass over the clip, exactly as in training; a clip shorter than
a window is repeated to fill it. Only onnxruntime and numpy run here (no torch).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from deepfake_studio import audio as audio_io
from deepfake_studio.audio import Audio
from deepfake_studio.detector.features import FeatureConfig, fit_frames, lfcc, window_starts
from deepfake_studio.errors import AudioError, StudioError

WEIGHTS = "weights"
ONNX_NAME, CARD_NAME = "detector.onnx", "detector.json"
INPUT_LUFS = -23.0  # the level every training clip was normalised to
MIN_SECONDS = 0.5


@dataclass(frozen=True)
class Segment:
    """One scored window of the input."""

    start: float  # seconds
    end: float
    probability: float
    speech: bool  # enough speech to count toward the file's verdict


@dataclass(frozen=True)
class DetectionResult:
    """Verdict for one clip: calibrated probability that it is synthetic, and the label."""

    probability: float
    label: str  # "synthetic" or "real"
    threshold: float
    duration: float
    segments: tuple[Segment, ...]

    @property
    def synthetic(self) -> bool:
        return self.label == "synthetic"


@dataclass(frozen=True)
class DetectorConfig:
    """Where the model is and how it runs; the defaults use the weights shipped in the package."""

    weights_dir: Path | None = None  # folder with detector.onnx + detector.json
    threshold: float | None = None  # None: the shipped threshold (in the model card JSON)
    threads: int = 0  # 0 = all cores
    batch_windows: int = 32


def weights_dir() -> Path:
    return Path(str(resources.files("deepfake_studio.detector") / WEIGHTS))


class Detector:
    """Scores audio with the shipped detector; load once, call many times (thread-safe)."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        import onnxruntime as ort

        self.config = config or DetectorConfig()
        folder = Path(self.config.weights_dir or weights_dir())
        onnx_file, card_file = folder / ONNX_NAME, folder / CARD_NAME
        if not onnx_file.exists() or not card_file.exists():
            raise StudioError(f"no detector model in {folder} ({ONNX_NAME} + {CARD_NAME})")
        self.card = json.loads(card_file.read_text(encoding="utf-8"))
        self.features = FeatureConfig(**self.card["features"])
        per_s = self.features.sample_rate / self.features.hop_length
        windows = self.card["windows"]
        self.window = round(windows["window_s"] * per_s) + 1
        self.hop = round(windows["hop_s"] * per_s)
        self.min_speech_s = float(windows["min_speech_s"])
        self.calibration = (
            float(self.card["calibration"]["a"]),
            float(self.card["calibration"]["b"]),
        )
        self.threshold = float(self.config.threshold or self.card["threshold"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.threads or (os.cpu_count() or 1)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()

    def detect(self, audio: Audio | str | Path) -> DetectionResult:
        """Score a file or an `Audio` of any length (AudioError for unreadable or too short)."""
        clip = audio if isinstance(audio, Audio) else audio_io.load_audio(audio)
        if clip.duration < MIN_SECONDS:
            raise AudioError(
                f"the audio is {clip.duration:.2f} s long; at least {MIN_SECONDS} s is needed"
            )
        x = audio_io.resample(clip, self.features.sample_rate)
        x = audio_io.normalize_loudness(x, INPUT_LUFS)
        feats = fit_frames(lfcc(x.samples, self.features), self.window)
        starts = window_starts(feats.shape[1], self.window, self.hop)
        logits = self._logits(feats, starts)
        speech = self._speech_per_window(x, starts)
        counted = logits[speech] if speech.any() else logits  # all silence: score it anyway
        probability = float(self._calibrate(np.array([counted.mean()]))[0])
        window_p = self._calibrate(logits)
        hop_s = self.features.hop_length / self.features.sample_rate
        segments = tuple(
            Segment(
                start=round(s * hop_s, 2),
                end=round(min(clip.duration, (s + self.window - 1) * hop_s), 2),
                probability=float(p),
                speech=bool(v),
            )
            for s, p, v in zip(starts, window_p, speech, strict=True)
        )
        label = "synthetic" if probability >= self.threshold else "real"
        return DetectionResult(probability, label, self.threshold, clip.duration, segments)

    def _logits(self, feats: np.ndarray, starts: list[int]) -> np.ndarray:
        out = []
        for b in range(0, len(starts), self.config.batch_windows):
            batch = np.stack(
                [feats[:, s : s + self.window] for s in starts[b : b + self.config.batch_windows]]
            )
            with self._lock:
                out.append(self._session.run(None, {"lfcc": batch.astype(np.float32)})[0])
        return np.concatenate(out).reshape(-1)

    def _speech_per_window(self, x: Audio, starts: list[int]) -> np.ndarray:
        """Whether each window holds at least `min_speech_s` of detected speech."""
        frame_s = 0.03
        voiced = audio_io.voice_activity(x, frame_ms=30)
        hop_s = self.features.hop_length / self.features.sample_rate
        out = np.zeros(len(starts), dtype=bool)
        for k, s in enumerate(starts):
            a = int(s * hop_s / frame_s)
            b = int((s + self.window) * hop_s / frame_s)
            out[k] = voiced[a:b].sum() * frame_s >= self.min_speech_s
        return out

    def _calibrate(self, logits: np.ndarray) -> np.ndarray:
        a, b = self.calibration
        return 1.0 / (1.0 + np.exp(-(a * logits.astype(np.float64) + b)))
