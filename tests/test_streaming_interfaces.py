"""Streaming speech at the Python API and the CLI (issue 24 item 2-3): pieces shorter than a
sentence as soon as they are decoded, watermarked, a provenance record when the stream ends,
`deepfake-studio speak --out -` as WAV on stdout. The decoder windows themselves:
tests/synthesizer/kokoro/test_streaming.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deepfake_studio import Studio
from deepfake_studio.audio import Audio, load_audio
from deepfake_studio.provenance import sidecar_path
from deepfake_studio.voices import Voice
from deepfake_studio.wav_stream import read_stream_wav
from tests.conftest import RunHere
from tests.test_cli import CLI, assert_one_line_error, run
from tests.test_emotion_interfaces import _stock_voice

TEXT = "The weather is lovely today, so we walked down to the river. Then it rained."


@pytest.fixture(scope="module")
def stream_voice(studio: Studio) -> Voice:
    return _stock_voice(studio, "Stream Stock")


def test_speak_stream_yields_short_pieces_that_join_into_a_marked_clip(
    studio: Studio, stream_voice: Voice, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    pieces = list(studio.speak_stream(TEXT, stream_voice))
    voiced = [p for p in pieces if p.samples.any()]
    assert len(voiced) >= 4  # sub-sentence pieces, not one per sentence
    assert pieces[0].duration <= 0.55  # the first window: 0.5 s of speech
    # The second sentence (1 s) plays after 3 s already sent: one window, decoded whole.
    assert [p.text for p in voiced].count("Then it rained.") == 1
    joined = studio.join_stream(pieces, TEXT)
    assert 3.0 < joined.duration < 8.0
    loudness = 20 * np.log10(np.sqrt(np.mean(joined.samples**2)))
    assert -30.0 < loudness < -14.0  # one gain near the -20 LUFS target, not silence
    assert studio.watermarker.detect(joined).present
    path, record = studio.save(joined, tmp_path / "streamed.wav")
    saved = json.loads(record.read_text())
    assert saved["parameters"]["streamed"] is True
    assert studio.watermarker.detect(load_audio(path)).present


def test_only_the_newest_streams_are_kept_with_their_records(
    studio: Studio, stream_voice: Voice, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    small = Studio(replace(studio.config, data_dir=tmp_path, streams_kept=2))
    small._engines = studio._engines  # the loaded models, not a second copy
    clip = studio.join_stream(list(studio.speak_stream("Hi.", stream_voice)), "Hi.")
    kept = []
    for n in range(3):
        path, record = small.keep_stream(clip, f"s{n}")
        os.utime(path, (n + 1.0, n + 1.0))  # distinct ages whatever the clock's resolution
        kept.append(path)
        assert record == sidecar_path(path) and record.exists()
    left = sorted(p.name for p in (tmp_path / "streams").iterdir())
    assert left == ["s1.wav", "s1.wav.provenance.json", "s2.wav", "s2.wav.provenance.json"]


def test_warm_streaming_with_speak_sets_up_every_model_a_stream_uses(
    studio: Studio, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    fresh = Studio(replace(studio.config, data_dir=tmp_path))
    fresh._engines = studio._engines  # the loaded engines, not a second copy
    assert "watermark" not in fresh.loaded_models()
    fresh.warm_streaming(speak=True)  # what `serve` runs in the background at start
    assert {"kokoro-streaming", "watermark"} <= set(fresh.loaded_models())
    assert list((tmp_path / "voices").glob("*")) == []  # its throwaway voice is not kept


def test_speak_stream_without_watermark_is_unmarked(studio: Studio, stream_voice: Voice) -> None:
    pieces = list(studio.speak_stream("Hello there, friend.", stream_voice, watermark=False))
    joined = studio.join_stream(pieces, "Hello there, friend.")
    assert not joined.watermarked
    assert not studio.watermarker.detect(Audio(joined.samples, joined.sample_rate)).present


def test_cli_speak_streams_wav_to_stdout_and_writes_a_record_to_a_file(
    studio: Studio, stream_voice: Voice, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "DEEPFAKE_STUDIO_HOME": str(studio.data_dir)}
    streams = studio.data_dir / "streams"
    before = set(streams.glob("*.wav")) if streams.exists() else set()
    piped = subprocess.run(
        [*CLI, "speak", "--voice", stream_voice.name, "--text", TEXT, "--out", "-"],
        capture_output=True,
        env=env,
        timeout=600,
    )
    assert piped.returncode == 0, piped.stderr.decode()
    rate, samples = read_stream_wav(piped.stdout)
    assert rate == 24_000
    assert 3.0 < len(samples) / rate < 9.0
    assert studio.watermarker.detect(Audio(samples, rate)).present
    assert "first audio" in piped.stderr.decode()
    # What went down the pipe is kept in the data folder with its signed record.
    (kept,) = set(streams.glob("*.wav")) - before
    assert f"kept={kept}" in piped.stderr.decode()
    assert json.loads(sidecar_path(kept).read_text())["parameters"]["streamed"] is True
    # The same speech, without the pause that ended the stream.
    assert len(samples) / rate - 1.0 < load_audio(kept).duration <= len(samples) / rate

    out = tmp_path / "speak.wav"
    made = run(
        "speak", "-v", stream_voice.name, "-t", "Good morning.", "-o", out, home=studio.data_dir
    )
    assert made.returncode == 0, made.stderr
    assert sidecar_path(out).exists()
    assert 0.5 < load_audio(out).duration < 3.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text", "Hi.", "--play", "--out", "x.wav"], "exactly one of --out"),
        (["--text", "Hi."], "exactly one of --out"),
        (["--text", "Hi.", "--out", "x.ogg"], "cannot write .ogg"),
        (["--text", "Hi.", "--out", "-", "--emotion", "bored"], "bored"),
        (["--text", "Hi.", "--out", "-", "--emotion-strength", "2"], "strength"),
        (["--text", "Hi.", "--out", "-", "--language", "xx"], "xx"),
        (["--text", "Hi.", "--play"], "--play"),  # no sounddevice here (or no device)
    ],
)
def test_cli_speak_bad_input_is_one_line(
    tmp_path: Path, args: list[str], message: str, run_here: RunHere
) -> None:
    result = run_here("speak", "--voice", "nobody", *args, home=tmp_path)
    assert_one_line_error(result, message)
    assert result.stdout == ""


def test_pcm16_rounds_to_the_nearest_step_and_reads_back_within_half_a_step() -> None:
    from deepfake_studio.wav_stream import pcm16, read_stream_wav, wav_header

    step = 1 / 32767
    samples = np.array([0.7 * step, -0.7 * step, 0.3 * step, 0.5, -0.25, 1.5, -1.5], np.float32)
    assert np.frombuffer(pcm16(samples), "<i2")[:3].tolist() == [1, -1, 0]  # a cast gave 0, 0, 0
    rate, back = read_stream_wav(wav_header(24_000) + pcm16(samples))
    assert rate == 24_000
    assert float(np.abs(back - np.clip(samples, -1, 1)).max()) <= 0.5 * step + 1e-9
