"""The Clone tab plays an enrolled voice while it is made (issue 24 item 2): a streaming
gr.Audio fed by `Studio.speak_stream`, and the joined clip kept as the job's file with its
signed record (a real browser on the real app)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from deepfake_studio import Studio
from deepfake_studio import audio as audio_io
from deepfake_studio.errors import StudioError
from deepfake_studio.provenance.records import verify
from deepfake_studio.service.api import create_app
from deepfake_studio.service.store import JobStore
from deepfake_studio.voices import Voice
from tests.service.test_api_stream import LONG_TEXT
from tests.service.test_web import (  # the page's fixtures and helpers  # noqa: F401
    SOURCE_VOICE,
    UUID,
    StudioWeb,
    _HeldRunner,
    _open,
    _Server,
    _wait_for_text,
    browser,
    context,
)
from tests.test_emotion_interfaces import _stock_voice

# Page-side clock: when Generate was clicked, when the live player first played and what the
# status said then, and when the status first said the job was done.
_WATCH_JS = """() => {
    window.clickedAt = null;
    window.firstPlay = null;
    window.statusAtFirstPlay = null;
    window.doneAt = null;
    const status = document.querySelector("#clone-status");
    document.querySelector("#clone-generate").addEventListener("click", () => {
        window.clickedAt = performance.now();
    });
    document.addEventListener("timeupdate", (event) => {
        const live = event.target.closest && event.target.closest("#clone-live");
        if (live && window.firstPlay === null && event.target.currentTime > 0) {
            window.firstPlay = performance.now();
            window.statusAtFirstPlay = status.innerText;
        }
    }, true);  // media events do not bubble: listen while they go down
    new MutationObserver(() => {
        if (window.doneAt === null && / done, 100%/.test(status.innerText)) {
            window.doneAt = performance.now();
        }
    }).observe(status, { subtree: true, childList: true, characterData: true });
}"""


@pytest.fixture(scope="module")
def live_voice(studio: Studio) -> Voice:
    return _stock_voice(studio, "Web Stream Stock")


@pytest.fixture(scope="module")
def live_server(studio: Studio, live_voice: Voice) -> Iterator[_Server]:
    studio.warm_streaming()  # the float Kokoro loads once, not inside the timed stream
    with _Server(create_app(studio, web=True)) as running:
        yield running


@pytest.mark.slow
def test_an_enrolled_voice_plays_before_it_is_finished_and_its_clip_is_kept(
    live_server: _Server,
    context: Any,  # noqa: F811 - the fixture imported above
    studio: Studio,
    live_voice: Voice,
) -> None:
    page = _open(context, live_server.url)
    page.evaluate(_WATCH_JS)
    page.locator("#clone-text textarea").fill(LONG_TEXT)
    page.locator("#clone-voice input").click()
    page.get_by_role("option", name=f"{live_voice.name} (kokoro)").click()
    page.locator("#clone-generate").click()
    status = _wait_for_text(page, "#clone-status", "Speaker similarity", timeout=180)
    page.wait_for_selector("#clone-result audio[src]", state="attached")

    # The live player played while the job was still running, before the file existed.
    clicked, first_play, done_at = page.evaluate(
        "[window.clickedAt, window.firstPlay, window.doneAt]"
    )
    assert first_play is not None, "the live player never played"
    assert done_at is not None and clicked < first_play < done_at
    assert "running" in page.evaluate("window.statusAtFirstPlay")
    print(f"first played {first_play - clicked:.0f} ms, done {done_at - clicked:.0f} ms")

    # The kept file: the job's output, as a queued job writes it, watermarked and signed.
    job_id = UUID.search(status).group(0)  # type: ignore[union-attr]
    store = JobStore(studio.data_dir)
    job = store.get(job_id)
    assert job.state == "done" and job.request["voice"] == live_voice.id
    out = store.output_path(job_id, "wav")
    clip = audio_io.load_audio(out)
    assert clip.sample_rate == 24_000 and 5.0 < clip.duration < 14.0
    assert studio.watermarker.detect(clip).present
    report = verify(out, data_dir=studio.data_dir)
    assert report.signature_valid and report.audio_matches, report.details
    assert report.record is not None
    assert report.record["parameters"]["streamed"] is True
    assert report.record["parameters"]["job"] == job_id
    assert (job.result or {})["duration"] == pytest.approx(clip.duration, abs=0.01)


def test_a_streamed_job_skips_the_runner_and_a_stream_stopped_early_fails_it(
    studio: Studio, live_voice: Voice
) -> None:
    store = JobStore(studio.data_dir)
    held = _HeldRunner()
    web = StudioWeb(studio, store, held)
    args = (LONG_TEXT * 2, SOURCE_VOICE, live_voice.id, None, "auto", 1.0)
    job = web.submit_clone(*args, stream=True)
    assert held.submitted == [] and store.get(job.id).state == "queued"
    pieces = web.stream_clone(job)
    first = next(pieces)
    assert first.sample_rate == 24_000 and 0 < len(first.samples) < 24_000 * 3
    assert store.get(job.id).state == "running"
    pieces.close()  # what Gradio does when the page goes away
    stopped = store.get(job.id)
    assert stopped.state == "failed" and "stopped before the clip was finished" in stopped.error
    assert not store.output_path(job.id, "wav").exists()
    with pytest.raises(StudioError, match="not waiting to run"):
        next(web.stream_clone(job))  # a job runs once
