"""The web studio end to end: the real app under uvicorn, driven by Debian's Chromium through
Playwright (never `playwright install`: the browser is the system's /usr/bin/chromium)."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import import_or_fail_in_ci, skip_or_fail_in_ci
from tests.service.browser import CHROMIUM, launch_chromium

import_or_fail_in_ci("gradio", "the server extra")
sync_api = import_or_fail_in_ci("playwright.sync_api", "the test extra")

from fastapi.testclient import TestClient  # noqa: E402

from deepfake_studio import Studio, __version__  # noqa: E402
from deepfake_studio import audio as audio_io  # noqa: E402
from deepfake_studio.errors import AudioError, EngineError, TextError, VoiceError  # noqa: E402
from deepfake_studio.service.api import create_app  # noqa: E402
from deepfake_studio.service.runner import execute_job  # noqa: E402
from deepfake_studio.service.store import JobStore  # noqa: E402
from deepfake_studio.service.web import (  # noqa: E402
    ENGINE_AUTO,
    QUALITY_LABELS,
    SOURCE_REFERENCE,
    SOURCE_VOICE,
    StudioWeb,
    embedding_figure,
    pca_2d,
    projection_figure,
    quality_choices,
    signals_figure,
)

SENTENCE = "The library opens at nine on Monday morning."
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Screenshots of each tab after its test, for people reviewing a change (kept out of git).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

if not CHROMIUM.exists():
    skip_or_fail_in_ci("no /usr/bin/chromium (apt-get install -y chromium)")


class _HeldRunner:
    """Records submissions and runs nothing."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, job_id: str) -> None:
        self.submitted.append(job_id)

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def queue_depth(self) -> int:
        return len(self.submitted)


class _Server:
    """The app under a real uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        # An open page holds a Gradio stream (its heartbeat) that never ends by itself: with
        # uvicorn's default (no graceful-shutdown timeout) every exit waited for it until the
        # join below gave up after 30 s, and the app's shutdown never ran. After 1 s the stream
        # is cancelled and the server stops, shutdown included.
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.socket.close()


@pytest.fixture(scope="module")
def voice(studio: Studio, example_reference: Path) -> str:
    """A piper voice enrolled through Studio (piper: fast)."""
    name = f"Web Piper {uuid.uuid4().hex[:6]}"
    return studio.enroll(
        example_reference, name, "Public-domain LJ Speech reader.", engine="piper"
    ).id


@pytest.fixture(scope="module")
def server(studio: Studio, voice: str) -> Iterator[_Server]:
    with _Server(create_app(studio, web=True)) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 1400})
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


def _open(context: Any, url: str) -> Any:
    page = context.new_page()
    page.goto(url + "/")
    page.wait_for_selector("#clone-generate")
    return page


def _wait_for_text(page: Any, selector: str, needle: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = page.locator(selector).inner_text()
        if needle in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not in {selector}: {page.locator(selector).inner_text()!r}")


def _screenshot(page: Any, name: str) -> None:
    """Save the whole page as test-artifacts/NAME.png and check a real image was written."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def _upload(page: Any, component: str, path: Path) -> None:
    """Give a gr.Audio a file and wait until Gradio has uploaded and shown it."""
    page.locator(f"{component} input[type=file]").set_input_files(str(path))
    page.wait_for_selector(f"{component} audio[src]", state="attached")


