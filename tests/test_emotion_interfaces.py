"""One emotion control everywhere (issue 20 item 1): Python, CLI, batch CSV, REST API and the
web studio take `emotion` + `emotion_strength`, record them in the provenance record, and turn
a bad value into one line (CLI exit 1, API 422). Kokoro's acoustics: tests/synthesizer/kokoro/
test_emotion.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepfake_studio import Studio, StudioConfig
from deepfake_studio.errors import EngineError
from deepfake_studio.provenance import sidecar_path
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.voices import Voice
from tests.conftest import RunHere
from tests.test_cli import assert_one_line_error, run

TWO_SENTENCES = "The river was calm. Then the rain came."
CONSENT = "Kokoro's bundled voice, for the emotion tests."


def _stock_voice(studio: Studio, name: str, engine: str = "kokoro") -> Voice:
    """An enrolled voice without a fit: kokoro's bundled style (or a bare piper voice)."""
    conditioning = (
        studio.engine("kokoro").default_conditioning()
        if engine == "kokoro"
        else Conditioning(engine)
    )
    voice = Voice(
        name=name,
        embedding=np.full(256, 1 / 16, np.float32),
        conditioning=conditioning,
        consent=CONSENT,
        source_sha256="0" * 64,
    )
    studio.library.save(voice, overwrite=True)
    return studio.voice(name)


@pytest.fixture(scope="module")
def kokoro_voice(studio: Studio) -> Voice:
    return _stock_voice(studio, "Emotion Stock")


@pytest.fixture(scope="module")
def piper_voice(studio: Studio) -> Voice:
    return _stock_voice(studio, "Emotion Piper", "piper")


def test_python_api_strength_zero_is_neutral_and_sad_is_slower(
    studio: Studio, kokoro_voice: Voice
) -> None:
    neutral = studio.clone(TWO_SENTENCES, voice=kokoro_voice, watermark=False)
    zero = studio.clone(
        TWO_SENTENCES, voice=kokoro_voice, watermark=False, emotion="sad", emotion_strength=0.0
    )
    assert np.array_equal(zero.samples, neutral.samples)
    sad = studio.clone(TWO_SENTENCES, voice=kokoro_voice, watermark=False, emotion="sad")
    # tempo 0.89 and the pause after the first sentence × 1.62
    assert sad.duration > 1.08 * neutral.duration, (sad.duration, neutral.duration)
    assert sad.parameters["emotion"] == "sad" and sad.parameters["emotion_strength"] == 1.0
    # The longer pause after the last sentence is cut like the neutral one.
    assert abs(_silent_end(sad.samples) - _silent_end(neutral.samples)) < 0.1 * 24_000
    assert neutral.parameters["emotion"] == "neutral"
    pieces = list(studio.speak(TWO_SENTENCES, kokoro_voice, emotion="angry", emotion_strength=0.5))
    assert len(pieces) == 2 and pieces[0].parameters["emotion_strength"] == 0.5  # type: ignore[attr-defined]
    calm = next(iter(studio.speak(TWO_SENTENCES, kokoro_voice)))
    # Angry at half strength: +6.9 dB of tilt above 2 kHz, so a larger share of the energy.
    assert _high_share(pieces[0].samples) > 1.5 * _high_share(calm.samples)
    assert kokoro_voice.conditioning.info.get("emotion") is None  # the voice is not changed
    with pytest.raises(EngineError, match="unknown emotion 'bored'"):
        studio.clone("Hi.", voice=kokoro_voice, emotion="bored")
    with pytest.raises(EngineError, match="from 0 to 1"):
        studio.clone("Hi.", voice=kokoro_voice, emotion="sad", emotion_strength=1.2)


