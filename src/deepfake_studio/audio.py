"""Audio I/O and light processing: load, save, resample, loudness, voice activity, trimming.

Everything that can fail because of the user's file raises :class:`AudioError` with one line.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import shutil
import subprocess
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from deepfake_studio.errors import AudioError

log = logging.getLogger(__name__)

SUPPORTED_INPUT = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".webm", ".opus")
SUPPORTED_OUTPUT = (".wav", ".flac", ".mp3")
MAX_INPUT_SECONDS = 600  # 10 minutes: more than enough for a reference voice or a detection clip.
MAX_INPUT_BYTES = 100 * 1024 * 1024  # 100 MB, checked before decoding anything.

_FRAME_MS = 30  # VAD frame used by the helpers below
_VAD_RATE = 16_000  # webrtcvad accepts 8/16/32/48 kHz; 16 kHz covers the speech band.
_GATE_FLOOR_DB = -50.0  # frames quieter than this (dBFS RMS) are never speech
_GATE_RANGE_DB = 40.0  # ... nor frames this far below the loudest frame
_NOISE_MARGIN_DB = 6.0  # speech must rise this far above the noise floor somewhere nearby
_HANGOVER_MS = 90
_SILENCE_LUFS = -70.0  # BS.1770 absolute gate: below it there is nothing worth amplifying
_PEAK_LIMIT = 0.99
_FFMPEG_TIMEOUT_S = 300


@dataclass(frozen=True, eq=False)  # eq=False: comparing/hashing ndarray fields is ill-defined
class Audio:
    """Mono float32 samples (roughly in [-1, 1]) and their sample rate."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        samples = np.ascontiguousarray(self.samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"Audio samples must be 1-D (mono), got shape {samples.shape}")
        if int(self.sample_rate) <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "sample_rate", int(self.sample_rate))

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    def with_samples(self, samples: np.ndarray) -> Audio:
        """Same sample rate, new samples."""
        return Audio(samples, self.sample_rate)

    def sign_file(self, path: Path) -> Path | None:
        """Write the provenance record of `path`, just written from this clip; None when the
        clip carries nothing to sign (only generated clips, `studio.GeneratedAudio`, do)."""
        return None


def import_webrtcvad():  # type: ignore[no-untyped-def]
    """The `webrtcvad` module, imported without the deprecation warning it triggers (it imports
    `pkg_resources`), which would otherwise reach every user of `prepare`, `train` and the VAD."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources.*")
        import webrtcvad

    return webrtcvad


def ffmpeg_path() -> str | None:
    """The ffmpeg executable: on PATH, else the one bundled with imageio-ffmpeg, else None."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg  # type: ignore[import-not-found]

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        return None


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average channels: (n,) or (n, channels) -> (n,) float32."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        return samples
    if samples.ndim == 2:
        return np.ascontiguousarray(samples.mean(axis=1, dtype=np.float32))
    raise ValueError(f"expected (n,) or (n, channels) samples, got shape {samples.shape}")


