"""Text front end of the SV2TTS synthesizer: English cleaners and the 66-symbol alphabet.

The published Real-Time-Voice-Cloning synthesizer reads characters, not phonemes. Its input
is the text after "english_cleaners" (ASCII folding, lower-casing, numbers and
abbreviations spelled out, whitespace collapsed), mapped to ids and closed by an
end-of-sequence id:

    text_to_sequence("Dr. Smith paid $3.50.")
    # "doctor smith paid three dollars, fifty cents." -> [ids..., EOS_ID]

The number reading follows RTVC's rules (years 1001-2999 read in pairs, "$3.50" as dollars
and cents, ordinals as words) with a few deliberate fixes, listed where they happen.
"""

from __future__ import annotations

import re
import unicodedata

PAD = "_"
EOS = "~"
_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!'\"(),-.:;? "
SYMBOLS: tuple[str, ...] = (PAD, EOS, *_CHARACTERS)  # order = ids of the published model
SYMBOL_TO_ID: dict[str, int] = {s: i for i, s in enumerate(SYMBOLS)}
PAD_ID, EOS_ID = SYMBOL_TO_ID[PAD], SYMBOL_TO_ID[EOS]

# --- numbers → words -------------------------------------------------------------------------

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]  # fmt: skip
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [
    "thousand", "million", "billion", "trillion", "quadrillion", "quintillion", "sextillion",
    "septillion", "octillion", "nonillion", "decillion",
]  # fmt: skip
_IRREGULAR_ORDINALS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth",
    "eight": "eighth", "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip


def _digits(text: str) -> str:
    """Digit by digit: "205" → "two zero five"."""
    return " ".join(_ONES[int(d)] for d in text)


def _below_thousand(n: int) -> str:
    """0 < n < 1000 in words, American style (no "and"): 342 → "three hundred forty-two"."""
    hundreds, rest = divmod(n, 100)
    words = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    elif rest:
        words.append(_ONES[rest])
    return " ".join(words)


def number_to_words(n: int) -> str:
    """Cardinal in words; groups of thousands are separated by commas, as inflect writes them.

    1234567 → "one million, two hundred thirty-four thousand, five hundred sixty-seven".
    Numbers past the decillions are read digit by digit.
    """
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    groups: list[int] = []  # least significant first
    rest = n
    while rest:
        rest, group = divmod(rest, 1000)
        groups.append(group)
    if len(groups) > len(_SCALES) + 1:
        return _digits(str(n))
    parts = [
        _below_thousand(group) + (f" {_SCALES[i - 1]}" if i else "")
        for i, group in reversed(list(enumerate(groups)))
        if group
    ]
    return ", ".join(parts)


def ordinal_to_words(n: int) -> str:
    """21 → "twenty-first", 100 → "one hundredth", 12 → "twelfth"."""
    words = number_to_words(n)
    head, last = re.match(r"(.*?)([a-z]+)$", words).groups()  # type: ignore[union-attr]
    if last in _IRREGULAR_ORDINALS:
        last = _IRREGULAR_ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + last


def year_to_words(n: int) -> str:
    """RTVC's reading of 1001..2999, years style: 1999 "nineteen ninety-nine", 1905
    "nineteen oh five", 1900 "nineteen hundred", 2000-2009 "two thousand (n)"."""
    if n == 2000:
        return "two thousand"
    if 2000 < n < 2010:
        return "two thousand " + _ONES[n % 100]
    century, rest = divmod(n, 100)
    if rest == 0:
        return f"{number_to_words(century)} hundred"
    tail = f"oh {_ONES[rest]}" if rest < 10 else number_to_words(rest)
    return f"{number_to_words(century)} {tail}"


def _cardinal(match: re.Match[str]) -> str:
    n = int(match.group(0))
    return year_to_words(n) if 1000 < n < 3000 else number_to_words(n)


def _ordinal(match: re.Match[str]) -> str:
    return ordinal_to_words(int(match.group(1)))


def _decimal(match: re.Match[str]) -> str:
    # Deliberate fix: RTVC reads "3.14" as "three point fourteen"; English reads the digits.
    return f"{match.group(1)} point {_digits(match.group(2))}"


def _unit(amount: int, singular: str, plural: str) -> str:
    return f"{amount} {singular if amount == 1 else plural}"


def _money(amount: str, units: tuple[str, str, str, str]) -> str:
    """Amount in units: "3.50", ("dollar", "dollars", "cent", "cents") → "3 dollars, 50 cents"."""
    whole, _, fraction = amount.partition(".")
    if "." in fraction:  # "1.2.3": no sensible reading; keep it and name the unit
        return f"{amount} {units[1]}"
    main = int(whole) if whole else 0
    # Deliberate fix: RTVC reads "$3.5" as "5 cents"; a one-digit fraction is tenths.
    sub = int(fraction.ljust(2, "0")[:2]) if fraction else 0
    if main and sub:
        return f"{_unit(main, *units[:2])}, {_unit(sub, *units[2:])}"
    if sub:
        return _unit(sub, *units[2:])
    return _unit(main, *units[:2]) if main else f"zero {units[1]}"


