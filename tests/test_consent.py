"""Consent proven by voice (issue 22 item 3): each check passing and failing on real speech.

VCTK speakers read the same sentences ("Six spoons of fresh snow peas, five thick slabs of blue
cheese, and maybe a snack for her brother Bob."), so four of its words make a challenge that a
real recording says: p225 reading it is the speaker consenting; p228 (another woman) reading it
is a different speaker saying the phrase; p225's other sentences are replays without it.
Real Whisper-base, GE2E, watermark and detector throughout (the session studio's models).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deepfake_studio import Audio, Studio
from deepfake_studio.audio import load_audio, save_audio
from deepfake_studio.consent import (
    CHALLENGE_WORDS,
    SENTENCE,
    Challenge,
    ChallengeStore,
    ConsentChecker,
    ConsentError,
    new_challenge,
    words_heard_in_order,
)
from tests.conftest import RunHere
from tests.test_cli import assert_one_line_error

SPOKEN_WORDS = ("spoons", "snow", "cheese", "brother")  # said in order in *_003


def _challenge(name: str = "Ana", words: tuple[str, ...] = SPOKEN_WORDS) -> Challenge:
    now = datetime.now(UTC).replace(microsecond=0)
    return Challenge(
        id=new_challenge(name).id,
        name=name,
        words=words,
        issued=now.isoformat(),
        expires=(now + timedelta(hours=1)).isoformat(),
    )


@pytest.fixture(scope="module")
def vctk(speech_dir: Path) -> Path:
    return speech_dir / "vctk"


@pytest.fixture(scope="module")
def checker(studio: Studio, transcriber) -> ConsentChecker:  # type: ignore[no-untyped-def]
    return ConsentChecker(
        transcriber=transcriber,
        encoder=studio.encoder,
        detector=studio.detector,
        watermarker=studio.watermarker,
        config=studio.config.consent,
    )


@pytest.fixture(scope="module")
def consenting(vctk: Path) -> Path:
    return vctk / "VCTK_p225" / "p225_003.flac"


@pytest.fixture(scope="module")
def reference(vctk: Path) -> Path:
    return vctk / "VCTK_p225" / "p225_011.flac"


# -- the three checks, each passing and failing --------------------------------------------------
def test_the_speaker_reading_the_phrase_passes_every_check(
    checker: ConsentChecker, consenting: Path, reference: Path
) -> None:
    evidence = checker.verify(_challenge(), consenting, reference)
    assert evidence.accepted and all(evidence.checks.values())
    assert evidence.words_heard == 4 and "cheese" in evidence.transcript.lower()
    assert evidence.speaker_similarity >= evidence.speaker_threshold
    assert evidence.watermark_score < evidence.watermark_threshold
    assert evidence.detector_probability < evidence.detector_threshold
    assert evidence.recording_sha256 == hashlib.sha256(consenting.read_bytes()).hexdigest()
    assert evidence.reference_sha256 == hashlib.sha256(reference.read_bytes()).hexdigest()
    assert evidence.failure() == ""


def test_a_replayed_recording_without_the_phrase_fails_the_phrase_check(
    checker: ConsentChecker, vctk: Path, reference: Path
) -> None:
    replay = vctk / "VCTK_p225" / "p225_008.flac"  # the same speaker, another sentence
    evidence = checker.check(_challenge(), replay, reference)
    assert evidence.checks == {"phrase": False, "speaker": True, "not_synthetic": True}
    assert evidence.words_heard == 0
    with pytest.raises(ConsentError) as refused:
        checker.verify(_challenge(), replay, reference)
    message = str(refused.value)
    assert "\n" not in message and "phrase check failed" in message
    assert "speaker check" not in message and "synthetic" not in message


def test_another_speaker_reading_the_phrase_fails_the_speaker_check(
    checker: ConsentChecker, vctk: Path, reference: Path
) -> None:
    impostor = vctk / "VCTK_p228" / "p228_003.flac"  # another woman, the same sentence
    evidence = checker.check(_challenge(), impostor, reference)
    assert evidence.checks == {"phrase": True, "speaker": False, "not_synthetic": True}
    assert evidence.speaker_similarity < evidence.speaker_threshold
    assert evidence.failure().startswith("consent recording refused: speaker check failed")


def test_a_recording_with_the_studio_watermark_fails_the_synthetic_check(
    checker: ConsentChecker, studio: Studio, consenting: Path, reference: Path
) -> None:
    marked = studio.watermarker.embed(load_audio(consenting))
    evidence = checker.check(_challenge(), marked, reference)
    assert evidence.checks == {"phrase": True, "speaker": True, "not_synthetic": False}
    assert evidence.watermark_score >= evidence.watermark_threshold
    assert "carries the studio watermark" in evidence.failure()


def test_synthetic_speech_of_the_phrase_fails_the_detector(
    checker: ConsentChecker,
    piper_engine,
    reference: Path,  # type: ignore[no-untyped-def]
) -> None:
    text = (
        "I agree that my voice may be cloned. Six spoons of fresh snow peas, five thick slabs "
        "of blue cheese for my brother."
    )  # about 5 s: a consent recording needs 4 s of speech
    spoken = piper_engine.synthesize(text, piper_engine.default_conditioning())
    fake = Audio(spoken, piper_engine.sample_rate)  # not watermarked: only the detector can tell
    evidence = checker.check(_challenge(), fake, reference)
    assert evidence.checks["phrase"]  # the words are there
    assert evidence.watermark_score < evidence.watermark_threshold
    assert evidence.detector_probability >= evidence.detector_threshold
    assert not evidence.checks["not_synthetic"] and not evidence.accepted
    assert "the detector calls it synthetic" in evidence.failure()


def test_the_detector_bar_for_consent_is_the_consent_configs(
    checker: ConsentChecker, consenting: Path, reference: Path
) -> None:
    # Not the detector's own label: consent sets its bar (chosen for at most 1 % of real
    # train speakers refused). A bar at zero refuses the speaker's own real recording.
    assert checker.config.detector_threshold > checker.detector.threshold
    strict = replace(checker, config=replace(checker.config, detector_threshold=1e-6))
    evidence = strict.check(_challenge(), consenting, reference)
    assert evidence.detector_threshold == 1e-6
    assert evidence.checks == {"phrase": True, "speaker": True, "not_synthetic": False}


def test_a_recording_with_too_little_speech_is_refused(
    checker: ConsentChecker, consenting: Path, reference: Path
) -> None:
    clip = load_audio(consenting)
    with pytest.raises(ConsentError, match="s of speech"):
        checker.check(_challenge(), clip.with_samples(clip.samples[: clip.sample_rate]), reference)


# -- phrases and challenges (no models) ---------------------------------------------------------
def test_words_are_matched_in_order_plural_or_not() -> None:
    heard = "Six spoons of fresh snow peas, and her brothers' cheese."
    assert words_heard_in_order(("spoon", "snow", "brother", "cheese"), heard) == 4
    assert words_heard_in_order(("snow", "spoons"), heard) == 1  # out of order
    assert words_heard_in_order(("tiger", "lemon"), heard) == 0


def test_a_challenge_is_four_listed_words_in_a_sentence_with_the_name() -> None:
    challenges = [new_challenge("Ana") for _ in range(50)]
    for challenge in challenges:
        assert len(set(challenge.words)) == 4 and set(challenge.words) <= set(CHALLENGE_WORDS)
        assert challenge.sentence.startswith("I, Ana, agree that Deepfake Studio may clone my")
        assert challenge.sentence.lower().endswith(" ".join(challenge.words) + ".")
    assert len({c.words for c in challenges}) == 50  # random, not a fixed phrase
    assert len(set(CHALLENGE_WORDS)) == len(CHALLENGE_WORDS) >= 90
    assert "{phrase}" in SENTENCE


def test_a_challenge_is_used_once_for_its_name_before_it_expires(tmp_path: Path) -> None:
    store = ChallengeStore(tmp_path)
    first = store.issue("Ana")
    newest = store.issue("Ana")
    assert store.take(None, "ana") == newest  # the newest open one for the name
    with pytest.raises(ConsentError, match="already used"):
        store.take(newest.id, "Ana")
    with pytest.raises(ConsentError, match="issued for 'Ana', not 'Bob'"):
        store.take(first.id, "Bob")
    with pytest.raises(ConsentError, match="already used"):  # a failed take used it up too
        store.take(first.id, "Ana")
    old = _challenge()
    store.add(Challenge(old.id, "Ana", old.words, old.issued, old.issued))  # expires at once
    with pytest.raises(ConsentError, match="no open consent phrase"):
        store.take(None, "Ana")
    with pytest.raises(ConsentError, match="unknown consent challenge"):
        store.take("../../etc/passwd", "Ana")


# -- the Studio, the CLI ----------------------------------------------------------------------
def test_enroll_keeps_the_evidence_and_records_made_with_the_voice_carry_it(
    studio: Studio, consenting: Path, reference: Path, tmp_path: Path
) -> None:
    challenge = _challenge("Consenting Ana")
    voice = studio.enroll(
        reference,
        "Consenting Ana",
        engine="piper",
        overwrite=True,
        consent_audio=consenting,
        challenge=challenge,
    )
    assert voice.consent == challenge.sentence  # the sentence read is the statement
    stored = studio.voice("Consenting Ana").consent_evidence
    assert stored is not None and stored["accepted"] and stored["words_heard"] == 4
    assert stored["challenge"]["words"] == list(SPOKEN_WORDS)
    out = tmp_path / "said.wav"
    studio.save(studio.clone("Proven by voice.", voice=voice), out)
    record = json.loads(Path(f"{out}.provenance.json").read_text())
    assert record["consent"]["evidence"]["recording_sha256"] == stored["recording_sha256"]
    assert record["consent"]["evidence"]["checks"]["speaker"] is True


def test_enroll_refuses_a_failed_recording_and_stores_nothing(
    studio: Studio, vctk: Path, reference: Path
) -> None:
    challenge = studio.consent_phrase("Replayed Ana")  # random words: the replay lacks them
    with pytest.raises(ConsentError, match="phrase check failed"):
        studio.enroll(
            reference,
            "Replayed Ana",
            engine="piper",
            consent_audio=vctk / "VCTK_p225" / "p225_008.flac",
        )
    assert not studio.has_voice("Replayed Ana")
    with pytest.raises(ConsentError, match="already used"):
        studio.challenges.take(challenge.id, "Replayed Ana")


@pytest.mark.slow
def test_cli_prints_a_phrase_and_enroll_checks_the_recording(
    tmp_path: Path, consenting: Path, reference: Path, run_here: RunHere
) -> None:
    # The command's entry point in this process (`run_here`): the same code from argv to exit
    # code and output, without ~4 s of interpreter start-up per call.
    phrase = run_here("consent", "phrase", "--name", "Ana", home=tmp_path)
    assert phrase.returncode == 0, phrase.stderr
    sentence = phrase.stdout.strip()
    assert sentence.startswith("I, Ana, agree that Deepfake Studio may clone my voice.")
    assert sum(w in sentence.lower() for w in CHALLENGE_WORDS) >= 4 and "challenge" in phrase.stderr

    # The recording does not say that random phrase: refused in one line, nothing stored.
    refused = run_here(
        "enroll", reference, "--name", "Ana", "--engine", "piper",
        "--consent-audio", consenting, home=tmp_path,
    )  # fmt: skip
    assert_one_line_error(refused, "phrase check failed")
    assert not (tmp_path / "voices" / "ana").exists()

    # A challenge whose words the recording says (as if it had been issued): enrolled.
    ChallengeStore(tmp_path).add(_challenge("Ana"))
    wav = tmp_path / "consent.wav"
    save_audio(load_audio(consenting), wav)
    enrolled = run_here(
        "enroll", reference, "--name", "Ana", "--engine", "piper",
        "--consent-audio", wav, home=tmp_path,
    )  # fmt: skip
    assert enrolled.returncode == 0, enrolled.stderr
    assert "consent proven by voice: 4 of 4 phrase words heard" in enrolled.stdout
    voice = json.loads((tmp_path / "voices" / "ana" / "voice.json").read_text())
    assert (
        voice["consent_evidence"]["recording_sha256"]
        == hashlib.sha256(wav.read_bytes()).hexdigest()
    )


def test_enroll_refuses_an_expired_or_foreign_challenge_before_any_check(
    studio: Studio, consenting: Path, reference: Path
) -> None:
    fresh = _challenge("Ana")
    expired = Challenge(fresh.id, "Ana", fresh.words, fresh.issued, fresh.issued)
    for challenge, why in ((expired, "expired"), (fresh, "issued for 'Ana'")):
        with pytest.raises(ConsentError, match=why):
            studio.enroll(
                reference,
                "Bob" if challenge is fresh else "Ana",
                engine="piper",
                consent_audio=consenting,
                challenge=challenge,
            )
