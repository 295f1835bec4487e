"""The emotion of a synthesis: one name and one strength, the same for every engine and front end.

A request's emotion travels in the `Conditioning.info` of the voice it is spoken with
(`emotion`, `emotion_strength`); the voice in the library is never changed. Kokoro turns it
into a prosody and voice-quality transform (`kokoro/emotion.py`); the transformer engine into
its learned emotion embedding; engines without an emotion input refuse anything but neutral.
"""

from __future__ import annotations

import math
from dataclasses import replace

from deepfake_studio.errors import EngineError
from deepfake_studio.synthesizer.base import Conditioning

EMOTIONS = ("neutral", "happy", "sad", "angry", "fearful", "surprised")
DEFAULT_EMOTION = "neutral"
EMOTION_KEY, STRENGTH_KEY = "emotion", "emotion_strength"
ENGINES_WITH_EMOTION = ("kokoro", "transformer")


class EmotionError(EngineError):
    """An unknown emotion, a strength outside 0..1, or an engine without emotion control."""


def check_emotion(
    emotion: str | None, strength: float | None = None, field: str = "emotion"
) -> tuple[str, float]:
    """(emotion, strength) with the defaults filled in (neutral; strength 1), or EmotionError."""
    name = DEFAULT_EMOTION if emotion is None else str(emotion).strip().lower()
    if name not in EMOTIONS:
        raise EmotionError(f"unknown {field} {emotion!r} (one of {', '.join(EMOTIONS)})")
    value = 1.0 if strength is None else strength
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise EmotionError(
            f"emotion strength must be a number from 0 to 1, got {strength!r}"
        ) from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise EmotionError(f"emotion strength must be from 0 to 1, got {strength!r}")
    return name, value


def is_neutral(emotion: str, strength: float) -> bool:
    """True when the request asks for exactly the voice's neutral speech."""
    return emotion == DEFAULT_EMOTION or strength == 0.0


def check_engine_emotion(
    engine: str, emotion: str | None, strength: float | None = None
) -> tuple[str, float]:
    """`check_emotion`, and an engine without an emotion input refuses all but neutral."""
    name, value = check_emotion(emotion, strength)
    if not is_neutral(name, value) and engine not in ENGINES_WITH_EMOTION:
        raise EmotionError(
            f"the {engine} engine has no emotion control ({' and '.join(ENGINES_WITH_EMOTION)} "
            "have); leave the emotion neutral"
        )
    return name, value


def emotion_fields(emotion: str, strength: float) -> dict[str, str | float]:
    """A job request's emotion fields: none for the default, so the ids of requests made
    before emotions existed stay the same."""
    if emotion == DEFAULT_EMOTION:
        return {}
    return {EMOTION_KEY: emotion, STRENGTH_KEY: strength}


def with_emotion(
    conditioning: Conditioning, engine: str, emotion: str | None, strength: float | None = None
) -> Conditioning:
    """A copy of `conditioning` that speaks with `emotion` at `strength` (checked here).

    Neutral or strength 0 returns `conditioning` itself, so the output is exactly the neutral
    one. An engine without an emotion input refuses any other emotion (EmotionError)."""
    name, value = check_engine_emotion(engine, emotion, strength)
    if is_neutral(name, value):
        return conditioning
    return replace(conditioning, info={**conditioning.info, EMOTION_KEY: name, STRENGTH_KEY: value})


def emotion_of(conditioning: Conditioning) -> tuple[str, float]:
    """The (emotion, strength) a conditioning asks for; neutral when it says nothing."""
    return check_emotion(
        str(conditioning.info.get(EMOTION_KEY, DEFAULT_EMOTION)),
        float(conditioning.info.get(STRENGTH_KEY, 1.0)),
    )