def resample(audio: Audio, sample_rate: int) -> Audio:
    """Resample with soxr (HQ); a no-op when the rate already matches."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if sample_rate == audio.sample_rate:
        return audio
    out = soxr.resample(audio.samples, audio.sample_rate, sample_rate, quality="HQ")
    return Audio(out, sample_rate)


def _read_error(path: Path, reason: str) -> AudioError:
    # !r quotes the path and escapes any newline in it, keeping the message on one line.
    return AudioError(f"cannot read {str(path)!r}: {reason}")


def _decode_ffmpeg(path: Path, ffmpeg: str) -> tuple[np.ndarray, int]:
    """Decode the first audio stream to float32 WAV on a pipe; -xerror turns damage into failure."""
    cmd = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-xerror",
        # "file:" stops ffmpeg treating names like "concat:..." or "http:..." as protocols.
        "-i", f"file:{path.absolute()}",
        "-map", "0:a:0", "-t", str(MAX_INPUT_SECONDS + 1),  # decode just enough to see "too long"
        "-f", "wav", "-acodec", "pcm_f32le", "-",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=_FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise _read_error(path, "decoding took too long (ffmpeg timed out)") from exc
    except OSError as exc:
        raise _read_error(path, f"could not run ffmpeg ({exc.strerror})") from exc
    if proc.returncode != 0:
        log.debug("ffmpeg failed on %s: %s", path, proc.stderr.decode(errors="replace"))
        if b"matches no streams" in proc.stderr:  # e.g. a video-only .webm
            raise _read_error(path, "the file has no audio track")
        raise _read_error(path, "not an audio file, or the data is corrupt")
    # ffmpeg writes 0xFFFFFFFF sizes to a pipe; libsndfile reads such a header to the end.
    data, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    return data, int(rate)


def load_audio(path: str | Path, sample_rate: int | None = None) -> Audio:
    """Read a file as mono float32, resampled to ``sample_rate`` if given.

    soundfile reads what libsndfile knows (wav/flac/ogg/mp3); ffmpeg decodes the rest.
    Raises AudioError for anything unusable, including files over MAX_INPUT_BYTES or
    audio longer than MAX_INPUT_SECONDS.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise _read_error(path, "file not found")
    if path.is_dir():
        raise _read_error(path, "it is a directory, not an audio file")
    if suffix not in SUPPORTED_INPUT:
        raise _read_error(
            path, f"unsupported file type {suffix or '(none)'!r}; use {', '.join(SUPPORTED_INPUT)}"
        )
    size = path.stat().st_size
    if size == 0:
        raise _read_error(path, "the file is empty")
    if size > MAX_INPUT_BYTES:
        raise _read_error(path, f"the file is over the {MAX_INPUT_BYTES // 2**20} MB limit")
    try:
        with path.open("rb"):
            pass  # surface permission problems as themselves, not as "corrupt"
    except OSError as exc:
        raise _read_error(path, exc.strerror or "cannot open the file") from exc

    too_long = f"the audio is longer than the {MAX_INPUT_SECONDS} s limit"
    try:
        if sf.info(str(path)).duration > MAX_INPUT_SECONDS:  # check before decoding it all
            raise _read_error(path, too_long)
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:
        log.debug("soundfile cannot read %s (%s); trying ffmpeg", path, exc)
        ffmpeg = ffmpeg_path()
        if ffmpeg is None:
            if suffix in (".wav", ".flac", ".ogg", ".mp3"):
                raise _read_error(path, "not an audio file, or the data is corrupt") from exc
            raise _read_error(path, f"reading {suffix} files needs ffmpeg: install ffmpeg") from exc
        data, rate = _decode_ffmpeg(path, ffmpeg)

    samples = to_mono(data)
    if samples.size == 0:
        raise _read_error(path, "the file contains no audio")
    if len(samples) > MAX_INPUT_SECONDS * rate:
        raise _read_error(path, too_long)
    if not np.isfinite(samples).all():
        raise _read_error(path, "the audio contains NaN or infinite values")
    audio = Audio(samples, rate)
    return resample(audio, sample_rate) if sample_rate else audio


# The provenance sidecar of an output file (provenance.records.SIDECAR_SUFFIX; not imported
# here because the provenance package imports this module).
_SIDECAR_SUFFIX = ".provenance.json"


def save_audio(audio: Audio, path: str | Path) -> Path:
    """Write .wav (16-bit), .flac (16-bit) or .mp3 (needs ffmpeg), atomically; returns the path.

    A clip the studio generated (`Studio.clone`, `Studio.speak`) is signed as well: its
    provenance record is written beside it (`Studio.save` does the same and returns both
    paths). For any other audio, a provenance record left beside `path` by an earlier file
    is removed: it described other samples and would fail `provenance verify`.
    """
    out = write_audio(audio, path)
    record = audio.sign_file(out)
    if record is None:
        out.with_name(out.name + _SIDECAR_SUFFIX).unlink(missing_ok=True)
    return out


