"""Signed provenance records and the studio key: no models needed, all fast."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepfake_studio.audio import Audio, save_audio
from deepfake_studio.provenance import (
    Failure,
    ProvenanceError,
    embed_in_flac,
    key_path,
    load_or_create_key,
    load_public_key,
    make_record,
    sidecar_path,
    text_sha256,
    verify,
    write_sidecar,
)
from deepfake_studio.provenance import keys as keys_module

TEXT = "This sentence was never spoken by the person you hear."


@dataclass
class FakeVoice:
    """The fields a record takes from deepfake_studio.voices.Voice."""

    name: str = "Alice Example"
    consent: str = "I, Alice, agree to this voice being cloned for the demo."
    source_sha256: str = "ab" * 32
    created: str = "2025-01-02T03:04:05+00:00"

    @property
    def id(self) -> str:
        return "alice-example"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def output(tmp_path: Path) -> Path:
    """A 1 s 24 kHz 16-bit WAV, as the studio writes it."""
    rng = np.random.default_rng(0)
    t = np.arange(24_000) / 24_000
    samples = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)
    return save_audio(Audio(samples.astype(np.float32), 24_000), tmp_path / "out.wav")


def _signed(output: Path, data_dir: Path, **overrides: object) -> dict:
    args: dict = {
        "key": load_or_create_key(data_dir),
        "text": TEXT,
        "engine": "kokoro",
        "voice": FakeVoice(),
        "watermarked": True,
        "parameters": {"speed": 1.0, "seed": 7},
    }
    args.update(overrides)
    record = make_record(output, **args)
    write_sidecar(output, record)
    return record


def test_record_verifies_and_carries_the_documented_fields(output: Path, data_dir: Path) -> None:
    record = _signed(output, data_dir)
    report = verify(output, data_dir=data_dir)
    assert report.ok and report.intact, report.details
    assert report.failures == ()
    assert report.key_is_local and report.key_trusted
    assert report.record_path == sidecar_path(output) == output.with_name("out.wav.provenance.json")
    assert report.summary().startswith("verified: signed by this studio's key")

    assert record["tool"]["name"] == "deepfake-studio"
    assert record["engine"] == "kokoro"
    assert record["voice"] == {
        "id": "alice-example",
        "name": "Alice Example",
        "source_sha256": "ab" * 32,
    }
    assert record["consent"] == {
        "statement": FakeVoice.consent,
        "time": FakeVoice.created,
        "reference_sha256": "ab" * 32,
    }
    assert record["text_sha256"] == text_sha256(TEXT)
    assert record["audio"]["sample_rate"] == 24_000 and record["audio"]["frames"] == 24_000
    assert record["watermark"]["applied"] is True
    assert record["watermark"]["layers"] == ["perthnet-implicit"]  # a plain AudioWatermarker's
    assert record["parameters"] == {"speed": 1.0, "seed": 7}
    assert record["created"].endswith("+00:00")
    assert record["signer"]["key_id"] == load_or_create_key(data_dir).key_id
    # The sidecar on disk is exactly the returned record.
    assert json.loads(sidecar_path(output).read_text()) == record


def test_flipping_one_sample_is_an_audio_hash_mismatch(output: Path, data_dir: Path) -> None:
    _signed(output, data_dir)
    samples, rate = sf.read(output, dtype="int16")
    samples[12_345] += 1  # one least-significant bit of one sample
    sf.write(output, samples, rate, subtype="PCM_16")
    report = verify(output, data_dir=data_dir)
    assert report.failures == (Failure.AUDIO_MISMATCH,)
    assert report.signature_valid and not report.audio_matches and not report.ok
    assert report.details[0].startswith("audio hash mismatch")


def test_editing_one_field_is_signature_invalid(output: Path, data_dir: Path) -> None:
    _signed(output, data_dir)
    side = sidecar_path(output)
    record = json.loads(side.read_text())
    record["parameters"]["speed"] = 1.5
    side.write_text(json.dumps(record))
    report = verify(output, data_dir=data_dir)
    assert report.failures == (Failure.SIGNATURE_INVALID,)
    assert report.audio_matches and not report.signature_valid
    assert report.details[0].startswith("signature invalid")


def test_swapping_in_another_key_is_caught(output: Path, data_dir: Path, tmp_path: Path) -> None:
    """Re-signing a forged record with one's own key gives a valid signature by an unknown key."""
    _signed(output, data_dir)
    forged = _signed(output, tmp_path / "forger", engine="piper")
    report = verify(output, data_dir=data_dir)
    assert report.failures == (Failure.UNKNOWN_KEY,)
    assert report.intact and not report.key_is_local and not report.key_trusted
    assert report.key_id == forged["signer"]["key_id"]
    # ... but it is fine when that key is the one the caller trusts.
    trusted = verify(output, trusted_key=forged["signer"]["key_id"], data_dir=data_dir)
    assert trusted.ok and trusted.key_trusted and not trusted.key_is_local
    assert verify(output, trusted_key=forged["signer"]["public_key"], data_dir=data_dir).ok


