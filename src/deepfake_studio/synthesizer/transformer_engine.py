"""The `transformer` engine: a run of `train synthesizer --model transformer` (+ HiFi-GAN).

    engine = TransformerEngine(Path("run"))        # run/transformer.pt [+ run/hifigan.pt]
    voice = engine.condition(reference, encoder)  # the studio encoder's d-vector
    samples = engine.synthesize("Hello there.", voice)   # float32, 22.05 kHz

The synthesizer was trained on d-vectors of the encoder `prepare` used (by default the
studio's own GE2E encoder), so `condition` uses the studio's encoder. The emotion is part of
the request (`Conditioning.info["emotion"]` and `["emotion_strength"]`, the studio's names:
`synthesizer.emotion`; "neutral" by default). Without
RUN/hifigan.pt the mel is turned into audio by Griffin-Lim, with a warning.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from deepfake_studio.configs import ConfigError, config_from_dict
from deepfake_studio.errors import EngineError, TextError
from deepfake_studio.synthesizer.base import Conditioning, ProgressCallback
from deepfake_studio.synthesizer.emotion import emotion_of
from deepfake_studio.synthesizer.sv2tts import (
    CheckpointMismatchError,
    ModelFileMissingError,
    limit_torch_threads,
    load_weights,
    read_state_dict,
    split_text,
    stretch_time,
)
from deepfake_studio.synthesizer.sv2tts_text import EOS_ID, english_cleaners, symbols_to_ids
from deepfake_studio.synthesizer.transformer import EMOTIONS, TransformerTTS, TransformerTTSConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    from deepfake_studio.audio import Audio
    from deepfake_studio.encoder import SpeakerEncoder

log = logging.getLogger(__name__)

SYNTHESIZER_FILE, VOCODER_FILE = "transformer.pt", "hifigan.pt"
MAX_CHUNK_CHARS = 150  # longer text is split at clause punctuation, then spaces
MAX_FRAMES_PER_SYMBOL = 8.0  # speech is ~2-3 frames of 23 ms per character; a stuck decoder stops
CHUNK_GAP_S = 0.1
# The studio's emotion names (`synthesizer.emotion.EMOTIONS`) → the model table's row names.
TABLE_ROW_NAMES = {"fearful": "fear"}


def load_transformer(path: Path) -> TransformerTTS:
    """RUN/transformer.pt → TransformerTTS in eval mode (sizes from the checkpoint)."""
    state = read_state_dict(path, "transformer")
    saved = torch.load(path, map_location="cpu", weights_only=True).get("config") or {}
    try:
        config = config_from_dict(TransformerTTSConfig, saved, str(path))
    except ConfigError as exc:
        raise CheckpointMismatchError(str(exc)) from exc
    model = TransformerTTS(config)
    load_weights(model, state, f"transformer checkpoint {path}")
    return model.eval()


class TransformerEngine:
    """Text → speech with a trained transformer TTS and HiFi-GAN (or Griffin-Lim)."""

    name = "transformer"

    def __init__(self, models_dir: Path, threads: int = 2) -> None:
        self.models_dir = Path(models_dir)
        if not self.models_dir.is_dir():
            raise ModelFileMissingError(
                f"transformer models folder not found: {self.models_dir} (it needs "
                f"{SYNTHESIZER_FILE} and optionally {VOCODER_FILE}, from 'deepfake-studio train')"
            )
        self.model = load_transformer(self.models_dir / SYNTHESIZER_FILE)
        self.audio = self.model.config.audio
        self.sample_rate = self.audio.sample_rate
        self.vocoder: Callable[[np.ndarray], np.ndarray]
        vocoder_path = self.models_dir / VOCODER_FILE
        if vocoder_path.exists():
            from deepfake_studio.vocoder.hifigan import load_hifigan_vocoder

            self.vocoder, self.vocoder_name = load_hifigan_vocoder(vocoder_path), "hifigan"
        else:
            from deepfake_studio.vocoder.griffin_lim import GriffinLimConfig, GriffinLimVocoder

            log.warning("no %s in %s: using the Griffin-Lim vocoder", VOCODER_FILE, models_dir)
            self.vocoder = GriffinLimVocoder(self.audio, GriffinLimConfig())
            self.vocoder_name = "griffinlim"
        self.threads = threads
        self._lock = threading.Lock()

    def default_conditioning(self) -> Conditioning:
        raise EngineError("the transformer engine has no built-in voice; enroll a reference first")

    def condition(
        self,
        reference: Audio,
        encoder: SpeakerEncoder,
        *,
        seed: int = 0,
        progress: ProgressCallback | None = None,
    ) -> Conditioning:
        embedding = encoder.embed(reference.samples, reference.sample_rate)
        if progress:
            progress(1.0, "embedded the reference")
        return Conditioning(
            engine=self.name,
            arrays={"embedding": np.asarray(embedding, np.float32)},
            info={"emotion": "neutral"},
        )

    def synthesize(self, text: str, conditioning: Conditioning, speed: float = 1.0) -> np.ndarray:
        embedding = conditioning.arrays.get("embedding")
        if embedding is None or np.asarray(embedding).shape != (self.model.config.speaker_dims,):
            raise EngineError(
                "this voice has no speaker embedding for the transformer engine; enroll it "
                "with --engine transformer"
            )
        emotion, strength = emotion_of(conditioning)  # the studio's names; one of its rows
        row = EMOTIONS.index(TABLE_ROW_NAMES.get(emotion, emotion))
        chunks = [
            p for p in split_text(english_cleaners(text), MAX_CHUNK_CHARS) if re.search(r"[a-z]", p)
        ]
        if not chunks:
            raise TextError("the text has nothing to speak (no letters or digits)")
        speaker = torch.from_numpy(np.asarray(embedding, np.float32))
        silence = np.full(
            (self.audio.n_mels, round(CHUNK_GAP_S * self.sample_rate / self.audio.hop_length)),
            -self.audio.max_abs_value,
            np.float32,
        )
        with self._lock, limit_torch_threads(self.threads):
            torch.manual_seed(0)  # the prenet's dropout stays on: same text, same audio
            mels: list[np.ndarray] = []
            for chunk in chunks:
                ids = [*symbols_to_ids(chunk), EOS_ID]
                limit = int(MAX_FRAMES_PER_SYMBOL * len(ids)) + 20
                mel = self.model.generate(
                    ids, speaker, row, max_frames=limit, emotion_strength=strength
                )
                mels += [silence, mel.numpy()] if mels else [mel.numpy()]
            mel = stretch_time(np.concatenate(mels, axis=1), speed * conditioning.speed)
            wav = np.asarray(self.vocoder(mel), np.float32)
        peak = float(np.abs(wav).max(initial=0.0))
        return wav * (0.99 / peak) if peak > 0.99 else wav