# -- the Clone tab ------------------------------------------------------------------------------
def test_generate_runs_a_job_in_the_shared_store_and_shows_the_result(
    server: _Server, context: Any, studio: Studio, voice: str, example_reference: Path
) -> None:
    requested: list[str] = []
    context.on("request", lambda r: requested.append(r.url))
    page = _open(context, server.url)
    # Record every status the page shows, however briefly.
    page.evaluate(
        """() => {
        window.statuses = [];
        const node = document.querySelector("#clone-status");
        new MutationObserver(() => window.statuses.push(node.innerText))
            .observe(node, { subtree: true, childList: true, characterData: true });
    }"""
    )
    page.locator("#clone-text textarea").fill(SENTENCE)
    page.locator("#clone-generate").click()  # no voice picked: an error, nothing queued
    assert "pick an enrolled voice" in _wait_for_text(page, "#clone-status", "Error")
    # Giving a recording, then picking a voice, switches "Voice from" each time.
    _upload(page, "#clone-reference", example_reference)
    page.locator("#clone-source input[value='Reference recording']:checked").wait_for()
    page.locator("#clone-voice input").click()
    page.get_by_role("option", name=f"{studio.voice(voice).name} (piper)").click()
    page.locator("#clone-source input[value='Enrolled voice']:checked").wait_for()
    page.locator("#clone-engine").get_by_text("piper", exact=True).click()
    # The language menu: a piper voice speaks English only, so Spanish is refused up front.
    page.locator("#clone-language input").click()
    page.get_by_role("option", name="Spanish").click()
    page.locator("#clone-generate").click()
    _wait_for_text(page, "#clone-status", "speaks English (en-us) only")
    page.locator("#clone-language input").click()
    page.get_by_role("option", name="English (US)").click()
    page.locator("#clone-generate").click()

    # The player's <audio> gets the result as its source (Gradio keeps the element hidden).
    page.wait_for_selector("#clone-result audio[src]", state="attached", timeout=120_000)
    status = _wait_for_text(page, "#clone-status", "Speaker similarity")
    for plot in ("#clone-signals", "#clone-embedding", "#clone-projection"):
        page.wait_for_selector(f"{plot} img")
    _screenshot(page, "clone-tab")

    # The job went through the REST API's store: done, with a plausible WAV.
    job_id = UUID.search(status).group(0)  # type: ignore[union-attr]
    job = JobStore(studio.data_dir).get(job_id)
    assert job.kind == "clone" and job.state == "done"
    assert job.request["voice"] == voice and job.request["engine"] == "piper"
    assert job.request["text"] == SENTENCE
    samples, rate = sf.read(JobStore(studio.data_dir).output_path(job_id, "wav"))
    assert rate == 22_050 and 1.5 < len(samples) / rate < 7.0
    assert f"{len(samples) / rate:.1f} s" in status
    # Live progress: the page showed the job before it was done.
    seen = " | ".join(page.evaluate("window.statuses"))
    assert re.search(r"\*?\*?(queued|running)", seen), seen
    # The download link serves the same audio.
    href = page.locator("#clone-result a[download]").get_attribute("href")
    download = page.request.get(href)
    assert download.ok and download.body()[:4] == b"RIFF"
    # Offline means offline: nothing was fetched from anywhere but this server.
    outside = [u for u in requested if u.startswith("http") and not u.startswith(server.url)]
    assert outside == []


# -- Voices and Detect --------------------------------------------------------------------------
def test_voices_tab_enrolls_with_consent_and_deletes(
    server: _Server, context: Any, studio: Studio, example_reference: Path
) -> None:
    name = f"UI Voice {uuid.uuid4().hex[:6]}"
    page = _open(context, server.url)
    page.get_by_role("tab", name="Voices").click()
    _upload(page, "#enroll-audio", example_reference)
    page.locator("#enroll-name textarea, #enroll-name input").first.fill(name)
    page.locator("#enroll-engine").get_by_text("piper", exact=True).click()
    page.locator("#enroll-button").click()
    assert "consent" in _wait_for_text(page, "#enroll-status", "Error")

    page.locator("#enroll-consent textarea").fill("Public-domain LJ Speech reader.")
    # A quality is kokoro's: with piper it is refused before anything is queued.
    page.locator("#enroll-quality").get_by_text(QUALITY_LABELS["standard"]).click()
    page.locator("#enroll-button").click()
    _wait_for_text(page, "#enroll-status", "go with the kokoro engine, not piper")
    page.locator("#enroll-quality input[value='default']").check()
    page.locator("#enroll-button").click()
    _wait_for_text(page, "#enroll-status", "Enrolled voice")
    new_id = name.lower().replace(" ", "-")
    assert studio.voice(new_id).consent == "Public-domain LJ Speech reader."
    _wait_for_text(page, "#voices-table", new_id)
    _screenshot(page, "voices-tab")

    page.get_by_text("Delete a voice").click()
    page.locator("#delete-voice input").click()
    page.get_by_role("option", name=new_id, exact=True).click()
    page.locator("#delete-button").click()
    _wait_for_text(page, "#delete-status", "Deleted")
    assert new_id not in studio.library.names()