def test_missing_and_unparsable_records(output: Path, data_dir: Path, tmp_path: Path) -> None:
    missing = verify(output, data_dir=data_dir)
    assert missing.failures == (Failure.MISSING_RECORD,) and missing.record is None
    assert verify(output, tmp_path / "nope.json", data_dir=data_dir).failures == (
        Failure.MISSING_RECORD,
    )
    sidecar_path(output).write_text('{"format": "deepfake-studio/provenance", ')
    assert verify(output, data_dir=data_dir).failures == (Failure.BAD_JSON,)
    sidecar_path(output).write_text('{"hello": "world"}')
    assert verify(output, data_dir=data_dir).failures == (Failure.MALFORMED_RECORD,)


def test_record_for_an_ad_hoc_reference_has_no_consent(output: Path, data_dir: Path) -> None:
    voice = FakeVoice(name="reference", consent="")
    record = _signed(output, data_dir, voice=voice, watermarked=False)
    assert record["consent"] is None
    assert record["watermark"] == {"applied": False, "method": None, "model": None, "layers": []}
    assert verify(output, data_dir=data_dir).ok


def test_lossless_conversion_keeps_the_audio_hash(output: Path, data_dir: Path) -> None:
    """The hash is over decoded 16-bit samples, so WAV -> FLAC is still the same audio."""
    _signed(output, data_dir)
    samples, rate = sf.read(output, dtype="int16")
    flac = output.with_suffix(".flac")
    sf.write(flac, samples, rate, subtype="PCM_16")
    assert verify(flac, sidecar_path(output), data_dir=data_dir).ok


def test_record_embedded_in_flac_verifies_without_a_sidecar(tmp_path: Path, data_dir: Path) -> None:
    out = save_audio(
        Audio(np.linspace(-0.5, 0.5, 16_000, dtype=np.float32), 16_000), tmp_path / "o.flac"
    )
    record = make_record(
        out, key=load_or_create_key(data_dir), text="hi", engine="piper", watermarked=False
    )
    embed_in_flac(out, record)
    assert not sidecar_path(out).exists()
    report = verify(out, data_dir=data_dir)
    assert report.ok, report.details
    assert report.record == record and report.record_path == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "o.flac"]  # no temp files


def test_key_is_private_and_reused(data_dir: Path) -> None:
    assert load_public_key(data_dir) is None  # reading never creates a key
    first = load_or_create_key(data_dir)
    path = key_path(data_dir)
    assert first.path == path == data_dir / "keys" / "provenance_ed25519.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    second = load_or_create_key(data_dir)
    assert second.key_id == first.key_id
    assert second.public_bytes == first.public_bytes
    assert sorted(os.listdir(path.parent)) == ["provenance_ed25519.pem"]  # no temp files left


def test_losing_the_creation_race_keeps_the_winners_key(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create = keys_module._create_key_file
    winner: list[str] = []

    def another_process_wins(path: Path) -> None:
        real_create(path)  # the other process links its key first ...
        winner.append(load_or_create_key(data_dir).key_id)
        real_create(path)  # ... so ours must not replace it

    original_read = keys_module._read_key
    calls = {"n": 0}

    def first_read_misses(path: Path):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise FileNotFoundError(path)
        return original_read(path)

    monkeypatch.setattr(keys_module, "_read_key", first_read_misses)
    monkeypatch.setattr(keys_module, "_create_key_file", another_process_wins)
    ours = load_or_create_key(data_dir)
    assert winner and ours.key_id == winner[0]
    assert sorted(os.listdir(key_path(data_dir).parent)) == ["provenance_ed25519.pem"]


def _create_in_child(data_dir: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    results.put(load_or_create_key(Path(data_dir)).key_id)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_processes_creating_the_key_at_once_agree(data_dir: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    n = 6
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(target=_create_in_child, args=(str(data_dir), barrier, results))
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    ids = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert len(set(ids)) == 1
    assert ids[0] == load_or_create_key(data_dir).key_id


def test_corrupt_key_is_a_one_line_error(data_dir: Path) -> None:
    path = key_path(data_dir)
    path.parent.mkdir(parents=True)
    path.write_text("not a key")
    with pytest.raises(ProvenanceError, match="corrupt") as info:
        load_or_create_key(data_dir)
    assert "\n" not in str(info.value)
