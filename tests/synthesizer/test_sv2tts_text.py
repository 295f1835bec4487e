"""The SV2TTS text front end: RTVC's 66 symbols and English cleaners, written in the project."""

from __future__ import annotations

import pytest

from deepfake_studio.synthesizer.sv2tts_text import (
    EOS_ID,
    SYMBOLS,
    english_cleaners,
    number_to_words,
    ordinal_to_words,
    sequence_to_text,
    text_to_sequence,
)


def test_the_symbol_table_is_rtvcs() -> None:
    # pad, EOS, A-Z, a-z, then !'"(),-.:;? and space: ids are positions in the published model.
    assert len(SYMBOLS) == 66
    assert (SYMBOLS[0], SYMBOLS[1], SYMBOLS[2], SYMBOLS[27], SYMBOLS[28]) == (
        "_",
        "~",
        "A",
        "Z",
        "a",
    )
    assert "".join(SYMBOLS[54:]) == "!'\"(),-.:;? "
    assert EOS_ID == 1


def test_the_brief_sentence() -> None:
    assert english_cleaners("Dr. Smith paid $3.50 on the 2nd of May 1999") == (
        "doctor smith paid three dollars, fifty cents on the second of may nineteen ninety-nine"
    )


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Mr. and Mrs. Brown met Prof. Lee at St. Paul's, Ft. Worth.",
         "mister and misess brown met professor lee at saint paul's, fort worth."),
        ("It cost $1,000,000.", "it cost one million dollars."),
        ("$1 and $0.01 and $2.5", "one dollar and one cent and two dollars, fifty cents"),
        ("£3.50 each", "three pounds, fifty pence each"),
        ("pi is 3.14", "pi is three point one four"),
        ("the 1st, 3rd, 11th, 12th, 21st and 100th", "the first, third, eleventh, twelfth, "
         "twenty-first and one hundredth"),
        ("in 1905, 1900, 2000, 2008 and 2019", "in nineteen oh five, nineteen hundred, "
         "two thousand, two thousand eight and twenty nineteen"),
        ("1234567", "one million, two hundred thirty-four thousand, five hundred sixty-seven"),
        ("0 7 13 40 99 101 3000", "zero seven thirteen forty ninety-nine one hundred one "
         "three thousand"),
        ("50% off", "fifty percent off"),
        ("  Café\t\n “quoted” — done…  ", 'cafe "quoted" - done...'),
    ],
)  # fmt: skip
def test_cleaners(text: str, spoken: str) -> None:
    assert english_cleaners(text) == spoken


def test_number_words() -> None:
    assert number_to_words(-15) == "minus fifteen"
    assert number_to_words(1_000_001) == "one million, one"
    assert ordinal_to_words(40) == "fortieth"
    assert ordinal_to_words(1_000_000) == "one millionth"


def test_text_to_ids_ends_with_eos_and_drops_unknown_characters() -> None:
    ids = text_to_sequence("Hi, #you!")
    assert ids[-1] == EOS_ID
    assert sequence_to_text(ids) == "hi, you!~"
    assert ids[:3] == [35, 36, 59]  # h, i, comma
    assert text_to_sequence("") == [EOS_ID]