def test_voices_tab_enrolls_at_the_quality_picked_and_lists_it(
    context: Any, enroll_studio: Studio, example_reference: Path
) -> None:
    # enroll_studio's default quality is standard (its fits cut short): picking quick shows.
    name = f"UI Quick {uuid.uuid4().hex[:6]}"
    with _Server(create_app(enroll_studio, web=True)) as running:
        page = _open(context, running.url)
        page.get_by_role("tab", name="Voices").click()
        page.locator("#enroll-quality").get_by_text("Default (standard, 1-2 minutes)").wait_for()
        _upload(page, "#enroll-audio", example_reference)
        page.locator("#enroll-name textarea, #enroll-name input").first.fill(name)
        page.locator("#enroll-consent textarea").fill("Public-domain LJ Speech reader.")
        page.locator("#enroll-quality").get_by_text(QUALITY_LABELS["quick"]).click()
        page.locator("#enroll-button").click()
        _wait_for_text(page, "#enroll-status", "Enrolled voice", timeout=180)
        new_id = name.lower().replace(" ", "-")
        row = _wait_for_text(page, "#voices-table", new_id)
        assert re.search(rf"{new_id}\s+{re.escape(name)}\s+kokoro\s+quick", row), row
    jobs, _ = JobStore(enroll_studio.data_dir).list(kind="enroll", limit=100)
    job = next(j for j in jobs if j.request["name"] == name)
    assert job.request["quality"] == "quick" and "reference_text" not in job.request
    info = enroll_studio.voice(new_id).conditioning.info
    assert info["quality"] == "quick" and info["method"] == "kokoro-style-encoder"


def test_detect_tab_gives_the_detector_and_watermark_verdicts_with_a_timeline(
    server: _Server,
    context: Any,
    studio: Studio,
    voice: str,
    example_reference: Path,
    tmp_path: Path,
) -> None:
    clip = studio.clone("Checking the watermark and the detector.", voice=voice)
    marked = audio_io.save_audio(clip, tmp_path / "marked.wav")
    expected = studio.detect(marked)
    page = _open(context, server.url)
    page.get_by_role("tab", name="Detect").click()
    assert "probability that a clip is synthetic" in page.locator("#detect-notice").inner_text()

    _upload(page, "#detect-audio", marked)
    page.locator("#detect-button").click()
    text = _wait_for_text(page, "#detect-verdict", "Watermark found")
    assert f"probability {expected.probability:.2f}" in text
    assert "Synthetic speech" in text  # a known answer: a Piper clone
    page.wait_for_selector("#detect-timeline img")
    _screenshot(page, "detect-tab")

    page = _open(context, server.url)  # a fresh page for the second clip
    page.get_by_role("tab", name="Detect").click()
    _upload(page, "#detect-audio", example_reference)
    page.locator("#detect-button").click()
    text = _wait_for_text(page, "#detect-verdict", "No watermark found")
    assert f"probability {studio.detect(example_reference).probability:.2f}" in text
    assert "Real speech" in text  # a known answer: the LJ Speech recording


FACES = Path(__file__).resolve().parents[2] / "examples" / "faces"


def test_faceswap_tab_shows_source_target_and_result(server: _Server, context: Any) -> None:
    page = _open(context, server.url)
    page.get_by_role("tab", name="Face swap").click()
    page.locator("#faceswap-source input[type=file]").set_input_files(str(FACES / "obama.jpg"))
    page.wait_for_selector("#faceswap-source img[src]", state="attached")
    target = page.locator("#faceswap-target-image input[type=file]")
    target.set_input_files(str(FACES / "astronaut.jpg"))
    page.wait_for_selector("#faceswap-target-image img[src]", state="attached")
    page.locator("#faceswap-button").click()
    status = _wait_for_text(page, "#faceswap-status", "Done", timeout=120)
    assert "found 1 face" in status and "watermarked" in status
    page.wait_for_selector("#faceswap-result-image img[src]", state="attached")


