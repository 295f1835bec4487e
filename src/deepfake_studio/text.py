"""Text checks and sentence splitting for long inputs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from deepfake_studio.errors import TextError

MAX_TEXT_CHARS = 20_000  # about 20 minutes of speech; longer jobs belong in a batch
_ABBREVIATIONS = (
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "st",
    "mt",
    "jr",
    "sr",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "no",
)
_SENTENCE_END = re.compile(r"([.!?…]+[\"”’')\]]*)\s+(?=[\"“‘(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class Sentence:
    """One piece of text to synthesise, and the pause that follows it."""

    text: str
    pause_after: float


def check_text(text: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Strip and validate text; raise TextError (one line) when empty or too long."""
    cleaned = text.replace("\r\n", "\n").strip()
    if not cleaned or not re.search(r"\w", cleaned):
        raise TextError("the text is empty: give at least one word to speak")
    if len(cleaned) > max_chars:
        raise TextError(
            f"the text has {len(cleaned):,} characters; the limit is {max_chars:,} "
            "(split it into several jobs)"
        )
    return cleaned


def split_sentences(
    text: str, sentence_pause: float = 0.3, paragraph_pause: float = 0.7
) -> list[Sentence]:
    """Split text into sentences (paragraphs get longer pauses), ready for chunked synthesis."""
    sentences: list[Sentence] = []
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    for paragraph in paragraphs:
        flat = " ".join(paragraph.split())
        pieces = _merge_abbreviations(_SENTENCE_END.sub("\\1\n", flat).split("\n"))
        for piece in pieces:
            if re.search(r"\w", piece):
                sentences.append(Sentence(piece.strip(), sentence_pause))
        if sentences:
            last = sentences[-1]
            sentences[-1] = Sentence(last.text, paragraph_pause)
    return sentences


def split_first_clause(
    sentences: list[Sentence], max_chars: int = 60, clause_pause: float = 0.12
) -> list[Sentence]:
    """Split a long first sentence at a clause boundary so streaming starts sooner.

    Time to first audio is the time to synthesise the first piece; a short first clause
    keeps it low. Later sentences stay whole, which keeps their prosody natural.
    """
    if not sentences or len(sentences[0].text) <= max_chars:
        return sentences
    first = sentences[0]
    window = first.text[: max_chars + 1]
    # The earliest clause boundary after a few words: the shorter the head, the sooner audio.
    boundaries = [i for i in (window.find(p, 10) for p in (", ", "; ", ": ")) if i >= 10]
    cut = min(boundaries) if boundaries else -1
    if cut < 10:  # no clause boundary early enough: split between words
        cut = window.rfind(" ")
    if cut < 10:
        return sentences
    head = Sentence(first.text[: cut + 1].strip(), clause_pause)
    tail = Sentence(first.text[cut + 1 :].strip(), first.pause_after)
    return [head, tail, *sentences[1:]]


def _merge_abbreviations(pieces: list[str]) -> list[str]:
    """Re-join splits made after "Dr." and the like, which do not end a sentence."""
    merged: list[str] = []
    for piece in pieces:
        if merged:
            last_word = merged[-1].rsplit(" ", 1)[-1].rstrip(".").lower()
            if last_word in _ABBREVIATIONS or re.fullmatch(r"[a-z]", last_word):
                merged[-1] = f"{merged[-1]} {piece}"
                continue
        merged.append(piece)
    return merged


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """A count with its noun in agreement: "1 speaker", "3 speakers", "0 clips"."""
    return f"{count} {noun if count == 1 else plural_form or noun + 's'}"