def test_cli_clone_records_the_emotion_and_refuses_bad_ones(
    tmp_path: Path, run_here: RunHere
) -> None:
    home_studio = Studio(StudioConfig(data_dir=tmp_path))
    _stock_voice(home_studio, "Stock")
    _stock_voice(home_studio, "Piper Voice", "piper")
    out = tmp_path / "angry.wav"
    args = ["clone", "--voice", "stock", "--text", "Hello there.", "--out", out]
    # A real process for the run that speaks; the refusals below through main() in-process.
    done = run(*args, "--emotion", "angry", "--emotion-strength", "0.5", home=tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads(sidecar_path(out).read_text())
    assert record["parameters"]["emotion"] == "angry"
    assert record["parameters"]["emotion_strength"] == 0.5
    for extra, message in (
        (["--emotion", "bored"], "unknown --emotion 'bored'"),
        (["--emotion", "sad", "--emotion-strength", "1.5"], "from 0 to 1"),
    ):
        assert_one_line_error(run_here(*args, *extra, home=tmp_path), message)
    piper = ["clone", "--voice", "piper-voice", "--text", "Hi.", "--out", tmp_path / "p.wav"]
    assert_one_line_error(
        run_here(*piper, "--emotion", "sad", home=tmp_path), "piper engine has no emotion control"
    )
    assert not (tmp_path / "p.wav").exists()
    report = ["eval", "emotion", "--out", tmp_path / "e.json"]
    assert_one_line_error(
        run_here(*report, "--sentences", "1", home=tmp_path), "sentences must be 2"
    )
    assert_one_line_error(
        run_here(*report, "--strength", "0", home=tmp_path), "strength must be above"
    )


def test_batch_rows_take_emotion_columns(
    studio: Studio, kokoro_voice: Voice, tmp_path: Path
) -> None:
    from deepfake_studio.service.batch import BatchError, read_jobs, run_local

    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        f"text,out,voice,emotion,emotion_strength\nHi there.,a.wav,{kokoro_voice.id},happy,0.4\n"
    )
    rows = read_jobs(jobs, tmp_path / "out", studio)
    assert (rows[0].emotion, rows[0].emotion_strength) == ("happy", 0.4)
    assert rows[0].request()["emotion"] == "happy"
    report = run_local(studio, rows, lambda row, error: None)
    assert not report.failed, report.failed
    record = json.loads(sidecar_path(tmp_path / "out" / "a.wav").read_text())
    assert (record["parameters"]["emotion"], record["parameters"]["emotion_strength"]) == (
        "happy",
        0.4,
    )
    for cells, message in (
        ("bored,", "line 2: unknown emotion 'bored'"),
        ("sad,2", "line 2: emotion strength must be from 0 to 1"),
        ("sad,lots", "line 2: emotion strength must be a number"),
    ):
        jobs.write_text(
            f"text,out,voice,emotion,emotion_strength\nHi.,b.wav,{kokoro_voice.id},{cells}\n"
        )
        with pytest.raises(BatchError, match=message):
            read_jobs(jobs, tmp_path / "out", studio)


def test_api_synthesize_takes_the_emotion_fields(
    studio: Studio, kokoro_voice: Voice, piper_voice: Voice
) -> None:
    from fastapi.testclient import TestClient

    from deepfake_studio.service.api import create_app

    api = "/api/v1"
    with TestClient(create_app(studio)) as client:
        asked = {"text": "Hi there.", "voice_id": kokoro_voice.id}
        response = client.post(
            f"{api}/synthesize", json={**asked, "emotion": "fearful", "emotion_strength": 0.7}
        )
        assert response.status_code == 202, response.text
        job = _wait(client, f"{api}/jobs/{response.json()['job_id']}")
        assert job["state"] == "done", job
        assert job["request"]["emotion"] == "fearful"
        record = client.get(f"{api}/jobs/{job['job_id']}/provenance").json()
        assert record["parameters"]["emotion"] == "fearful"
        assert record["parameters"]["emotion_strength"] == 0.7
        for body, message in (
            ({**asked, "emotion": "bored"}, "unknown emotion 'bored'"),
            ({**asked, "emotion": "sad", "emotion_strength": 1.5}, "from 0 to 1"),
            ({**asked, "emotion_strength": "lots"}, "emotion_strength"),
            (
                {"text": "Hi.", "voice_id": piper_voice.id, "emotion": "sad"},
                "piper engine has no emotion control",
            ),
        ):
            bad = client.post(f"{api}/synthesize", json=body)
            assert bad.status_code == 422, bad.text
            assert list(bad.json()) == ["error"] and message in bad.json()["error"]


def _silent_end(samples: np.ndarray) -> int:
    """How many samples at the end are (near) silent."""
    loud = np.flatnonzero(np.abs(samples) > 1e-3)
    return len(samples) - (int(loud[-1]) + 1 if len(loud) else 0)


def _high_share(samples: np.ndarray, rate: int = 24_000) -> float:
    """The share of the signal's energy above 2 kHz."""
    power = np.abs(np.fft.rfft(samples)) ** 2
    return float(power[np.fft.rfftfreq(len(samples), 1 / rate) > 2000].sum() / power.sum())


def _wait(client: Any, url: str, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(url).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"{url} did not finish within {timeout} s")
