"""WAV for streams: a header written before the length is known, then 16-bit PCM pieces.

The RIFF and data sizes are set to 0xFFFFFFFF ("unknown"), the convention ffmpeg, sox and
browsers' audio elements accept for a WAV that is still being written (pipes, chunked HTTP).
"""

from __future__ import annotations

import struct

import numpy as np

UNKNOWN_SIZE = 0xFFFFFFFF
HEADER_BYTES = 44


def wav_header(sample_rate: int, channels: int = 1) -> bytes:
    """A 44-byte PCM16 WAV header with unknown RIFF and data sizes."""
    block = 2 * channels
    return (
        b"RIFF"
        + struct.pack("<I", UNKNOWN_SIZE)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16)
        + b"data"
        + struct.pack("<I", UNKNOWN_SIZE)
    )


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as little-endian 16-bit PCM (clipped, rounded to the nearest
    step: a cast alone truncates toward zero, up to a whole step off)."""
    return np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def read_stream_wav(data: bytes) -> tuple[int, np.ndarray]:
    """(sample rate, float samples) of a mono PCM16 WAV made by `wav_header` + `pcm16`."""
    if len(data) < HEADER_BYTES or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV stream")
    (rate,) = struct.unpack("<I", data[24:28])
    body = data[HEADER_BYTES:]
    body = body[: len(body) - len(body) % 2]
    return rate, np.frombuffer(body, "<i2").astype(np.float32) / 32767.0
