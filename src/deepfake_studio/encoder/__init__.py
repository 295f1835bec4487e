"""Stage 1 of SV2TTS: the GE2E speaker encoder (waveform -> 256-d unit-norm speaker embedding).

    encoder = SpeakerEncoder()                    # resemblyzer's pretrained weights
    e = encoder.embed(samples, sample_rate)       # (256,) float32, L2-normalised
    encoder.similarity(e, encoder.embed(other, 16000))

An utterance embedding is the L2-normalised mean of the embeddings of 1.6 s partials taken
every 0.8 s, which reproduces resemblyzer's `embed_utterance(..., rate=1.25)`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import AudioError
from .features import mel_spectrogram, mel_spectrogram_torch
from .model import EncoderConfig, SpeakerEncoderModel
from .preprocess import as_mono_float, preprocess_wav, resample
from .weights import EncoderWeightsError, default_weights_path, load_encoder_weights

__all__ = [
    "AudioLike",
    "EncoderConfig",
    "EncoderWeightsError",
    "SpeakerEncoder",
    "SpeakerEncoderModel",
    "default_weights_path",
    "get_speaker_encoder",
    "load_encoder_weights",
    "partial_slices",
    "preprocess_wav",
]


@runtime_checkable
class AudioLike(Protocol):
    """Anything with mono `samples` and a `sample_rate`, e.g. `deepfake_studio.audio.Audio`."""

    samples: np.ndarray
    sample_rate: int


Clip = np.ndarray | AudioLike


def partial_slices(n_samples: int, config: EncoderConfig | None = None) -> list[slice]:
    """Mel-frame ranges of the partials covering `n_samples` 16 kHz samples.

    Same rule as resemblyzer's `compute_partial_slices`: windows of `partial_frames` every
    `partial_step` frames until the audio is covered; the last window is dropped if less than
    `min_coverage` of it is audio, unless it is the only one. Slices may run past the end of
    the audio; the caller pads with silence.
    """
    config = config or EncoderConfig()
    frames, step = config.partial_frames, config.partial_step
    n_frames = n_samples // config.hop_length + 1
    starts = list(range(0, max(1, n_frames - frames + step + 1), step))
    coverage = (n_samples - starts[-1] * config.hop_length) / (frames * config.hop_length)
    if coverage < config.min_coverage and len(starts) > 1:
        starts.pop()
    return [slice(start, start + frames) for start in starts]


class SpeakerEncoder:
    """Pretrained GE2E encoder with numpy in/out. Loading takes ~0.1 s: construct once, reuse."""

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "cpu",
        config: EncoderConfig | None = None,
    ) -> None:
        """weights: None for resemblyzer's shipped file, or a state dict / RTVC `encoder.pt`."""
        self.config = config or EncoderConfig()
        self.device = torch.device(device)
        model = SpeakerEncoderModel(self.config)
        model.load_state_dict(load_encoder_weights(weights, self.config), strict=True)
        # Frozen: the encoder is only ever used as a fixed feature extractor / loss here.
        model.requires_grad_(False)
        self.model = model.to(self.device).eval()

    @property
    def sample_rate(self) -> int:
        """Rate the encoder works at (16 kHz); inputs at other rates are resampled."""
        return self.config.sample_rate

    # ---- numpy API ---------------------------------------------------------------------------

    def prepare(
        self, samples: Clip, sample_rate: int | None = None, *, preprocess: bool = True
    ) -> np.ndarray:
        """16 kHz waveform for `partial_mels`: fully preprocessed, or only resampled if not."""
        wav, rate = _unpack(samples, sample_rate)
        if preprocess:
            return preprocess_wav(wav, rate, self.config)
        return resample(as_mono_float(wav), rate, self.config.sample_rate)

    def partial_mels(self, wav: np.ndarray) -> np.ndarray:
        """(n_partials, partial_frames, n_mels) mel partials of a prepared 16 kHz waveform."""
        slices = partial_slices(len(wav), self.config)
        needed = slices[-1].stop * self.config.hop_length
        if needed >= len(wav):  # the last partial runs past the end: pad with silence
            wav = np.pad(wav, (0, needed - len(wav)))
        mel = mel_spectrogram(wav, self.config)
        return np.stack([mel[s] for s in slices])

    def embed_partials(
        self, samples: Clip, sample_rate: int | None = None, *, preprocess: bool = True
    ) -> np.ndarray:
        """(n_partials, 256) float32 unit-norm embeddings of the 1.6 s partials of one clip."""
        mels = self.partial_mels(self.prepare(samples, sample_rate, preprocess=preprocess))
        return self._forward_numpy(mels)

    def embed(
        self, samples: Clip, sample_rate: int | None = None, *, preprocess: bool = True
    ) -> np.ndarray:
        """(256,) float32 unit-norm utterance embedding.

        samples: mono float waveform (or an object with `.samples`/`.sample_rate`).
        preprocess: False if the audio is already trimmed and levelled (it is still resampled).
        """
        return _normalize(self.embed_partials(samples, sample_rate, preprocess=preprocess).mean(0))

    def embed_batch(
        self,
        clips: Sequence[Clip],
        sample_rate: int | Sequence[int] | None = None,
        *,
        preprocess: bool = True,
    ) -> np.ndarray:
        """(n_clips, 256) embeddings; the partials of all clips go through one LSTM forward.

        sample_rate: one rate for all clips, one per clip, or None for `AudioLike` clips.
        """
        if len(clips) == 0:
            return np.zeros((0, self.config.embedding_size), dtype=np.float32)
        rates = _per_clip_rates(sample_rate, len(clips))
        partials, counts = [], []
        for index, (clip, rate) in enumerate(zip(clips, rates, strict=True)):
            try:
                mels = self.partial_mels(self.prepare(clip, rate, preprocess=preprocess))
            except AudioError as exc:
                raise type(exc)(f"clip {index}: {exc}") from exc
            partials.append(mels)
            counts.append(len(mels))
        embeds = self._forward_numpy(np.concatenate(partials))
        groups = np.split(embeds, np.cumsum(counts)[:-1])
        return np.stack([_normalize(group.mean(0)) for group in groups])

    def embed_speaker(
        self,
        clips: Sequence[Clip],
        sample_rate: int | Sequence[int] | None = None,
        *,
        preprocess: bool = True,
    ) -> np.ndarray:
        """(256,) embedding of a speaker: normalised mean of the clips' utterance embeddings."""
        return _normalize(self.embed_batch(clips, sample_rate, preprocess=preprocess).mean(0))

    @staticmethod
    def similarity(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
        """Cosine similarity of two embeddings (1 = same direction)."""
        a64 = np.asarray(a, dtype=np.float64).ravel()
        b64 = np.asarray(b, dtype=np.float64).ravel()
        return float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)))

    # ---- differentiable torch API ------------------------------------------------------------

    def embed_mel_torch(self, mels: torch.Tensor) -> torch.Tensor:
        """Differentiable (batch, frames, n_mels) -> (batch, 256) embeddings (gradients reach mels).

        Weights are frozen; call under `torch.inference_mode()` if no gradient is needed.
        """
        return self.model(mels.to(self.device, torch.float32))

    def embed_wav_torch(self, wav: torch.Tensor) -> torch.Tensor:
        """Differentiable utterance embedding (256,) of a prepared 1-D 16 kHz waveform tensor.

        No VAD/levelling is applied (they are not differentiable): pass audio that is already
        preprocessed, e.g. from `prepare()`, or accept slightly different embeddings.
        """
        slices = partial_slices(wav.shape[-1], self.config)
        needed = slices[-1].stop * self.config.hop_length
        if needed >= wav.shape[-1]:
            wav = torch.nn.functional.pad(wav, (0, needed - wav.shape[-1]))
        mel = mel_spectrogram_torch(wav.to(self.device, torch.float32), self.config)
        partials = self.model(torch.stack([mel[s] for s in slices]))
        return torch.nn.functional.normalize(partials.mean(0), dim=0)

    # ---- internals ---------------------------------------------------------------------------

    def _forward_numpy(self, mels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(mels, dtype=np.float32))
            return self.model(batch.to(self.device)).cpu().numpy()


