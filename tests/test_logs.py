"""Clean logs (issue 17): no base64 audio in worker logs, real host names, no pkg_resources
warning, counts in agreement with their nouns."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepfake_studio.audio import Audio
from deepfake_studio.text import plural


def test_worker_logs_say_how_big_a_result_is_not_what_it_is() -> None:
    pytest.importorskip("celery")
    from celery.app.trace import LOG_SUCCESS

    from deepfake_studio.service.distributed import Base64LogFilter, encode_audio

    noise = np.random.default_rng(0).normal(0, 0.1, 48_000).astype(np.float32)
    result = {"audio": encode_audio(Audio(noise, 24_000)), "watermarked": True}
    record = logging.LogRecord(
        "celery.app.trace", logging.INFO, __file__, 1, LOG_SUCCESS,
        {"id": "job-1", "name": "deepfake_studio.clone", "runtime": 2.5,
         "return_value": repr(result)},
        None,
    )  # fmt: skip
    assert len(record.getMessage()) > 50_000  # what a worker used to log for 2 s of audio
    assert Base64LogFilter().filter(record)
    line = record.getMessage()
    assert len(line) < 250, line
    assert line.startswith("Task deepfake_studio.clone[job-1] succeeded in 2.5s: ")
    assert "bytes of base64>" in line and "'watermarked': True" in line


def test_worker_names_show_the_real_host() -> None:
    pytest.importorskip("celery")
    from deepfake_studio.service.distributed import worker_node_name

    host = socket.gethostname()
    assert worker_node_name("box-1") == f"box-1@{host}"
    assert worker_node_name("a@%h") == f"a@{host}"
    assert worker_node_name(None) == f"studio@{host}"


def test_voice_activity_detection_prints_no_pkg_resources_warning() -> None:
    code = (
        "import numpy as np\n"
        "from deepfake_studio.audio import Audio, speech_seconds\n"
        "from deepfake_studio.encoder.preprocess import trim_long_silences\n"
        "tone = np.sin(np.arange(16000) / 5).astype(np.float32) * 0.3\n"
        "trim_long_silences(tone)\n"
        "print(speech_seconds(Audio(tone, 16000)) >= 0)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0 and ran.stdout.strip() == "True", ran.stderr
    assert "pkg_resources" not in ran.stderr, ran.stderr


def test_counts_agree_with_their_nouns(tmp_path: Path) -> None:
    from deepfake_studio.training.prepare import Summary

    assert [plural(n, "speaker") for n in (0, 1, 2)] == ["0 speakers", "1 speaker", "2 speakers"]
    rows = {"train": [["a.wav", "s1"], ["b.wav", "s2"]], "val": [["c.wav", "s3"]], "test": []}
    text = str(Summary(tmp_path, rows))
    assert "train 2 utterances / 2 speakers, val 1 utterance / 1 speaker" in text
    assert "test 0 utterances / 0 speakers" in text
