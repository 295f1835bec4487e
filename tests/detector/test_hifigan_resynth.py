"""`hifigan-resynth`: real clips vocoded by a HiFi-GAN checkpoint the build names (issue 21)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from deepfake_studio.audio import Audio
from deepfake_studio.configs import config_dict
from deepfake_studio.detector.data import DataConfig, build, read_manifest
from deepfake_studio.detector.evaluate import GENERATOR_FAMILIES, logo_groups
from deepfake_studio.detector.generators import GeneratorError, Request, hifigan_resynth
from deepfake_studio.evaluation.speakers import SPLIT_FILE
from deepfake_studio.vocoder.hifigan import Generator, HiFiGANConfig
from tests.conftest import RunHere

# A small generator (one residual block per level) so the tests build clips in seconds; the
# layout and checkpoint format are those of `train vocoder --model hifigan`.
TINY = HiFiGANConfig(
    upsample_initial_channel=16, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1,),)
)


def tiny_checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    generator = Generator(TINY)
    # The paper's N(0, 0.01) start makes near-silence; a wider start makes audible audio,
    # so that the build's silence check passes as it does for a trained checkpoint.
    for module in generator.modules():
        if isinstance(module, torch.nn.Conv1d | torch.nn.ConvTranspose1d):
            torch.nn.init.normal_(module.weight, 0.0, 0.3)
    torch.save({"model_state": generator.state_dict(), "config": config_dict(TINY)}, path)
    return path


def speech(seconds: float, rate: int = 16_000) -> Audio:
    """A voiced, amplitude-modulated tone: something with a mel that moves."""
    t = np.arange(int(seconds * rate)) / rate
    x = np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 280 * t)
    return Audio((0.3 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32), rate)


def test_the_checkpoint_is_what_vocodes(tmp_path: Path) -> None:
    first = hifigan_resynth(tiny_checkpoint(tmp_path / "a.pt", seed=0))
    again = hifigan_resynth(tmp_path / "a.pt")
    other = hifigan_resynth(tiny_checkpoint(tmp_path / "b.pt", seed=1))
    request = Request(text="", source=speech(1.5), voice="hifigan-resynth")
    a, b, c = first.generate(request), again.generate(request), other.generate(request)
    assert a.sample_rate == 22_050 and not first.needs_text
    # One hop (512 samples) per mel frame: the resynthesis lasts as long as the source.
    assert abs(len(a.samples) / 22_050 - 1.5) < 2 * 512 / 22_050
    assert np.array_equal(a.samples, b.samples)
    assert np.abs(a.samples - c.samples).mean() > 1e-3 * np.abs(a.samples).mean()


def test_a_damaged_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "hifigan.pt"
    bad.write_bytes(b"not a checkpoint" * 200)
    with pytest.raises(GeneratorError) as info:
        hifigan_resynth(bad)
    assert str(info.value).startswith("hifigan-resynth: ") and "\n" not in str(info.value)


def test_a_build_resynthesises_each_splits_own_speakers(speech_dir: Path, tmp_path: Path) -> None:
    checkpoint = tiny_checkpoint(tmp_path / "hifigan.pt", seed=0)
    config = DataConfig(
        generators=("hifigan-resynth",),
        spoofs_per_generator=6,
        max_bona_fide=3,
        hifigan_checkpoint=str(checkpoint),
        seed=3,
    )
    out = tmp_path / "set"
    build(out, config, speech_dir=speech_dir)
    assert json.loads((out / "config.json").read_text())["hifigan_checkpoint"] == str(checkpoint)
    rows = [r for r in read_manifest(out) if r["generator"] == "hifigan-resynth"]
    assert not [r for r in rows if "error" in r], [r.get("error") for r in rows]
    clean = [r for r in rows if r["augment"] == "none"]
    assert {r["split"] for r in clean} == {"train", "dev", "test"}
    assert len(rows) == 2 * len(clean)  # each with its augmented copy
    splits = json.loads(SPLIT_FILE.read_text())["splits"]
    for row in clean:
        speaker = str(row["source"]).split("/")[1]
        assert any(speaker in ids for ids in splits[str(row["split"])].values()), row
        assert row["voice"] == "hifigan-resynth" and row["label"] == "spoof"
        samples, rate = sf.read(str(out / str(row["path"])))
        assert rate == 16_000 and len(samples) == 64_000
        assert np.sqrt(np.mean(samples**2)) > 0.02  # loudness-normalised audio, not silence
    # Another checkpoint is another build: a resume with it is refused.
    other = replace(config, hifigan_checkpoint=str(tmp_path / "other.pt"))
    tiny_checkpoint(tmp_path / "other.pt", seed=1)
    with pytest.raises(Exception, match="other settings"):
        build(out, other, speech_dir=speech_dir)


def test_build_data_without_a_usable_checkpoint_is_a_one_line_error(
    tmp_path: Path, run_here: RunHere
) -> None:
    out = tmp_path / "set"
    args = ("detector", "build-data", "--out", out, "--generators", "hifigan-resynth")
    result = run_here(*args, home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: hifigan-resynth needs a HiFi-GAN checkpoint (--hifigan-checkpoint)"
    )
    missing = tmp_path / "run" / "hifigan.pt"
    result = run_here(*args, "--hifigan-checkpoint", missing, home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: HiFi-GAN checkpoint not found: {missing}"
    assert not out.exists()  # refused before anything was written


def test_hifigan_resynthesis_is_a_family_of_its_own() -> None:
    assert GENERATOR_FAMILIES["hifigan-resynth"] not in {
        GENERATOR_FAMILIES[g] for g in GENERATOR_FAMILIES if g != "hifigan-resynth"
    }
    groups = logo_groups(("world", "griffin-lim", "hifigan-resynth", "kokoro"))
    assert groups[GENERATOR_FAMILIES["hifigan-resynth"]] == ("hifigan-resynth",)