def test_faceswap_requests_are_checked_before_a_job_is_queued(
    studio: Studio, tmp_path: Path
) -> None:
    from deepfake_studio.errors import FaceError, MediaError

    held = _HeldRunner()
    web = StudioWeb(studio, JobStore(studio.data_dir), held)
    source, target = str(FACES / "obama.jpg"), str(FACES / "astronaut.jpg")
    with pytest.raises(MediaError, match="source photo"):
        web.submit_faceswap(None, target, None)
    with pytest.raises(MediaError, match="one of them"):
        web.submit_faceswap(source, None, None)
    with pytest.raises(FaceError, match="--face 3 is out of range"):
        web.submit_faceswap(source, target, None, face=3)
    with pytest.raises(MediaError, match="needs a target video"):
        web.submit_faceswap(source, target, None, voice="x", text="Hello.")
    assert held.submitted == []
    assert not list(JobStore(studio.data_dir).incoming_dir.iterdir())  # nothing left behind
    job = web.submit_faceswap(source, target, None, face=0)
    assert held.submitted == [job.id] and job.request["face"] == 0
    JobStore(studio.data_dir).fail(job.id, "not run by this test")  # no later runner picks it up


# -- PWA ----------------------------------------------------------------------------------------
def test_pwa_manifest_and_service_worker_are_served_and_it_starts_offline(
    server: _Server, context: Any
) -> None:
    manifest = context.request.get(server.url + "/manifest.json")
    assert manifest.ok and manifest.headers["content-type"] == "application/manifest+json"
    body = manifest.json()
    assert body["name"] == "Deepfake Studio" and body["display"] == "standalone"
    assert body["start_url"] == "/" and body["scope"] == "/"
    sizes = {icon["sizes"] for icon in body["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in body["icons"]:
        fetched = context.request.get(server.url + icon["src"])
        assert fetched.ok and fetched.headers["content-type"].startswith(icon["type"])
    worker = context.request.get(server.url + "/sw.js")
    assert worker.ok and "javascript" in worker.headers["content-type"]
    assert worker.headers["service-worker-allowed"] == "/"
    assert f'const VERSION = "{__version__}-gradio-' in worker.text()

    page = _open(context, server.url)
    scope = page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == server.url + "/"
    script = page.evaluate("navigator.serviceWorker.ready.then((r) => r.active.scriptURL)")
    assert script == server.url + "/sw.js"
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    cached = page.evaluate(
        "caches.keys().then((ks) => Promise.all(ks.map((k) => caches.open(k)"
        ".then((c) => c.keys())))).then((rs) => rs.flat().map((r) => r.url))"
    )
    assert server.url + "/" in cached and any("/assets/" in url for url in cached)
    assert not any("/api/" in url or "/gradio_api/" in url for url in cached)

    context.set_offline(True)
    try:
        response = page.reload()
        assert response is not None and response.from_service_worker
        page.wait_for_selector("#clone-generate")  # the app shell rendered from the cache
    finally:
        context.set_offline(False)


def test_api_docs_render_with_no_host_reachable_but_the_server(
    server: _Server, context: Any
) -> None:
    """/docs is Swagger UI from the package's own files: offline, it still lists the routes."""
    outside: list[str] = []

    def only_the_server(route: Any) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page = context.new_page()
    page.route("**/*", only_the_server)
    page.goto(server.url + "/docs")
    page.wait_for_selector('[data-path="/api/v1/synthesize"]')  # rendered from /openapi.json
    assert page.locator('[data-path="/api/v1/health"]').count() == 1
    assert outside == []
    page.close()


# -- auth ---------------------------------------------------------------------------------------
def test_a_token_puts_the_web_ui_behind_a_login(studio: Studio, context: Any, voice: str) -> None:
    app = create_app(studio, runner=_HeldRunner(), token="s3cret", web=True)
    with _Server(app) as running:
        assert context.request.get(running.url + "/config").status == 401
        assert context.request.get(running.url + "/api/v1/voices").status == 401
        assert context.request.get(running.url + "/manifest.json").ok  # the PWA files are public
        assert context.request.get(running.url + "/sw.js").ok
        page = context.new_page()
        page.goto(running.url + "/")
        fields = page.locator("input")
        fields.nth(0).fill("anyone")
        fields.nth(1).fill("wrong")
        page.get_by_role("button", name="Login").click()
        page.get_by_text("Incorrect Credentials").wait_for()
        assert page.locator("#clone-generate").count() == 0
        fields.nth(0).fill("anyone")
        fields.nth(1).fill("s3cret")
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#clone-generate")
        scope = page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
        assert scope == running.url + "/"
        # The REST API still wants its Bearer header, not the UI's cookie.
        assert page.request.get(running.url + "/api/v1/voices").status == 401
        # The page's live player streams with a key it got at load: that route only.
        page.wait_for_function(
            "document.querySelector('#clone-stream-key textarea').value.length > 20"
        )
        key = page.locator("#clone-stream-key textarea").input_value()
        stream = running.url + "/api/v1/synthesize/stream"
        for given, status in ((key, 422), ("s3cret", 422), ("wrong", 401)):
            answer = page.request.post(
                stream, data={"text": " ", "voice_id": "x"}, headers=_bearer(given)
            )
            assert answer.status == status, answer.text()  # 422: past auth, the text is empty
        assert page.request.get(running.url + "/api/v1/voices", headers=_bearer(key)).status == 401
        # The page's player sends it: its request gets past auth to the text check.
        page.locator("#clone-text textarea").fill("   ")
        page.locator("#clone-voice input").click()
        page.get_by_role("option").first.click()
        page.locator("#clone-generate").click()
        assert "empty" in _wait_for_text(page, "#clone-live-state", "Error")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- without a browser --------------------------------------------------------------------------
def test_api_routes_keep_precedence_over_the_mounted_ui(studio: Studio) -> None:
    with TestClient(create_app(studio, runner=_HeldRunner(), web=True)) as client:
        assert client.get("/api/v1/health").json()["status"] == "ok"
        hint = " (the API is under /api/v1; its reference is /docs)"
        assert client.get("/api/v1/nope").json() == {"error": "no route GET /api/v1/nope" + hint}
        # Gradio answers paths outside the API itself: still the documented error shape.
        outside = client.get("/no-such-page")
        assert outside.status_code == 404
        assert outside.json() == {"error": "no route GET /no-such-page" + hint}
        wrong = client.put("/api/v1/voices")
        assert wrong.status_code == 405 and wrong.json() == {"error": "Method Not Allowed"}
        assert "POST" in wrong.headers["allow"]
        assert "<gradio-app" in client.get("/").text
        assert client.get("/manifest.json").json()["short_name"] == "Studio"  # ours, not Gradio's
    with TestClient(create_app(studio, runner=_HeldRunner())) as client:
        assert client.get("/").status_code == 404  # web=False: the API only


def test_requests_are_checked_before_a_job_is_queued(
    studio: Studio, voice: str, example_reference: Path, tmp_path: Path
) -> None:
    held = _HeldRunner()
    web = StudioWeb(studio, JobStore(studio.data_dir), held)
    with pytest.raises(TextError):
        web.submit_clone("", SOURCE_VOICE, voice, None, ENGINE_AUTO, 1.0)
    with pytest.raises(VoiceError, match="pick an enrolled voice"):
        web.submit_clone(SENTENCE, SOURCE_VOICE, None, None, ENGINE_AUTO, 1.0)
    with pytest.raises(EngineError, match="kokoro"):
        web.submit_clone(SENTENCE, SOURCE_VOICE, voice, None, "kokoro", 1.0)
    with pytest.raises(EngineError, match="out of range"):
        web.submit_clone(SENTENCE, SOURCE_VOICE, voice, None, "piper", 9.0)
    with pytest.raises(TextError, match="unknown language 'tlh'"):
        web.submit_clone(SENTENCE, SOURCE_VOICE, voice, None, ENGINE_AUTO, 1.0, None, "tlh")
    with pytest.raises(EngineError, match="speaks English"):  # a piper voice cannot speak es
        web.submit_clone(SENTENCE, SOURCE_VOICE, voice, None, ENGINE_AUTO, 1.0, None, "es")
    with pytest.raises(VoiceError, match="consent"):
        web.submit_enroll(str(example_reference), "Nobody", "  ", "piper")
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16_000 * 3, np.float32), 16_000)
    with pytest.raises(AudioError, match="silence.wav"):  # the user's file name, not a uuid
        web.submit_clone(SENTENCE, SOURCE_REFERENCE, None, str(silence), "piper", 1.0, "yes")
    with pytest.raises(VoiceError, match="consent"):  # a recording needs consent, as enrolling
        web.submit_clone(SENTENCE, SOURCE_REFERENCE, None, str(example_reference), "piper", 1.0)
    # Quality and words: kokoro's, for a recording only, one of the known qualities.
    ref = str(example_reference)
    with pytest.raises(EngineError, match="quality must be quick, standard or best, not 'top'"):
        web.submit_enroll(ref, "Nobody", "yes", ENGINE_AUTO, quality="top")
    with pytest.raises(EngineError, match="kokoro engine, not piper"):
        web.submit_enroll(ref, "Nobody", "yes", "piper", quality="quick")
    with pytest.raises(EngineError, match="kokoro engine, not piper"):
        web.submit_clone(SENTENCE, SOURCE_REFERENCE, None, ref, "piper", 1.0, "yes", None, "quick")
    with pytest.raises(VoiceError, match="go with a reference recording"):
        web.submit_clone(SENTENCE, SOURCE_VOICE, voice, None, ENGINE_AUTO, 1.0, None, None,
                         None, "Words.")  # fmt: skip
    assert held.submitted == []
    assert not list(JobStore(studio.data_dir).incoming_dir.iterdir())  # nothing left behind
    # A recording cloned at a quality: the job carries it (as the API's does) for the runner.
    queued = web.submit_clone(
        SENTENCE, SOURCE_REFERENCE, None, ref, "kokoro", 1.0, "yes", None, "standard", " Hi. "
    )
    assert queued.request["quality"] == "standard" and queued.request["reference_text"] == "Hi."
    assert held.submitted == [queued.id]
    JobStore(studio.data_dir).fail(queued.id, "not run by this test")  # no later runner runs it