@lru_cache(maxsize=4)
def get_speaker_encoder(
    weights: str | os.PathLike[str] | None = None, device: str = "cpu"
) -> SpeakerEncoder:
    """A process-wide shared `SpeakerEncoder`, so callers do not reload the weights."""
    return SpeakerEncoder(weights, device=device)


def _unpack(samples: Clip, sample_rate: int | None) -> tuple[np.ndarray, int]:
    """Accept (array, rate) or an `AudioLike`; an explicit rate must agree with the object's."""
    if isinstance(samples, AudioLike) and not isinstance(samples, np.ndarray):
        if sample_rate is not None and sample_rate != samples.sample_rate:
            raise AudioError(
                f"sample_rate {sample_rate} contradicts the audio's own {samples.sample_rate}"
            )
        return np.asarray(samples.samples), int(samples.sample_rate)
    if sample_rate is None:
        raise AudioError("sample_rate is required when passing a bare array of samples")
    return np.asarray(samples), int(sample_rate)


def _per_clip_rates(sample_rate: int | Sequence[int] | None, n: int) -> list[int | None]:
    if sample_rate is None or isinstance(sample_rate, int | np.integer):
        return [sample_rate] * n  # type: ignore[list-item]
    rates = list(sample_rate)
    if len(rates) != n:
        raise AudioError(f"got {len(rates)} sample rates for {n} clips")
    return rates


def _normalize(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)