def _dollars(match: re.Match[str]) -> str:
    return _money(match.group(1), ("dollar", "dollars", "cent", "cents"))


def _pounds(match: re.Match[str]) -> str:
    # Deliberate fix: RTVC's unidecode turned "£" into "PS" before numbers were read.
    return _money(match.group(1), ("pound", "pounds", "penny", "pence"))


_THOUSANDS_COMMA_RE = re.compile(r"([0-9][0-9,]+[0-9])")
_POUNDS_RE = re.compile(r"£([0-9.]*[0-9]+)")
_DOLLARS_RE = re.compile(r"\$([0-9.]*[0-9]+)")
_DECIMAL_RE = re.compile(r"([0-9]+)\.([0-9]+)")
_ORDINAL_RE = re.compile(r"([0-9]+)(?:st|nd|rd|th)\b")
_NUMBER_RE = re.compile(r"[0-9]+")
_PERCENT_RE = re.compile(r"([0-9])\s*%")


def normalize_numbers(text: str) -> str:
    """Spell out amounts, decimals, ordinals and numbers (input already lower-cased)."""
    text = _THOUSANDS_COMMA_RE.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _POUNDS_RE.sub(_pounds, text)
    text = _DOLLARS_RE.sub(_dollars, text)
    text = _PERCENT_RE.sub(r"\1 percent", text)  # addition: RTVC silently dropped "%"
    text = _DECIMAL_RE.sub(_decimal, text)
    text = _ORDINAL_RE.sub(_ordinal, text)
    return _NUMBER_RE.sub(_cardinal, text)


# --- the cleaner pipeline ----------------------------------------------------------------------

_ABBREVIATIONS = [
    (re.compile(rf"\b{short}\.", re.IGNORECASE), long)
    for short, long in [
        ("mrs", "misess"),  # RTVC's spelling: reads as the spoken "missus"
        ("mr", "mister"),
        ("dr", "doctor"),
        ("st", "saint"),
        ("co", "company"),
        ("jr", "junior"),
        ("maj", "major"),
        ("gen", "general"),
        ("drs", "doctors"),
        ("rev", "reverend"),
        ("lt", "lieutenant"),
        ("hon", "honorable"),
        ("sgt", "sergeant"),
        ("capt", "captain"),
        ("esq", "esquire"),
        ("ltd", "limited"),
        ("col", "colonel"),
        ("ft", "fort"),
        # Additions to RTVC's list (otherwise spelt out letter by letter by the model).
        ("prof", "professor"),
        ("mt", "mount"),
        ("vs", "versus"),
    ]
]

# Typographic characters NFKD does not fold to ASCII; what unidecode would give for them.
_ASCII_FOLD = str.maketrans({
    "‘": "'", "’": "'", "‚": "'", "′": "'", "“": '"', "”": '"', "„": '"', "″": '"',
    "–": "-", "‑": "-", "—": " - ", "−": "-", "…": "...", "«": '"', "»": '"',
    "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
    "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "&": " and ",
})  # fmt: skip


def to_ascii(text: str) -> str:
    """Fold accents and typographic punctuation to ASCII ("café — “ok”" → 'cafe - "ok"').

    Replaces RTVC's `unidecode` for the Latin text the model can read; other scripts are
    dropped (the model has no symbols for them anyway). "£" is kept for `normalize_numbers`.
    """
    text = unicodedata.normalize("NFKD", text.translate(_ASCII_FOLD))
    return "".join(ch for ch in text if ch.isascii() or ch == "£")


def english_cleaners(text: str) -> str:
    """RTVC's "english_cleaners": ASCII, lower case, numbers, abbreviations, whitespace."""
    text = to_ascii(text).lower()
    text = normalize_numbers(text)
    for pattern, replacement in _ABBREVIATIONS:
        text = pattern.sub(replacement, text)
    return re.sub(r"\s+", " ", text).strip()


def symbols_to_ids(cleaned: str) -> list[int]:
    """Ids of the characters the model knows; others (and the pad/EOS marks) are skipped."""
    return [SYMBOL_TO_ID[ch] for ch in cleaned if ch in SYMBOL_TO_ID and ch not in (PAD, EOS)]


def text_to_sequence(text: str) -> list[int]:
    """Raw text → cleaned → ids, ending with EOS_ID (the model was trained to expect it)."""
    return [*symbols_to_ids(english_cleaners(text)), EOS_ID]


def sequence_to_text(ids: list[int]) -> str:
    """Ids back to characters (EOS shown as "~"); for debugging."""
    return "".join(SYMBOLS[i] for i in ids if 0 <= i < len(SYMBOLS))