def write_audio(audio: Audio, path: str | Path) -> Path:
    """Write the samples only (no provenance record), atomically; returns the path.

    Samples are clipped to [-1, 1]. The file appears complete or not at all: it is written
    to a temporary name in the same directory and renamed into place.
    """
    path = Path(path)
    suffix = path.suffix.lower()

    def fail(reason: str) -> AudioError:
        return AudioError(f"cannot write {str(path)!r}: {reason}")

    if suffix not in SUPPORTED_OUTPUT:
        raise fail(f"unsupported output type {suffix or '(none)'!r}; use .wav, .flac or .mp3")
    if audio.samples.size == 0:
        raise fail("the audio is empty")
    if not np.isfinite(audio.samples).all():
        raise fail("the audio contains NaN or infinite values")
    ffmpeg = ffmpeg_path() if suffix == ".mp3" else None
    if suffix == ".mp3" and ffmpeg is None:
        raise fail("writing .mp3 needs ffmpeg: install ffmpeg, or save as .wav or .flac")
    samples = np.clip(audio.samples, -1.0, 1.0)

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if ffmpeg is None:
            fmt = "WAV" if suffix == ".wav" else "FLAC"
            sf.write(str(tmp), samples, audio.sample_rate, format=fmt, subtype="PCM_16")
        else:
            _encode_mp3(samples, audio.sample_rate, tmp, ffmpeg)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())  # data on disk before the rename makes it visible
        os.replace(tmp, path)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
        raise fail(reason.splitlines()[0]) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # after a successful replace there is nothing to remove
    return path


def _encode_mp3(samples: np.ndarray, sample_rate: int, out: Path, ffmpeg: str) -> None:
    """Pipe 16-bit WAV into ffmpeg/LAME; it writes ``out`` itself so it can seek back and
    add the gapless (LAME/Xing) header that makes the decoded length match."""
    wav = io.BytesIO()
    sf.write(wav, samples, sample_rate, format="WAV", subtype="PCM_16")
    cmd = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "wav", "-i", "pipe:0", "-codec:a", "libmp3lame", "-q:a", "2",
        "-f", "mp3", f"file:{out.absolute()}",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, input=wav.getvalue(), capture_output=True, timeout=_FFMPEG_TIMEOUT_S, check=False
    )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"ffmpeg failed: {err[-1] if err else proc.returncode}")


def normalize_loudness(audio: Audio, target_lufs: float = -20.0) -> Audio:
    """Scale to ``target_lufs`` integrated loudness (ITU-R BS.1770, via pyloudnorm).

    Clips shorter than one 0.4 s gating block use RMS instead. Silence (below -70 LUFS) is
    returned unchanged. If the gain would push the peak past 0.99 the gain is reduced, so
    very peaky audio ends up quieter than the target rather than clipped.
    """
    samples = audio.samples.astype(np.float64)
    if not samples.any():
        return audio
    if audio.duration >= 0.4:
        import pyloudnorm

        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # all blocks under the gate -> empty mean -> -inf/NaN
            loudness = float(pyloudnorm.Meter(audio.sample_rate).integrated_loudness(samples))
    else:
        # For speech-band content K-weighted loudness is within ~1 dB of plain RMS in dBFS.
        loudness = float(20 * np.log10(np.sqrt(np.mean(samples**2))))
    if not np.isfinite(loudness) or loudness < _SILENCE_LUFS:
        return audio
    gain = 10 ** ((target_lufs - loudness) / 20)
    peak = float(np.abs(samples).max()) * gain
    if peak > _PEAK_LIMIT:
        gain *= _PEAK_LIMIT / peak
    return audio.with_samples(samples * gain)


