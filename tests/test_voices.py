"""The voice library: atomic writes, duplicate names, corrupt entries reported, not used."""

import json
from pathlib import Path

import numpy as np
import pytest

from deepfake_studio.errors import VoiceError
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.voices import Voice, VoiceLibrary


def make_voice(name: str = "Ada Lovelace") -> Voice:
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=256).astype(np.float32)
    style = rng.normal(size=(510, 256)).astype(np.float32)
    return Voice(
        name=name,
        embedding=embedding / np.linalg.norm(embedding),
        conditioning=Conditioning("kokoro", speed=1.1, arrays={"style": style}, info={"pack": "x"}),
        consent="I, Ada, agree to this clone for a demo.",
        source_sha256="ab" * 32,
        source_name="ada.wav",
        reference_seconds=7.5,
    )


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    library = VoiceLibrary(tmp_path)
    original = make_voice()
    library.save(original)
    loaded = library.load("ada lovelace")  # names are case-insensitive
    assert loaded.name == "Ada Lovelace"
    assert loaded.consent == original.consent
    assert loaded.conditioning.speed == pytest.approx(1.1)
    assert loaded.conditioning.info == {"pack": "x"}
    np.testing.assert_array_equal(loaded.embedding, original.embedding)
    np.testing.assert_array_equal(
        loaded.conditioning.arrays["style"], original.conditioning.arrays["style"]
    )
    assert not [p for p in library.root.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_duplicate_name_needs_overwrite(tmp_path: Path) -> None:
    library = VoiceLibrary(tmp_path)
    library.save(make_voice())
    with pytest.raises(VoiceError, match="already exists"):
        library.save(make_voice())
    library.save(make_voice(), overwrite=True)
    assert library.names() == ["ada-lovelace"]


def test_consent_is_required(tmp_path: Path) -> None:
    voice = make_voice()
    voice.consent = "  "
    with pytest.raises(VoiceError, match="consent"):
        VoiceLibrary(tmp_path).save(voice)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "voice.json").unlink(), "voice.json is missing"),
        (lambda d: (d / "voice.json").write_text("{not json"), "not valid JSON"),
        (
            lambda d: (d / "arrays.npz").write_bytes(b"truncated"),
            "does not match its recorded hash",
        ),
        (lambda d: (d / "arrays.npz").unlink(), "arrays.npz is missing"),
        (
            lambda d: (d / "voice.json").write_text(
                json.dumps(
                    {
                        k: v
                        for k, v in json.loads((d / "voice.json").read_text()).items()
                        if k != "consent"
                    }
                )
            ),
            "lacks consent",
        ),
    ],
)
def test_corrupt_entries_are_reported(tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    library = VoiceLibrary(tmp_path)
    folder = library.save(make_voice())
    damage(folder)
    with pytest.raises(VoiceError, match=message) as info:
        library.load("Ada Lovelace")
    assert "\n" not in str(info.value)
    [entry] = library.scan()
    assert isinstance(entry, VoiceError)


def test_unknown_voice_lists_the_known_ones(tmp_path: Path) -> None:
    library = VoiceLibrary(tmp_path)
    library.save(make_voice("Grace"))
    with pytest.raises(VoiceError, match="unknown voice 'Linus'.*grace"):
        library.load("Linus")


@pytest.mark.parametrize("name", ["", "   ", "../etc", "a" * 80, "-dash"])
def test_invalid_names_are_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(VoiceError, match="invalid voice name"):
        VoiceLibrary(tmp_path).save(make_voice(name))
