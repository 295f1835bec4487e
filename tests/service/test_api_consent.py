"""Consent proven by voice through the REST API (issue 22 item 3), on a server that requires it
(what `serve` does beyond loopback): challenge, refusal in one line, enrollment with evidence.

Real VCTK speech (see tests/test_consent.py): p225 reads "Six spoons of fresh snow peas, five
thick slabs of blue cheese, ...", so a challenge of four of those words is one she really said.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deepfake_studio import Studio
from deepfake_studio.consent import CHALLENGE_WORDS, Challenge, new_challenge
from deepfake_studio.service.api import create_app

API = "/api/v1"


@pytest.fixture(scope="module")
def client(studio: Studio) -> Iterator[TestClient]:
    with TestClient(create_app(studio, voice_consent=True)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def p225(speech_dir: Path) -> Path:
    return speech_dir / "vctk" / "VCTK_p225"


def _files(reference: Path, consent: Path | None = None) -> dict[str, Any]:
    files = {"audio": (reference.name, reference.read_bytes(), "audio/flac")}
    if consent is not None:
        files["consent_audio"] = (consent.name, consent.read_bytes(), "audio/flac")
    return files


def _wait(client: TestClient, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"{API}/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s")


def test_the_challenge_endpoint_issues_a_fresh_phrase(client: TestClient) -> None:
    first = client.post(f"{API}/consent/challenge", json={"name": "Ana"})
    second = client.post(f"{API}/consent/challenge", json={"name": "Ana"})
    assert first.status_code == 201, first.text
    body = first.json()
    assert len(body["words"]) == 4 and set(body["words"]) <= set(CHALLENGE_WORDS)
    assert body["sentence"].startswith("I, Ana, agree that Deepfake Studio may clone my voice.")
    assert body["challenge_id"] != second.json()["challenge_id"]
    bad = client.post(f"{API}/consent/challenge", json={"name": "../etc"})
    assert bad.status_code == 422 and "invalid voice name" in bad.json()["error"]


def test_a_typed_statement_is_not_enough_on_this_server(client: TestClient, p225: Path) -> None:
    response = client.post(
        f"{API}/voices",
        data={"name": "Typed Only", "consent": "I agree.", "engine": "piper"},
        files=_files(p225 / "p225_011.flac"),
    )
    assert response.status_code == 422
    assert "needs consent proven by voice" in response.json()["error"]
    missing_id = client.post(
        f"{API}/voices",
        data={"name": "No Id", "engine": "piper"},
        files=_files(p225 / "p225_011.flac", p225 / "p225_003.flac"),
    )
    assert missing_id.status_code == 422 and "challenge_id" in missing_id.json()["error"]


def test_a_replayed_recording_is_refused_in_one_line(client: TestClient, p225: Path) -> None:
    issued = client.post(f"{API}/consent/challenge", json={"name": "Replay Ana"}).json()
    jobs_before = client.get(f"{API}/jobs").json()["total"]
    response = client.post(
        f"{API}/voices",
        data={"name": "Replay Ana", "engine": "piper", "challenge_id": issued["challenge_id"]},
        files=_files(p225 / "p225_011.flac", p225 / "p225_008.flac"),  # not the phrase
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert "\n" not in error and error.startswith("consent recording refused: phrase check failed")
    assert client.get(f"{API}/jobs").json()["total"] == jobs_before  # no job was queued
    again = client.post(
        f"{API}/voices",
        data={"name": "Replay Ana", "engine": "piper", "challenge_id": issued["challenge_id"]},
        files=_files(p225 / "p225_011.flac", p225 / "p225_003.flac"),
    )
    assert again.status_code == 422 and "already used" in again.json()["error"]


def test_the_speaker_reading_the_phrase_enrolls_with_evidence(
    client: TestClient, studio: Studio, p225: Path
) -> None:
    name = f"Proven {uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    # As if the endpoint had drawn these words: four that p225_003 really says.
    challenge = studio.challenges.add(
        Challenge(
            id=new_challenge(name).id,
            name=name,
            words=("spoons", "snow", "cheese", "brother"),
            issued=now.isoformat(),
            expires=(now + timedelta(minutes=5)).isoformat(),
        )
    )
    consent = p225 / "p225_003.flac"
    response = client.post(
        f"{API}/voices",
        data={"name": name, "engine": "piper", "challenge_id": challenge.id},
        files=_files(p225 / "p225_011.flac", consent),
    )
    assert response.status_code == 202, response.text
    job = _wait(client, response.json()["job_id"])
    assert job["state"] == "done", job["error"]
    voice = client.get(f"{API}/voices/{response.json()['voice_id']}").json()
    assert voice["consent"] == challenge.sentence
    evidence = voice["consent_evidence"]
    assert evidence["accepted"] and evidence["words_heard"] == 4
    assert evidence["recording_sha256"] == hashlib.sha256(consent.read_bytes()).hexdigest()
    # What is made with the voice carries the evidence in its signed record.
    spoken = client.post(
        f"{API}/synthesize", json={"text": "Proven by voice.", "voice_id": voice["voice_id"]}
    )
    assert spoken.status_code == 202, spoken.text
    assert _wait(client, spoken.json()["job_id"])["state"] == "done"
    record = client.get(f"{API}/jobs/{spoken.json()['job_id']}/provenance").json()
    assert record["consent"]["evidence"]["speaker_similarity"] == evidence["speaker_similarity"]
