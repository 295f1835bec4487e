"""Reference recording → Kokoro style table in about a second, without a fit.

The encoder is learned from the voices the `standard` style fit made for the train speakers
of `speaker_split.json` (`train_style_encoder.py` fits them and writes `style_encoder.npz`):
for each, its GE2E d-vector, its pitch class and its fitted style. A new reference is placed
among them by its d-vector; its style is the similarity-weighted mean of the fitted styles of
its nearest train speakers of the same pitch class, expressed as a move from one bundled pack
per class (the move is what the fits learned; the pack supplies the rows for every text
length, as in `reconstruct.style_table`).

Why so small a model: each training target costs a style fit of one to several minutes on 2
cores, so the table holds tens to a few hundred speakers, too few to train a network from
log-mels to 256 numbers without overfitting it. A nearest-neighbour average needs no
training beyond the fits, improves with every fitted speaker and cannot invent a style no fit
produced. The shipped table is under 1 MB.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepfake_studio.audio import Audio
from deepfake_studio.errors import EngineError
from deepfake_studio.synthesizer.base import Conditioning, ProgressCallback
from deepfake_studio.synthesizer.kokoro.fit import KokoroEngine, median_pitch
from deepfake_studio.synthesizer.kokoro.reconstruct import MALE_BELOW_SEMITONES, keep_the_closer
from deepfake_studio.synthesizer.rate import match_rate

if TYPE_CHECKING:
    from deepfake_studio.encoder import SpeakerEncoder

STYLE_ENCODER_FILE = Path(__file__).with_name("style_encoder.npz")
PACK_BY_CLASS = {False: "jf_alpha", True: "jm_kumo"}  # pitch class (male?) → base pack


@dataclass(frozen=True)
class StyleEncoderConfig:
    """How a reference's style is read from the fitted train voices."""

    neighbours: int = 8  # nearest fitted speakers averaged
    temperature: float = 0.05  # softmax over their d-vector cosines; smaller = nearest weighs more


@dataclass(frozen=True)
class StyleEncoder:
    """The fitted train voices: per speaker a unit d-vector, a pitch class, a fitted style and
    the pack row (token count - 1) that style was fitted at."""

    speakers: np.ndarray  # [n] str
    embeddings: np.ndarray  # [n, 256] float32, unit norm (the project's GE2E encoder)
    male: np.ndarray  # [n] bool: median pitch below 165 Hz
    styles: np.ndarray  # [n, 256] float32: the fitted style vector
    rows: np.ndarray  # [n] int: the style-table row it was fitted at
    config: StyleEncoderConfig = StyleEncoderConfig()

    def __post_init__(self) -> None:
        n = len(self.speakers)
        if n == 0 or any(len(a) != n for a in (self.embeddings, self.male, self.styles, self.rows)):
            raise EngineError("the style encoder's table is empty or its columns differ in length")

    @classmethod
    def load(
        cls, path: Path = STYLE_ENCODER_FILE, config: StyleEncoderConfig | None = None
    ) -> StyleEncoder:
        try:
            with np.load(path) as data:
                columns = {k: data[k] for k in ("speakers", "embeddings", "male", "styles", "rows")}
        except (OSError, KeyError, ValueError) as exc:
            raise EngineError(f"cannot read the style encoder {path}: {exc}") from None
        return cls(**columns, config=config or StyleEncoderConfig())

    def save(self, path: Path) -> None:
        partial = path.with_name(path.name + ".partial.npz")
        np.savez_compressed(
            partial,
            speakers=self.speakers.astype(str),
            embeddings=self.embeddings.astype(np.float32),
            male=self.male.astype(bool),
            styles=self.styles.astype(np.float32),
            rows=self.rows.astype(np.int64),
        )
        partial.replace(path)

    def style_table(
        self, embedding: np.ndarray, male: bool, packs: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, object]]:
        """([510, 256] style table, what was used) for a reference with this unit d-vector."""
        pack = PACK_BY_CLASS[male]
        pool = np.flatnonzero(self.male == male)
        if len(pool) == 0:  # no fitted speaker of this class: use all
            pool = np.arange(len(self.speakers))
        cosines = self.embeddings[pool] @ np.asarray(embedding, np.float32)
        order = np.argsort(-cosines)[: self.config.neighbours]
        chosen = pool[order]
        weights = np.exp((cosines[order] - cosines[order].max()) / self.config.temperature)
        weights /= weights.sum()
        base = packs[pack]
        moves = self.styles[chosen] - base[self.rows[chosen]]
        table = (base + (weights @ moves)[None]).astype(np.float32)
        info: dict[str, object] = {
            "quality": "quick",
            "style_encoder": "nearest fitted train voices",
            "pack": pack,
            "best_pack": pack,
            "neighbours": ",".join(str(s) for s in self.speakers[chosen]),
            "neighbour_weights": ",".join(f"{w:.3f}" for w in weights),
            "nearest_cosine": round(float(cosines[order[0]]), 4),
        }
        return table, info

    def read_reference(
        self, reference: Audio, speaker_encoder: SpeakerEncoder, packs: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, object]]:
        """(style table, what was used) for a reference recording: its d-vector places it,
        its median pitch picks the class."""
        embedding = speaker_encoder.embed(reference.samples, reference.sample_rate)
        pitch = median_pitch(reference.samples, reference.sample_rate)
        male = pitch is not None and pitch < MALE_BELOW_SEMITONES
        table, info = self.style_table(embedding, male, packs)
        info["pitch_reference"] = round(pitch, 2) if pitch is not None else "unknown"
        return table, info


def encode_voice(
    engine: KokoroEngine,
    reference: Audio,
    speaker_encoder: SpeakerEncoder,
    style_encoder: StyleEncoder,
    *,
    match_speed: bool = True,
    progress: ProgressCallback | None = None,
) -> Conditioning:
    """The `quick` voice of `reference`: the style encoder's table, or its base pack if GE2E
    and pitch hear the pack closer on a held-out sentence (the guard `standard` uses, without
    a margin: the table is not a fit that may have gamed its own reference), spoken at the
    reference's rate. A few seconds on 2 cores: one d-vector, two sentences, the rate text."""
    t0 = time.monotonic()
    if progress:
        progress(0.05, "reading the voice")
    table, info = style_encoder.read_reference(reference, speaker_encoder, engine.style_packs)
    base = engine.style_packs[str(info["pack"])]
    if progress:
        progress(0.3, "checking the voice on a sentence")
    verdict = keep_the_closer(
        engine.speak_sentence,
        engine.sample_rate,
        speaker_encoder,
        reference,
        base,
        table,
        margin=0.0,
    )
    conditioning = Conditioning(
        engine=engine.name, arrays={"style": table if verdict.keep_fit else base}
    )
    if match_speed:
        if progress:
            progress(0.6, "matching the speaking rate")
        conditioning.speed = match_rate(engine, reference, conditioning)
    conditioning.info = {
        **info,
        "method": "kokoro-style-encoder",
        "result": "encoder" if verdict.keep_fit else "pack",
        "score_pack": verdict.start_score,
        "score_encoder": verdict.fit_score,
        "seconds": round(time.monotonic() - t0, 2),
    }
    if progress:
        progress(1.0, "voice ready")
    return conditioning
