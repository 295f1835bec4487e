"""Tests for deepfake_studio.audio: I/O round trips, codecs via ffmpeg, DSP helpers, errors."""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import lfilter

from deepfake_studio import audio as audio_mod
from deepfake_studio.audio import (
    Audio,
    concatenate,
    ffmpeg_path,
    load_audio,
    normalize_loudness,
    remove_long_pauses,
    resample,
    save_audio,
    speech_seconds,
    to_mono,
    trim_silence,
    voice_activity,
)
from deepfake_studio.errors import AudioError
from tests.conftest import SHARED_DATA, skip_or_fail_in_ci

SR = 16_000
SPEECH_DIR = SHARED_DATA / "speech"


def voiced(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """Vowel-like signal: a gliding ~120 Hz pulse train through three formant resonators."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sr)
    t = np.arange(n) / sr
    phase = np.cumsum((120 + 20 * np.sin(2 * np.pi * 0.7 * t)) / sr)
    x = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
    x += 0.02 * rng.standard_normal(n)  # a little aspiration noise
    for fc, bw in ((700, 90), (1220, 110), (2600, 160)):
        r = np.exp(-np.pi * bw / sr)
        x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / sr), r * r], x)
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)  # syllable-rate envelope
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def silence(seconds: float, sr: int = SR) -> np.ndarray:
    return np.zeros(round(seconds * sr), np.float32)


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64)))))


def one_line_error(exc: pytest.ExceptionInfo[AudioError]) -> str:
    message = str(exc.value)
    assert message and "\n" not in message
    return message


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    exe = ffmpeg_path()
    if exe is None:
        skip_or_fail_in_ci("ffmpeg is not installed")
    return exe


@pytest.fixture(scope="module")
def real_speech() -> Path:
    """A short LJSpeech clip (speech from start to end) from the shared data set."""
    manifest = SPEECH_DIR / "manifest.csv"
    if not manifest.is_file():
        skip_or_fail_in_ci(f"shared speech data not available ({manifest} missing)")
    with manifest.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["corpus"] == "ljspeech"]
    rows = [r for r in rows if 1.5 <= float(r["duration_s"]) <= 4.0]
    if not rows or not (SPEECH_DIR / rows[0]["path"]).is_file():
        skip_or_fail_in_ci("no short LJSpeech clip found in the shared data set")
    return SPEECH_DIR / rows[0]["path"]


def encode(ffmpeg: str, src: Path, dst: Path, codec: str) -> Path:
    subprocess.run(
        [ffmpeg, "-nostdin", "-y", "-loglevel", "error", "-i", str(src), "-c:a", codec, str(dst)],
        check=True,
        timeout=60,
    )
    return dst


# --- Audio / basic helpers ------------------------------------------------------------------


def test_audio_coerces_to_float32_and_rejects_multichannel() -> None:
    a = Audio(np.ones(8000, dtype=np.float64), SR)
    assert a.samples.dtype == np.float32
    assert a.duration == pytest.approx(0.5)
    assert a.with_samples(np.zeros(4)).sample_rate == SR
    with pytest.raises(ValueError):
        Audio(np.zeros((10, 2), np.float32), SR)


def test_to_mono_averages_channels() -> None:
    stereo = np.stack([np.ones(5), -np.ones(5) * 0.5], axis=1)
    assert to_mono(stereo).shape == (5,)
    np.testing.assert_allclose(to_mono(stereo), 0.25)
    assert to_mono(np.ones(3)).shape == (3,)


def test_resample_changes_length_proportionally_and_keeps_level() -> None:
    t = np.arange(SR) / SR
    a = Audio(0.5 * np.sin(2 * np.pi * 440 * t), SR)
    for rate in (8000, 22050, 24000, 48000):
        b = resample(a, rate)
        assert b.sample_rate == rate
        assert abs(len(b.samples) - rate) <= 1
        assert rms_db(b.samples) == pytest.approx(rms_db(a.samples), abs=0.1)
    assert resample(a, SR) is a


def test_concatenate_inserts_pauses() -> None:
    parts = [Audio(np.ones(100), SR), Audio(np.ones(200), SR), Audio(np.ones(300), SR)]
    joined = concatenate(parts, 0.01)
    assert len(joined.samples) == 600 + 2 * 160
    assert not joined.samples[100:260].any()
    assert len(concatenate(parts, [0.0, 0.1]).samples) == 600 + 1600
    with pytest.raises(ValueError):
        concatenate(parts, [0.1])
    with pytest.raises(ValueError):
        concatenate([parts[0], Audio(np.ones(10), 22050)], 0.1)


# --- load / save ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_lossless_round_trip_keeps_length_and_level(tmp_path: Path, suffix: str) -> None:
    a = Audio(voiced(1.0), SR)
    out = save_audio(a, tmp_path / "nested" / "dir" / f"clip{suffix}")  # parents are created
    assert out.is_file()
    b = load_audio(out)
    assert b.sample_rate == SR
    assert len(b.samples) == len(a.samples)
    np.testing.assert_allclose(b.samples, a.samples, atol=1e-4)  # 16-bit quantisation
    assert rms_db(b.samples) == pytest.approx(rms_db(a.samples), abs=0.05)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left behind


def test_save_clips_to_unit_range(tmp_path: Path) -> None:
    b = load_audio(save_audio(Audio(np.linspace(-2, 2, SR), SR), tmp_path / "loud.wav"))
    assert np.abs(b.samples).max() <= 1.0
    assert b.samples[0] == pytest.approx(-1.0, abs=1e-4)


def test_stereo_file_is_mixed_to_mono(tmp_path: Path) -> None:
    v = voiced(0.5)
    sf.write(tmp_path / "stereo.wav", np.stack([v, -0.5 * v], axis=1), SR, subtype="FLOAT")
    b = load_audio(tmp_path / "stereo.wav")
    assert b.samples.ndim == 1
    np.testing.assert_allclose(b.samples, 0.25 * v, atol=1e-6)


def test_load_resamples_when_asked(tmp_path: Path) -> None:
    save_audio(Audio(voiced(1.0), SR), tmp_path / "clip.wav")
    b = load_audio(tmp_path / "clip.wav", sample_rate=24_000)
    assert b.sample_rate == 24_000
    assert abs(len(b.samples) - 24_000) <= 1


@pytest.mark.parametrize(
    ("suffix", "codec"),
    [
        (".mp3", "libmp3lame"),
        (".ogg", "libvorbis"),
        (".m4a", "aac"),
        (".webm", "libopus"),
        (".opus", "libopus"),
    ],
)
def test_compressed_formats_load(tmp_path: Path, ffmpeg: str, suffix: str, codec: str) -> None:
    a = Audio(voiced(1.5), SR)
    src = save_audio(a, tmp_path / "src.wav")
    b = load_audio(encode(ffmpeg, src, tmp_path / f"clip{suffix}", codec))
    assert b.duration == pytest.approx(a.duration, abs=0.1)
    assert rms_db(b.samples) == pytest.approx(rms_db(a.samples), abs=2.0)
    c = load_audio(tmp_path / f"clip{suffix}", sample_rate=SR)
    assert c.sample_rate == SR
    assert c.duration == pytest.approx(a.duration, abs=0.1)


def test_save_mp3_round_trip(tmp_path: Path, ffmpeg: str) -> None:
    a = Audio(voiced(1.5), SR)
    b = load_audio(save_audio(a, tmp_path / "out.mp3"))
    assert b.duration == pytest.approx(a.duration, abs=0.1)
    assert rms_db(b.samples) == pytest.approx(rms_db(a.samples), abs=2.0)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp3"]


def test_missing_ffmpeg_is_explained(
    tmp_path: Path, ffmpeg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = save_audio(Audio(voiced(0.5), SR), tmp_path / "src.wav")
    m4a = encode(ffmpeg, src, tmp_path / "clip.m4a", "aac")
    monkeypatch.setattr(audio_mod, "ffmpeg_path", lambda: None)
    with pytest.raises(AudioError) as exc:
        load_audio(m4a)
    assert "install ffmpeg" in one_line_error(exc)
    with pytest.raises(AudioError) as exc:
        save_audio(Audio(voiced(0.5), SR), tmp_path / "out.mp3")
    assert "install ffmpeg" in one_line_error(exc)
    assert not (tmp_path / "out.mp3").exists()


# --- load errors ----------------------------------------------------------------------------


def _flac_bytes(tmp_path: Path) -> bytes:
    sf.write(tmp_path / "good.flac", voiced(2.0), SR, subtype="PCM_16")
    return (tmp_path / "good.flac").read_bytes()


def _damaged_flac(tmp_path: Path) -> bytes:
    data = bytearray(_flac_bytes(tmp_path))
    for i in range(2000, len(data), 301):  # keep the header, wreck the frames
        data[i] ^= 0xFF
    return bytes(data)


def _nan_wav(tmp_path: Path) -> bytes:
    x = voiced(0.5)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, SR, subtype="FLOAT")
    return (tmp_path / "nan.wav").read_bytes()


def _header_only_wav(tmp_path: Path) -> bytes:
    sf.write(tmp_path / "h.wav", np.zeros(0, np.float32), SR, subtype="PCM_16")
    return (tmp_path / "h.wav").read_bytes()


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("text.wav", lambda tmp: b"hello, this is not audio\n" * 20, "not an audio file"),
        ("truncated.flac", lambda tmp: _flac_bytes(tmp)[:9000], "corrupt"),
        ("damaged.flac", _damaged_flac, "corrupt"),
        ("empty.wav", lambda tmp: b"", "empty"),
        ("header_only.wav", _header_only_wav, "no audio"),
        ("nan.wav", _nan_wav, "NaN"),
        ("notes.txt", lambda tmp: b"some text", "unsupported file type"),
        ("clip.aiff", lambda tmp: b"FORM", "unsupported file type"),
        ("noext", lambda tmp: b"RIFF", "unsupported file type"),
    ],
)
def test_bad_files_raise_one_line_audio_error(
    tmp_path: Path, name: str, make: Callable[[Path], bytes], expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(make(tmp_path))
    with pytest.raises(AudioError) as exc:
        load_audio(path)
    message = one_line_error(exc)
    assert name in message
    assert expected in message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as exc:
        load_audio(tmp_path / "nope.wav")
    assert "not found" in one_line_error(exc)
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(AudioError) as exc:
        load_audio(tmp_path / "folder.wav")
    assert "directory" in one_line_error(exc)


def test_size_and_duration_limits(
    tmp_path: Path, ffmpeg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = save_audio(Audio(voiced(2.0), SR), tmp_path / "two_seconds.wav")
    m4a = encode(ffmpeg, src, tmp_path / "two_seconds.m4a", "aac")
    monkeypatch.setattr(audio_mod, "MAX_INPUT_SECONDS", 1)
    for path in (src, m4a):  # soundfile path and ffmpeg path
        with pytest.raises(AudioError) as exc:
            load_audio(path)
        assert "limit" in one_line_error(exc)
    monkeypatch.setattr(audio_mod, "MAX_INPUT_SECONDS", 600)
    monkeypatch.setattr(audio_mod, "MAX_INPUT_BYTES", 1000)
    with pytest.raises(AudioError) as exc:
        load_audio(src)
    assert "MB limit" in one_line_error(exc)


# --- save errors / atomicity ----------------------------------------------------------------


def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.wav"
    target.write_bytes(b"previous take")

    def write_half_then_fail(file: str, *args: object, **kwargs: object) -> None:
        Path(file).write_bytes(b"RIFF" + b"\0" * 100)  # a partial file on disk...
        raise OSError(28, "No space left on device")  # ...then the disk fills up

    monkeypatch.setattr(audio_mod.sf, "write", write_half_then_fail)
    with pytest.raises(AudioError) as exc:
        save_audio(Audio(voiced(0.5), SR), target)
    assert "No space left" in one_line_error(exc)
    assert target.read_bytes() == b"previous take"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]  # and no temp file remains

    with pytest.raises(AudioError):
        save_audio(Audio(voiced(0.5), SR), tmp_path / "new.flac")
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_save_errors(tmp_path: Path) -> None:
    (tmp_path / "taken.wav").mkdir()
    for path, words in [
        (tmp_path / "taken.wav", "directory"),
        (tmp_path / "out.ogg", "unsupported output type"),
    ]:
        with pytest.raises(AudioError) as exc:
            save_audio(Audio(voiced(0.2), SR), path)
        assert words in one_line_error(exc).lower()
    with pytest.raises(AudioError):
        save_audio(Audio(np.zeros(0), SR), tmp_path / "empty.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.wav"]


# --- loudness -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [-16.0, -20.0, -26.0])
def test_normalize_loudness_reaches_target(target: float) -> None:
    a = Audio(0.05 * voiced(2.0) / 0.3, SR)  # start well below every target
    b = normalize_loudness(a, target)
    measured = pyloudnorm.Meter(SR).integrated_loudness(b.samples.astype(np.float64))
    assert measured == pytest.approx(target, abs=1.0)
    assert np.abs(b.samples).max() <= 0.99 + 1e-6


def test_normalize_loudness_short_clip_silence_and_peak_limit() -> None:
    short = normalize_loudness(Audio(voiced(0.2), SR), -20.0)  # under one 0.4 s block: RMS
    assert rms_db(short.samples) == pytest.approx(-20.0, abs=1.0)

    quiet = Audio(silence(1.0), SR)
    assert not normalize_loudness(quiet, -20.0).samples.any()

    spiky = np.zeros(SR, np.float32)
    spiky[::1000] = 0.5  # very high crest factor: the target would need a peak far above 1
    limited = normalize_loudness(Audio(spiky, SR), -10.0)
    assert np.abs(limited.samples).max() == pytest.approx(0.99, abs=1e-3)


# --- voice activity -------------------------------------------------------------------------


def test_voice_activity_frames() -> None:
    a = Audio(np.concatenate([silence(0.5), voiced(1.0), silence(0.5)]), SR)
    mask = voice_activity(a)
    assert mask.dtype == bool
    assert len(mask) == int(np.ceil(a.duration / 0.03))
    assert not mask[:10].any() and not mask[-10:].any()
    assert mask[len(mask) // 2]
    with pytest.raises(ValueError):
        voice_activity(a, frame_ms=25)


def test_voice_activity_on_clips_shorter_than_its_hangover() -> None:
    # 60 ms: fewer frames than the 90 ms hangover's kernel (crashed with numpy's "same")
    for seconds in (0.03, 0.06, 0.1):
        a = Audio(voiced(seconds), SR)
        assert len(voice_activity(a)) == int(np.ceil(a.duration / 0.03))
        assert trim_silence(a).duration <= a.duration


def test_speech_seconds_silence_noise_and_voice() -> None:
    assert speech_seconds(Audio(silence(2.0), SR)) == pytest.approx(0.0, abs=0.03)
    hiss = np.random.default_rng(1).standard_normal(2 * SR).astype(np.float32) * 0.01
    assert speech_seconds(Audio(hiss, SR)) < 0.1  # steady noise is not speech
    a = Audio(np.concatenate([silence(0.7), voiced(1.5), silence(0.8)]), SR)
    assert speech_seconds(a) == pytest.approx(1.5, abs=0.15)


def test_trim_silence_removes_padding() -> None:
    v = voiced(1.2)
    a = Audio(np.concatenate([silence(0.8), v, silence(0.6)]), SR)
    t = trim_silence(a, keep_ms=100)
    assert t.duration == pytest.approx(1.2 + 0.2, abs=0.1)
    assert rms_db(t.samples) > rms_db(a.samples)  # what was cut was silence
    quiet = Audio(silence(1.0), SR)
    assert trim_silence(quiet) is quiet  # nothing to anchor on: unchanged


def test_remove_long_pauses_shortens_only_long_gaps() -> None:
    v1, v2 = voiced(0.6, seed=1), voiced(0.6, seed=2)
    long_gap = Audio(np.concatenate([silence(0.3), v1, silence(1.2), v2, silence(0.3)]), SR)
    out = remove_long_pauses(long_gap, max_pause_ms=300)
    # 1.2 s gap -> ~0.3 s (frame granularity is 30 ms); the outer silences stay.
    assert out.duration == pytest.approx(long_gap.duration - 0.9, abs=0.1)
    short_gap = Audio(np.concatenate([v1, silence(0.15), v2]), SR)
    assert len(remove_long_pauses(short_gap).samples) == len(short_gap.samples)


def test_real_speech_clip(real_speech: Path) -> None:
    a = load_audio(real_speech)
    spoken = speech_seconds(a)
    assert 0.8 * a.duration <= spoken <= a.duration  # LJSpeech clips are trimmed speech
    rng = np.random.default_rng(0)
    pad = (rng.standard_normal(a.sample_rate) * 1e-3).astype(np.float32)  # 1 s of faint hiss
    padded = a.with_samples(np.concatenate([pad, a.samples, pad]))
    assert speech_seconds(padded) == pytest.approx(spoken, abs=0.15)
    trimmed = trim_silence(padded)
    assert padded.duration - trimmed.duration == pytest.approx(2.0, abs=0.3)
    normalized = normalize_loudness(a, -23.0)
    meter = pyloudnorm.Meter(a.sample_rate)
    assert meter.integrated_loudness(normalized.samples.astype(np.float64)) == pytest.approx(
        -23.0, abs=1.0
    )
