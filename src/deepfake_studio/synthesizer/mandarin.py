"""Mandarin text → Kokoro phonemes: pypinyin readings written in Kokoro's Mandarin symbols.

espeak-ng's Mandarin voice writes tones as pitch digits that do not tell tone 1 from tone 4
(天 tiān and 去 qù both come out with "5") and spells ʂ as "s.", so the readings come from
pypinyin (its phrase dictionary picks the reading of polyphonic characters). Kokoro-82M v1.0
learnt Mandarin in hexgrad's misaki conventions: IPA initials and finals, aspiration as ʰ, the
retroflex affricate as ꭧ, the apical vowel of zi/zhi as ɨ, and the tone as an arrow after
the syllable's vowel (→ 1, ↗ 2, ↓ 3, ↘ 4, none for the neutral tone); the table below is
written from standard pinyin phonology in those conventions.
"""

from __future__ import annotations

import re

_INITIALS: dict[str, str] = {
    "b": "p",
    "p": "pʰ",
    "m": "m",
    "f": "f",
    "d": "t",
    "t": "tʰ",
    "n": "n",
    "l": "l",
    "g": "k",
    "k": "kʰ",
    "h": "x",
    "j": "ʨ",
    "q": "ʨʰ",
    "x": "ɕ",
    "zh": "ꭧ",
    "ch": "ꭧʰ",
    "sh": "ʂ",
    "r": "ɻ",
    "z": "ʦ",
    "c": "ʦʰ",
    "s": "s",
}

# Final → (before the tone mark, after it). pypinyin writes ü as "v" in strict finals.
_FINALS: dict[str, tuple[str, str]] = {
    "a": ("a", ""),
    "ai": ("ai", ""),
    "an": ("a", "n"),
    "ang": ("a", "ŋ"),
    "ao": ("au", ""),
    "e": ("ɤ", ""),
    "ei": ("ei", ""),
    "en": ("ə", "n"),
    "eng": ("ə", "ŋ"),
    "er": ("ɚ", ""),
    "i": ("i", ""),
    "ia": ("ja", ""),
    "ian": ("jɛ", "n"),
    "iang": ("ja", "ŋ"),
    "iao": ("jau", ""),
    "ie": ("je", ""),
    "in": ("i", "n"),
    "ing": ("i", "ŋ"),
    "iong": ("jʊ", "ŋ"),
    "iou": ("jou", ""),
    "o": ("wo", ""),
    "ong": ("ʊ", "ŋ"),
    "ou": ("ou", ""),
    "u": ("u", ""),
    "ua": ("wa", ""),
    "uai": ("wai", ""),
    "uan": ("wa", "n"),
    "uang": ("wa", "ŋ"),
    "uei": ("wei", ""),
    "uen": ("wə", "n"),
    "ueng": ("wə", "ŋ"),
    "uo": ("wo", ""),
    "v": ("y", ""),
    "ve": ("ɥe", ""),
    "van": ("ɥɛ", "n"),
    "vn": ("y", "n"),
    # Syllabic nasals (interjections such as 嗯).
    "m": ("m", ""),
    "n": ("n", ""),
    "ng": ("ŋ", ""),
}
_TONES = {"1": "→", "2": "↗", "3": "↓", "4": "↘", "5": ""}
_APICAL_INITIALS = {"z", "c", "s", "zh", "ch", "sh", "r"}  # their "i" is the vowel ɨ

_PUNCTUATION = str.maketrans(
    {
        "，": ",",
        "、": ",",
        "。": ".",
        "．": ".",
        "！": "!",
        "？": "?",
        "：": ":",
        "；": ";",
        "（": "(",
        "）": ")",
        "「": "“",
        "」": "”",
        "『": "“",
        "』": "”",
        "《": "“",
        "》": "”",
        "【": "“",
        "】": "”",
        "～": "—",
    }
)

_DIGITS = "零一二三四五六七八九"
_SMALL_UNITS = ("", "十", "百", "千")
_LARGE_UNITS = ("", "万", "亿", "万亿")


def number_to_hanzi(number: str) -> str:
    """Arabic digits (an integer, optionally with a decimal part) as Chinese numerals."""
    whole, _, fraction = number.partition(".")
    words = _integer_to_hanzi(int(whole)) if whole else "零"
    if fraction:
        words += "点" + "".join(_DIGITS[int(d)] for d in fraction)
    return words


def _integer_to_hanzi(value: int) -> str:
    if value == 0:
        return "零"
    if value >= 10**16:  # beyond 万亿: read digit by digit, as for long codes
        return "".join(_DIGITS[int(d)] for d in str(value))
    groups: list[int] = []
    while value:
        groups.append(value % 10_000)
        value //= 10_000
    out = ""
    zero_pending = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            zero_pending = bool(out)
            continue
        if out and (zero_pending or group < 1000):
            out += "零"
        out += _group_to_hanzi(group) + _LARGE_UNITS[index]
        zero_pending = False
    # 一十X at the very start is read 十X.
    return out[1:] if out.startswith("一十") else out


def _group_to_hanzi(group: int) -> str:
    """1..9999 without a leading 零."""
    digits = f"{group:04d}"
    out = ""
    zero = False
    for position, digit in enumerate(digits):
        value = int(digit)
        if value == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _DIGITS[value] + _SMALL_UNITS[3 - position]
    return out


def normalise(text: str) -> str:
    """Numbers as Chinese numerals and full-width punctuation as the ASCII marks Kokoro reads."""
    text = re.sub(r"\d+(?:\.\d+)?", lambda m: number_to_hanzi(m.group(0)), text)
    return text.translate(_PUNCTUATION)


def syllable_to_kokoro(syllable: str) -> str:
    """One pinyin syllable with a tone digit (e.g. "zhong1") in Kokoro's Mandarin symbols."""
    from pypinyin.contrib.tone_convert import to_finals, to_initials

    tone = syllable[-1] if syllable[-1].isdigit() else "5"
    bare = syllable.rstrip("012345")
    initial = to_initials(bare, strict=True)
    final = to_finals(bare, strict=True)
    if initial in _APICAL_INITIALS and final == "i":
        nucleus, coda = "ɨ", ""
    elif final in _FINALS:
        nucleus, coda = _FINALS[final]
    else:  # not a pinyin syllable: keep the letters so the gap is counted, not hidden
        return bare
    return _INITIALS.get(initial, "") + nucleus + _TONES.get(tone, "") + coda


class MandarinPhonemizer:
    """Mandarin sentences → Kokoro phoneme strings (words separated by spaces)."""

    def sentences(self, text: str) -> list[str]:
        return [p for p in (self.phonemize(s) for s in _split(normalise(text))) if p]

    def phonemize(self, text: str) -> str:
        from pypinyin import Style, lazy_pinyin
        from pypinyin.seg.mmseg import seg

        words: list[str] = []
        for segment in re.findall(r"[\u3400-\u9fff]+|[^\u3400-\u9fff]+", normalise(text)):
            if re.match(r"[\u3400-\u9fff]", segment):
                for word in seg.cut(segment):
                    readings = lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True)
                    words.append("".join(syllable_to_kokoro(r) for r in readings))
            else:
                # Punctuation attaches to the word before it, as in Kokoro's other languages.
                stripped = segment.strip()
                if stripped and words:
                    words[-1] += stripped
                elif stripped:
                    words.append(stripped)
        return " ".join(words).strip()


def _split(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?…])\s*", text) if s.strip()]
