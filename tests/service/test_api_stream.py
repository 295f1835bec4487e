"""POST /api/v1/synthesize/stream (issue 24 item 2): chunked WAV read as it arrives by a real
HTTP client against the app under uvicorn; the record written when the stream ends; a client
that disconnects mid-stream stops the synthesis and leaves no file."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from deepfake_studio import Studio
from deepfake_studio.audio import Audio
from deepfake_studio.provenance import sidecar_path
from deepfake_studio.service.api import create_app
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.voices import Voice
from deepfake_studio.wav_stream import HEADER_BYTES, read_stream_wav
from tests.service.test_web import _Server
from tests.test_emotion_interfaces import _stock_voice

TOKEN = "stream-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LONG_TEXT = (
    "The weather is lovely today, so we walked down to the river to watch the boats. "
    "Later we climbed the hill behind the village and looked at the sea for a long while."
)


@pytest.fixture(scope="module")
def stream_voice(studio: Studio) -> Voice:
    return _stock_voice(studio, "Api Stream Stock")


@pytest.fixture(scope="module")
def server(studio: Studio, stream_voice: Voice) -> Iterator[Any]:
    studio.warm_streaming()
    app = create_app(studio, token=TOKEN)
    with _Server(app) as running:
        running.app = app
        yield running


def _post(server: Any, body: dict[str, Any], client: httpx.Client) -> Any:
    return client.stream(
        "POST", f"{server.url}/api/v1/synthesize/stream", json=body, headers=AUTH, timeout=300
    )


def test_stream_arrives_in_pieces_and_its_record_is_written_at_the_end(
    server: Any, studio: Studio, stream_voice: Voice
) -> None:
    arrivals: list[tuple[float, int]] = []
    data = b""
    with (
        httpx.Client() as client,
        _post(server, {"text": LONG_TEXT, "voice_id": stream_voice.id}, client) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/wav"
        assert response.headers.get("transfer-encoding") == "chunked"
        stream_id = response.headers["x-stream-id"]
        started = time.perf_counter()
        for chunk in response.iter_raw():
            arrivals.append((time.perf_counter() - started, len(chunk)))
            data += chunk
    rate, samples = read_stream_wav(data)
    assert rate == 24_000 and 5.0 < len(samples) / rate < 14.0
    # Incremental: audio came in several pieces, the first well before the last.
    audio_chunks = [t for t, n in arrivals if n > HEADER_BYTES]
    assert len(audio_chunks) >= 4
    assert arrivals[-1][0] - audio_chunks[0] > 1.0
    assert studio.watermarker.detect(Audio(samples, rate)).present
    saved = studio.data_dir / "streams" / f"{stream_id}.wav"
    assert saved.exists() and sidecar_path(saved).exists()
    assert server.app.state.active_streams == set()


def test_a_client_that_leaves_mid_stream_stops_it_and_leaves_no_file(
    server: Any, studio: Studio, stream_voice: Voice
) -> None:
    with (
        httpx.Client() as client,
        _post(server, {"text": LONG_TEXT * 3, "voice_id": stream_voice.id}, client) as response,
    ):
        assert response.status_code == 200
        stream_id = response.headers["x-stream-id"]
        first = next(response.iter_raw())
        assert first[:4] == b"RIFF"
        assert stream_id in server.app.state.active_streams
    # the connection is closed here, long before the text is spoken
    deadline = time.monotonic() + 60
    while stream_id in server.app.state.active_streams and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stream_id not in server.app.state.active_streams
    streams = studio.data_dir / "streams"
    leftovers = [p.name for p in streams.glob(f"*{stream_id}*")] if streams.exists() else []
    assert leftovers == []


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        ({"text": "Hi.", "voice_id": "{voice}", "emotion": "bored"}, AUTH, 422, "bored"),
        ({"text": "  ", "voice_id": "{voice}"}, AUTH, 422, "empty"),
        ({"text": "Hi.", "voice_id": "{voice}", "speed": 9}, AUTH, 422, "speed"),
        ({"text": "Hi.", "voice_id": "nobody"}, AUTH, 404, "nobody"),
        # fails at the first piece, still before the 200: a kokoro voice without its table
        ({"text": "Hi.", "voice_id": "{bare}"}, AUTH, 422, "style table"),
        ({"text": "Hi.", "voice_id": "{voice}"}, {}, 401, "token"),
    ],
)
def test_stream_rejects_bad_requests_with_json(
    server: Any,
    studio: Studio,
    stream_voice: Voice,
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    bare = Voice(
        name="Api Stream Bare",
        embedding=stream_voice.embedding,
        conditioning=Conditioning("kokoro"),
        consent=stream_voice.consent,
        source_sha256="0" * 64,
    )
    studio.library.save(bare, overwrite=True)
    names = {"{voice}": stream_voice.id, "{bare}": studio.voice(bare.name).id}
    body = {k: names.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    response = httpx.post(
        f"{server.url}/api/v1/synthesize/stream", json=body, headers=headers, timeout=60
    )
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_a_stream_kept_as_a_job_is_that_jobs_audio_and_a_left_one_fails_it(
    server: Any, studio: Studio, stream_voice: Voice
) -> None:
    text = "The museum opens at nine on Thursday."
    with (
        httpx.Client() as client,
        _post(server, {"text": text, "voice_id": stream_voice.id, "job": True}, client) as sent,
    ):
        assert sent.status_code == 200
        job_id = sent.headers["x-job-id"]
        assert "x-stream-id" not in sent.headers
        data = b"".join(sent.iter_raw())
        job = client.get(f"{server.url}/api/v1/jobs/{job_id}", headers=AUTH).json()
        kept = client.get(f"{server.url}/api/v1/jobs/{job_id}/audio", headers=AUTH)
    rate, streamed = read_stream_wav(data)
    assert job["state"] == "done" and job["kind"] == "clone", job
    # The record a queued job would have: the request as sent, the finished result (the
    # voice loaded once, by the route, is the one the record names).
    assert (job["progress"], job["message"], job["error"]) == (1.0, "done", None)
    assert job["request"]["text"] == text and job["request"]["voice"] == stream_voice.id
    assert job["result"]["voice"] == stream_voice.id and job["result"]["engine"] == "kokoro"
    assert job["result"]["bytes"] == len(kept.content)
    assert kept.status_code == 200 and kept.headers["content-type"] == "audio/wav"
    samples, kept_rate = sf.read(io.BytesIO(kept.content), dtype="float32")
    # The job's file is the stream that was heard (16-bit on the wire: within one step),
    # without the stream's closing pause (as `clone` ends a clip).
    assert kept_rate == rate == 24_000 and 1.5 < len(samples) / rate < 6.0
    assert abs(job["result"]["duration"] - len(samples) / rate) < 1e-3
    assert len(samples) <= len(streamed) and not streamed[len(samples) :].any()
    assert float(np.abs(samples - streamed[: len(samples)]).max()) < 2 / 32768
    assert studio.watermarker.detect(Audio(samples, kept_rate)).present

    with (
        httpx.Client() as client,
        _post(
            server, {"text": LONG_TEXT * 3, "voice_id": stream_voice.id, "job": True}, client
        ) as left,
    ):
        left_id = left.headers["x-job-id"]
        assert next(left.iter_raw())[:4] == b"RIFF"
    deadline = time.monotonic() + 60
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            job = client.get(f"{server.url}/api/v1/jobs/{left_id}", headers=AUTH).json()
            if job["state"] != "running":
                break
            time.sleep(0.2)
        audio = client.get(f"{server.url}/api/v1/jobs/{left_id}/audio", headers=AUTH)
    assert job["state"] == "failed" and "stopped" in job["error"].lower(), job
    assert audio.status_code == 409
