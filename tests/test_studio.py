"""The Studio facade end to end: real models, real audio, transcripts checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepfake_studio import Audio, Studio, StudioConfig, load_audio, save_audio
from deepfake_studio.errors import AudioError, EngineError, StudioError, TextError, VoiceError
from deepfake_studio.evaluation.asr import word_error_rate
from deepfake_studio.synthesizer.rate import MIN_SPEED

SENTENCE = "The museum opens at nine and closes late on Thursday evenings."


@pytest.fixture(scope="module")
def lj_voice(studio: Studio, example_reference: Path):  # type: ignore[no-untyped-def]
    return studio.enroll(example_reference, "LJ", "Public-domain LJ Speech reader, test use.")


@pytest.mark.slow
def test_clone_from_reference_speaks_the_text(
    studio: Studio, example_reference: Path, transcriber, lj_voice
) -> None:  # type: ignore[no-untyped-def]
    audio = studio.clone(SENTENCE, voice=lj_voice)
    assert audio.sample_rate == 24_000
    assert 2.5 < audio.duration < 9.0
    assert float(np.sqrt(np.mean(audio.samples**2))) > 0.03
    assert (
        word_error_rate(SENTENCE, transcriber.transcribe(audio.samples, audio.sample_rate)) <= 0.15
    )

    # Whether the fitted voice is closer to the speaker: tests/synthesizer/test_voice_fit.py
    # (the shipped FitConfig, an independent judge, held-out sentences, margins).


def test_enrolled_voice_is_stored_with_consent_and_reused(studio: Studio, lj_voice) -> None:  # type: ignore[no-untyped-def]
    stored = studio.voice("lj")
    assert stored.consent == "Public-domain LJ Speech reader, test use."
    assert stored.conditioning.arrays["style"].shape == (510, 256)
    assert len(stored.source_sha256) == 64
    assert abs(float(np.linalg.norm(stored.embedding)) - 1.0) < 1e-4
    audio = studio.clone("Good morning.", voice="LJ")
    assert 0.5 < audio.duration < 3.0


def test_speak_streams_one_piece_per_sentence(studio: Studio, lj_voice) -> None:  # type: ignore[no-untyped-def]
    pieces = list(
        studio.speak("First sentence here. Second one now.\n\nA new paragraph.", lj_voice)
    )
    assert len(pieces) == 3
    assert all(p.duration > 0.5 for p in pieces)


def test_a_long_sentence_is_spoken_whole(studio: Studio, lj_voice, example_reference) -> None:  # type: ignore[no-untyped-def]
    """A clip keeps a sentence longer than `first_chunk_chars` in one piece, as the engine
    speaks it (a cut made for streaming once put a pause before its last word: the clip was
    0.4-0.8 s longer than the sentence). Only a sentence-by-sentence stream (an engine that
    cannot stream inside a sentence) still cuts it."""
    assert len(SENTENCE) > studio.config.first_chunk_chars and "," not in SENTENCE
    assert len(list(studio.speak(SENTENCE, lj_voice))) == 1
    whole = studio.engine("kokoro").synthesize(SENTENCE, lj_voice.conditioning)
    clip = studio.clone(SENTENCE, voice=lj_voice)
    assert abs(clip.duration - len(whole) / clip.sample_rate) < 0.02
    piper = studio.create_voice(example_reference, engine="piper")
    streamed = list(studio.speak_stream(SENTENCE, piper))
    assert [p.text for p in streamed] == [SENTENCE.rsplit(" ", 1)[0], "evenings."]


def test_piper_voice_follows_only_the_rate(studio: Studio, example_reference: Path) -> None:
    voice = studio.create_voice(example_reference, engine="piper")
    assert voice.engine == "piper"
    # LJ reads at ~4.0 syllables/s, Piper's voice at ~5.6 (and its rate goes as speed^0.6):
    # the voice must be slowed well below 1, not pinned to a clip limit (tests/synthesizer/
    # test_rate.py checks the rate matching itself with time-stretched references).
    assert MIN_SPEED < voice.conditioning.speed < 0.8, voice.conditioning.speed
    audio = studio.clone("Short and clear.", voice=voice)
    assert audio.sample_rate == 22_050 and audio.duration > 0.5


# -- bad input -------------------------------------------------------------------------------
def _write(path: Path, samples: np.ndarray, rate: int = 16_000) -> Path:
    return save_audio(Audio(samples.astype(np.float32), rate), path)


def test_silent_reference_is_refused(studio: Studio, tmp_path: Path) -> None:
    path = _write(tmp_path / "silence.wav", np.zeros(16_000 * 4))
    with pytest.raises(AudioError, match="no speech"):
        studio.load_reference(path)


def test_too_short_reference_is_refused(
    studio: Studio, tmp_path: Path, example_reference: Path
) -> None:
    clip = load_audio(example_reference, 16_000)
    short = np.concatenate([clip.samples[: int(1.2 * 16_000)], np.zeros(16_000 * 2, np.float32)])
    with pytest.raises(AudioError, match="at least 2 s"):
        studio.load_reference(_write(tmp_path / "short.wav", short))


def test_corrupt_and_missing_references_are_refused(studio: Studio, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 10)
    with pytest.raises(AudioError):
        studio.load_reference(corrupt)
    with pytest.raises(AudioError, match="not found|does not exist|no such"):
        studio.load_reference(tmp_path / "missing.wav")


def test_bad_text_fails_before_any_analysis(studio: Studio, tmp_path: Path) -> None:
    missing = tmp_path / "never-read.wav"
    with pytest.raises(TextError, match="empty"):
        studio.clone("   ", reference=missing)
    with pytest.raises(TextError, match="limit"):
        studio.clone("word " * 10_000, reference=missing)


def test_unknown_voice_engine_and_mismatch(studio: Studio, lj_voice) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(VoiceError, match="unknown voice"):
        studio.clone("Hello.", voice="nobody-here")
    with pytest.raises(EngineError, match="unknown engine"):
        studio.clone("Hello.", voice="LJ", engine="tacotron9")
    with pytest.raises(EngineError, match="enrolled for the kokoro engine"):
        studio.clone("Hello.", voice="LJ", engine="piper")
    with pytest.raises(EngineError, match="speed"):
        studio.clone("Hello.", voice="LJ", speed=5.0)


def test_enroll_requires_consent_and_a_fresh_name(
    studio: Studio, example_reference: Path, lj_voice
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(VoiceError, match="consent"):
        studio.enroll(example_reference, "someone", "  ")
    with pytest.raises(VoiceError, match="already exists"):
        studio.enroll(example_reference, "lj", "again")


def test_models_load_once_under_concurrent_first_use(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    fresh = Studio(StudioConfig(data_dir=tmp_path))
    assert fresh.loaded_models() == []
    with ThreadPoolExecutor(4) as pool:
        engines = list(pool.map(lambda _: fresh.engine("piper"), range(4)))
    assert all(engine is engines[0] for engine in engines)
    assert fresh.loaded_models() == ["piper"]
    assert not fresh.has_voice("nobody")


def test_consent_checks_and_kokoro_enrollment_share_one_whisper(tmp_path: Path) -> None:
    # Whisper-base is ~300 MB: a studio that checks a spoken consent and fits a voice in one
    # process must not hold two copies.
    fresh = Studio(StudioConfig(data_dir=tmp_path))
    kokoro = fresh.engine("kokoro")
    assert "whisper" not in fresh.loaded_models()
    whisper = fresh.transcriber  # loads it, as a consent check would
    assert "whisper" in fresh.loaded_models()
    assert kokoro.transcriber.model is whisper  # type: ignore[attr-defined]


# -- saving: every generated file is signed, whatever the path --------------------------------
def test_every_way_of_saving_a_clone_signs_it_and_no_stale_record_survives(
    studio: Studio, example_reference: Path, tmp_path: Path
) -> None:
    from deepfake_studio.provenance import sidecar_path, verify

    consent = "Public-domain LJ Speech reader, test use."
    with pytest.raises(VoiceError, match="consent statement"):
        studio.clone("Hello.", reference=example_reference, engine="piper")
    clip = studio.clone(
        "Hello there.", reference=example_reference, engine="piper", consent=consent
    )
    for path in (tmp_path / "save.wav", tmp_path / "save.flac"):
        written, record = studio.save(clip, path)  # the one obvious way
        report = verify(written, data_dir=studio.data_dir)
        assert report.ok, report.failures
        signed = json.loads(record.read_text())
        assert signed["consent"]["statement"] == consent and signed["engine"] == "piper"
        assert signed["watermark"]["applied"] is True
        # The studio embeds both layers and its record names both.
        assert signed["watermark"]["layers"] == list(studio.watermarker.methods)
        assert signed["watermark"]["layers"] == [
            "perthnet-implicit",
            "keyed-spectral-modulation-v2",
        ]
    plain = save_audio(clip, tmp_path / "plain.wav")  # the low-level writer signs it too
    assert verify(plain, data_dir=studio.data_dir).ok
    plain_record = json.loads(sidecar_path(plain).read_text())
    assert plain_record["watermark"]["layers"] == list(studio.watermarker.methods)
    # Overwriting with audio the studio does not vouch for removes the old record.
    edited = clip.with_samples(clip.samples * 0.5)
    save_audio(edited, plain)
    assert not sidecar_path(plain).exists()
    with pytest.raises(StudioError, match="text and engine"):
        studio.save(edited, tmp_path / "edited.wav")
    _, record = studio.save(edited, tmp_path / "edited.wav", text="Hello there.", engine="piper")
    assert verify(tmp_path / "edited.wav", data_dir=studio.data_dir).ok
    assert json.loads(record.read_text())["watermark"]["applied"] is True  # marked on saving


def test_the_watermark_layers_are_known_before_the_watermarker_is_built(tmp_path: Path) -> None:
    # A server signing what workers computed names the layers without building a watermarker.
    fresh = Studio(StudioConfig(data_dir=tmp_path))
    before = fresh.watermark_methods
    assert fresh.loaded_models() == []
    assert before == fresh.watermarker.methods == fresh.watermark_methods
    assert before == ("perthnet-implicit", "keyed-spectral-modulation-v2")
