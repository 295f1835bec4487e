"""The web studio's emotion menu and strength slider (issue 20): checked like the API's fields,
and what the page picks reaches the job (a real browser on the real app)."""

from __future__ import annotations

from typing import Any

import pytest

from deepfake_studio import Studio
from deepfake_studio.errors import EngineError
from deepfake_studio.service.store import JobStore
from tests.service.test_web import (  # the page's fixtures and helpers  # noqa: F401
    SENTENCE,
    SOURCE_VOICE,
    UUID,
    StudioWeb,
    _HeldRunner,
    _open,
    _Server,
    _wait_for_text,
    browser,
    context,
    server,
    voice,
)


def test_submit_clone_checks_the_emotion_and_queues_it(studio: Studio, voice: str) -> None:  # noqa: F811
    held = _HeldRunner()
    web = StudioWeb(studio, JobStore(studio.data_dir), held)
    args = (SENTENCE, SOURCE_VOICE, voice, None, "auto", 1.0, None, None, None, None)
    with pytest.raises(EngineError, match="unknown emotion 'bored'"):
        web.submit_clone(*args, "bored", 1.0)
    with pytest.raises(EngineError, match="from 0 to 1"):
        web.submit_clone(*args, "sad", 1.5)
    with pytest.raises(EngineError, match="piper engine has no emotion control"):
        web.submit_clone(*args, "sad", 0.5)
    assert held.submitted == []
    queued = web.submit_clone(*args, "sad", 0.0)  # strength 0 is neutral: any engine
    assert (queued.request["emotion"], queued.request["emotion_strength"]) == ("sad", 0.0)
    JobStore(studio.data_dir).fail(queued.id, "not run by this test")


def test_the_clone_tab_sends_the_menu_and_the_slider(
    server: _Server,  # noqa: F811 - the fixtures imported above
    context: Any,  # noqa: F811
    studio: Studio,
    voice: str,  # noqa: F811
) -> None:
    page = _open(context, server.url)
    page.locator("#clone-text textarea").fill(SENTENCE)
    page.locator("#clone-voice input").click()
    page.get_by_role("option", name=f"{studio.voice(voice).name} (piper)").click()
    page.locator("#clone-emotion input").click()
    page.get_by_role("option", name="Sad").click()
    page.locator("#clone-generate").click()
    _wait_for_text(page, "#clone-status", "piper engine has no emotion control")
    strength = page.locator("#clone-emotion-strength input[type=number]")
    strength.fill("0")
    strength.press("Enter")
    page.locator("#clone-generate").click()
    status = _wait_for_text(page, "#clone-status", "Speaker similarity", timeout=120)
    job = JobStore(studio.data_dir).get(UUID.search(status).group(0))  # type: ignore[union-attr]
    assert job.state == "done"
    assert (job.request["emotion"], job.request["emotion_strength"]) == ("sad", 0.0)