def test_a_reference_upload_is_cloned_and_plotted_next_to_the_result(
    studio: Studio, voice: str, example_reference: Path
) -> None:
    store = JobStore(studio.data_dir)

    class InlineRunner(_HeldRunner):
        def submit(self, job_id: str) -> None:  # what a worker would do, right away
            super().submit(job_id)
            execute_job(studio, store, job_id)

    web = StudioWeb(studio, store, InlineRunner())
    queued = web.submit_clone(
        "Short and clear.",
        SOURCE_REFERENCE,
        None,
        str(example_reference),
        "piper",
        1.2,
        "Public-domain LJ Speech reader.",
    )
    job = list(web.follow(queued.id, interval=0.01))[-1]
    assert job.state == "done", job.error
    assert job.request["reference"] == "lj_reference.flac" and job.request["speed"] == 1.2
    assert not store.inputs_dir(job.id).exists()  # the uploaded voice is not kept
    analysis = web.analyse(job, str(example_reference))
    assert "Speaker similarity (GE2E cosine, reference vs result)" in analysis.summary
    assert len(analysis.signals.axes) == 4  # reference and result: waveform + mel each
    assert len(analysis.embedding.axes) == 3
    legend = [t.get_text() for t in analysis.projection.axes[0].get_legend().get_texts()]
    assert legend == ["enrolled voices", "reference", "result"]


