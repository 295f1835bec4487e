"""Consent proven by voice in the web studio (issue 22 item 3): the backend's checks, and the
Voices tab in a real browser (phrase button, recording upload, one-line refusal).

Real VCTK speech (see tests/test_consent.py): p225 reads "Six spoons of fresh snow peas, five
thick slabs of blue cheese, ...", so a challenge of four of those words is one she really said.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import import_or_fail_in_ci

import_or_fail_in_ci("gradio", "the server extra")

from deepfake_studio import Studio  # noqa: E402
from deepfake_studio.consent import Challenge, ConsentError, new_challenge  # noqa: E402
from deepfake_studio.service.api import create_app  # noqa: E402
from deepfake_studio.service.runner import execute_job  # noqa: E402
from deepfake_studio.service.store import JobStore  # noqa: E402
from deepfake_studio.service.web import StudioWeb  # noqa: E402
from tests.service import test_web  # noqa: E402
from tests.service.test_web import _open, _Server, _upload, _wait_for_text  # noqa: E402

# The browser fixtures of the web studio's tests (one Chromium per module).
browser = test_web.browser
context = test_web.context


class _InlineRunner:
    """Runs each submitted job at once, as a worker would."""

    def __init__(self, studio: Studio, store: JobStore) -> None:
        self.studio, self.store = studio, store

    def submit(self, job_id: str) -> None:
        execute_job(self.studio, self.store, job_id)

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def queue_depth(self) -> int:
        return 0


@pytest.fixture(scope="module")
def p225(speech_dir: Path) -> Path:
    return speech_dir / "vctk" / "VCTK_p225"


@pytest.fixture(scope="module")
def web(studio: Studio) -> StudioWeb:
    store = JobStore(studio.data_dir)
    return StudioWeb(studio, store, _InlineRunner(studio, store), voice_consent=True)


def test_the_backend_needs_a_recording_and_checks_it(
    web: StudioWeb, studio: Studio, p225: Path
) -> None:
    reference = str(p225 / "p225_011.flac")
    with pytest.raises(ConsentError, match="needs consent proven by voice"):
        web.submit_enroll(reference, "Web Typed", "I agree.", "piper")
    shown, challenge_id = web.consent_phrase("Web Replay")
    assert "I, Web Replay, agree that Deepfake Studio may clone my voice." in shown
    with pytest.raises(ConsentError, match="phrase check failed"):
        web.submit_enroll(
            reference,
            "Web Replay",
            "",
            "piper",
            consent_audio=str(p225 / "p225_008.flac"),  # the speaker, but not the phrase
            challenge_id=challenge_id,
        )
    assert not studio.has_voice("Web Replay")

    name = f"Web Proven {uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    challenge = studio.challenges.add(  # as if the button had drawn words p225_003 says
        Challenge(
            new_challenge(name).id,
            name,
            ("spoons", "snow", "cheese", "brother"),
            now.isoformat(),
            (now + timedelta(minutes=5)).isoformat(),
        )
    )
    queued = web.submit_enroll(
        reference,
        name,
        "",
        "piper",
        consent_audio=str(p225 / "p225_003.flac"),
        challenge_id=challenge.id,
    )
    job = list(web.follow(queued.id, interval=0.01))[-1]
    assert job.state == "done", job.error
    voice = studio.voice(name)
    assert voice.consent == challenge.sentence
    assert voice.consent_evidence is not None and voice.consent_evidence["accepted"]


@pytest.mark.slow
def test_the_voices_tab_issues_a_phrase_and_refuses_a_replayed_recording(
    studio: Studio, context: Any, p225: Path
) -> None:
    with _Server(create_app(studio, web=True, voice_consent=True)) as server:
        page = _open(context, server.url)
        page.get_by_role("tab", name="Voices").click()
        page.locator("#enroll-name textarea, #enroll-name input").first.fill("Browser Ana")
        page.locator("#enroll-phrase-button").click()
        shown = _wait_for_text(page, "#enroll-phrase", "Read aloud and record")
        assert "I, Browser Ana, agree that Deepfake Studio may clone my voice." in shown
        _upload(page, "#enroll-audio", p225 / "p225_011.flac")
        _upload(page, "#enroll-consent-audio", p225 / "p225_008.flac")
        page.locator("#enroll-engine label", has_text="piper").click()
        page.locator("#enroll-button").click()
        status = _wait_for_text(page, "#enroll-status", "phrase check failed", timeout=120)
        assert "consent recording refused" in status
    assert not studio.has_voice("Browser Ana")