def voice_activity(audio: Audio, aggressiveness: int = 2, frame_ms: int = 30) -> np.ndarray:
    """One bool per ``frame_ms`` frame (the last one zero-padded): True where there is speech.

    webrtcvad decides on 16-bit 16 kHz audio. An energy gate then drops what webrtcvad alone
    often calls speech (hiss, room tone, the tail after an utterance): frames under -50 dBFS,
    more than 40 dB below the loudest frame, or not within 90 ms of a frame that rises 6 dB
    above the clip's noise floor.
    """
    if frame_ms not in (10, 20, 30):
        raise ValueError(f"frame_ms must be 10, 20 or 30 (webrtcvad), got {frame_ms}")
    if aggressiveness not in (0, 1, 2, 3):
        raise ValueError(f"aggressiveness must be 0..3, got {aggressiveness}")
    webrtcvad = import_webrtcvad()
    if audio.samples.size == 0:
        return np.zeros(0, dtype=bool)
    x = resample(audio, _VAD_RATE).samples
    frame_len = _VAD_RATE * frame_ms // 1000
    n_frames = -(-len(x) // frame_len)
    frames = np.zeros(n_frames * frame_len, np.float32)
    frames[: len(x)] = x
    frames = frames.reshape(n_frames, frame_len)
    pcm = (np.clip(frames, -1.0, 1.0) * 32767).astype("<i2")

    level_db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = level_db > max(_GATE_FLOOR_DB, float(level_db.max()) - _GATE_RANGE_DB)
    # Frames clearly above the noise floor (10th percentile) anchor speech; quieter neighbours
    # (stop closures, soft onsets) count only near an anchor, so steady hiss never does.
    anchor = loud & (level_db > np.percentile(level_db, 10) + _NOISE_MARGIN_DB)
    reach = _HANGOVER_MS // frame_ms
    near = np.convolve(anchor, np.ones(2 * reach + 1), mode="full")[reach : reach + n_frames]
    gate = loud & (near > 0)  # "full" then cut: "same" returns the kernel's length on tiny clips

    vad = webrtcvad.Vad(aggressiveness)
    voiced = np.array([vad.is_speech(f.tobytes(), _VAD_RATE) for f in pcm], dtype=bool)
    return voiced & gate


def _frame_to_sample(frame: int, audio: Audio) -> int:
    """Start sample (in ``audio``'s rate) of a _FRAME_MS VAD frame, clamped to the clip."""
    return min(len(audio.samples), round(frame * _FRAME_MS * audio.sample_rate / 1000))


def speech_seconds(audio: Audio) -> float:
    """Total seconds of detected speech."""
    frames = int(voice_activity(audio, frame_ms=_FRAME_MS).sum())
    return min(audio.duration, frames * _FRAME_MS / 1000)


def trim_silence(audio: Audio, keep_ms: int = 100) -> Audio:
    """Cut leading/trailing non-speech, keeping ``keep_ms`` around it; unchanged if no speech."""
    voiced = np.flatnonzero(voice_activity(audio, frame_ms=_FRAME_MS))
    if voiced.size == 0:
        return audio
    keep = round(keep_ms * audio.sample_rate / 1000)
    start = max(0, _frame_to_sample(int(voiced[0]), audio) - keep)
    end = _frame_to_sample(int(voiced[-1]) + 1, audio) + keep
    return audio.with_samples(audio.samples[start:end])


def remove_long_pauses(audio: Audio, max_pause_ms: int = 300) -> Audio:
    """Shorten internal non-speech runs to ``max_pause_ms``, keeping half from each side.

    Leading/trailing silence is left alone (that is trim_silence's job). Joins are not
    cross-faded: the cut points lie in non-speech, where a discontinuity is inaudible
    in practice and harmless for a speaker embedding.
    """
    mask = voice_activity(audio, frame_ms=_FRAME_MS)
    if not mask.any():
        return audio
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = [0, *edges.tolist(), len(mask)]
    max_pause = round(max_pause_ms * audio.sample_rate / 1000)
    pieces: list[np.ndarray] = []
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        s, e = _frame_to_sample(a, audio), _frame_to_sample(b, audio)
        internal_pause = not mask[a] and 0 < i < len(bounds) - 2
        if internal_pause and e - s > max_pause:
            head = max_pause // 2
            pieces += [audio.samples[s : s + head], audio.samples[e - (max_pause - head) : e]]
        else:
            pieces.append(audio.samples[s:e])
    return audio.with_samples(np.concatenate(pieces))


def concatenate(parts: list[Audio], pause_seconds: float | list[float]) -> Audio:
    """Join same-rate parts with silence between them (one pause for all, or one per gap)."""
    if not parts:
        raise ValueError("concatenate needs at least one part")
    rate = parts[0].sample_rate
    if any(p.sample_rate != rate for p in parts):
        raise ValueError("concatenate needs parts with the same sample rate; resample first")
    if isinstance(pause_seconds, list | tuple):
        pauses = [float(p) for p in pause_seconds]
    else:  # one value (also a numpy scalar) for every gap
        pauses = [float(pause_seconds)] * (len(parts) - 1)
    if len(pauses) != len(parts) - 1 or any(p < 0 for p in pauses):
        raise ValueError("need one non-negative pause per gap between parts")
    pieces = [parts[0].samples]
    for pause, part in zip(pauses, parts[1:], strict=True):
        pieces += [np.zeros(round(pause * rate), np.float32), part.samples]
    return Audio(np.concatenate(pieces), rate)