def test_the_quality_radio_names_the_shipped_default_and_what_it_costs(tmp_path: Path) -> None:
    from deepfake_studio import StudioConfig

    shipped = Studio(StudioConfig(data_dir=tmp_path))  # the shipped settings; loads no model
    assert quality_choices(shipped) == [
        ("Default (standard, 1-2 minutes)", "default"),
        (
            "Quick: about 10 s; similarity 0.38 (a style read from the reference by the style "
            "encoder)",
            "quick",
        ),
        (
            "Standard: 1-2 minutes; similarity 0.61 (the style fitted to the reference by "
            "gradient)",
            "standard",
        ),
        (
            "Best: 2-6 minutes; similarity 0.69 (standard plus the decoder adapted to the speaker)",
            "best",
        ),
    ]


def test_plots_and_projection_cope_with_few_voices() -> None:
    rng = np.random.default_rng(0)
    a, b = np.abs(rng.normal(size=(2, 256))).astype(np.float32)
    coords = pca_2d(np.stack([a, b]))
    assert coords.shape == (2, 2) and np.allclose(coords[:, 1], 0)  # one direction only
    assert np.allclose(pca_2d(a[None]), 0)
    tone = audio_io.Audio(0.3 * np.sin(np.linspace(0, 2000, 22_050)).astype(np.float32), 22_050)
    assert len(signals_figure(None, tone).axes) == 2
    assert len(signals_figure(tone, tone).axes) == 4
    assert len(embedding_figure(a, b).axes) == 3  # two maps and a colour bar
    assert len(projection_figure([("x", a)], None, b).axes) == 1
