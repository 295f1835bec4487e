from deepfake_studio.evaluation.asr import normalize_words, word_error_rate


def test_word_error_rate_counts_edits() -> None:
    assert word_error_rate("the cat sat", "the cat sat") == 0.0
    assert word_error_rate("the cat sat", "the bat sat") == 1 / 3
    assert word_error_rate("the cat sat", "the cat") == 1 / 3
    assert word_error_rate("The cat, sat!", "the cat sat") == 0.0


def test_normalisation_maps_small_numbers() -> None:
    assert normalize_words("I have 2 dogs.") == ["i", "have", "two", "dogs"]
