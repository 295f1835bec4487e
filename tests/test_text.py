import pytest

from deepfake_studio.errors import TextError
from deepfake_studio.text import MAX_TEXT_CHARS, check_text, split_first_clause, split_sentences


def test_split_keeps_abbreviations_and_quotes() -> None:
    text = 'Dr. Smith went to Washington. He said "Hi!" Then he left.\n\nA new paragraph? Yes.'
    sentences = split_sentences(text, sentence_pause=0.3, paragraph_pause=0.7)
    assert [s.text for s in sentences] == [
        "Dr. Smith went to Washington.",
        'He said "Hi!"',
        "Then he left.",
        "A new paragraph?",
        "Yes.",
    ]
    assert [s.pause_after for s in sentences] == [0.3, 0.3, 0.7, 0.3, 0.7]


def test_decimal_numbers_do_not_split() -> None:
    assert len(split_sentences("It costs 3.50 dollars today.")) == 1


@pytest.mark.parametrize("bad", ["", "   ", "\n\n", "...!?"])
def test_empty_text_is_rejected(bad: str) -> None:
    with pytest.raises(TextError, match="empty"):
        check_text(bad)


def test_huge_text_is_rejected_with_the_limit() -> None:
    with pytest.raises(TextError, match=f"{MAX_TEXT_CHARS:,}"):
        check_text("word " * (MAX_TEXT_CHARS // 4))


def test_long_first_sentence_is_split_at_a_clause() -> None:
    text = "Once upon a time, in a village by the sea, there lived a girl. She collected shells."
    pieces = split_first_clause(split_sentences(text), max_chars=30)
    assert [p.text for p in pieces] == [
        "Once upon a time,",
        "in a village by the sea, there lived a girl.",
        "She collected shells.",
    ]
    assert pieces[0].pause_after < pieces[1].pause_after
    short = split_sentences("Hello there. General Kenobi.")
    assert split_first_clause(short, max_chars=30) == short
