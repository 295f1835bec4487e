from deepfake_studio.synthesizer.kokoro import KokoroEngine
from deepfake_studio.synthesizer.phonemes import EnglishPhonemizer, to_kokoro_phonemes


def test_espeak_gives_one_ipa_string_per_sentence() -> None:
    sentences = EnglishPhonemizer().sentences("Hello world. How are you?")
    assert len(sentences) == 2
    assert sentences[0].startswith("h") and "w" in sentences[0]


def test_kokoro_conventions_use_single_symbol_diphthongs() -> None:
    assert to_kokoro_phonemes("hˈoʊm") == "hˈOm"
    assert to_kokoro_phonemes("dʒˈʌdʒ") == "ʤˈʌʤ"
    assert "ː" not in to_kokoro_phonemes("fˈɑːðɚ")


def test_syllabic_consonants_become_a_reduced_vowel() -> None:
    # espeak writes "button" with U+0329 under the n; Kokoro has no such symbol.
    assert to_kokoro_phonemes("bˈʌʔn̩") == "bˈʌʔᵊn"


def test_every_kokoro_phoneme_is_in_the_vocabulary(kokoro_engine: KokoroEngine) -> None:
    text = (
        "The quick brown fox jumps over the lazy dog; judge Joy's 42 oily boats at 3 p.m."
        " A button on the little bottle."
    )
    for chunk in kokoro_engine.phonemes(text):
        unknown = {p for p in chunk if p not in kokoro_engine._vocab}
        assert not unknown, unknown
