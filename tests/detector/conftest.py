"""A tiny detector data set (2 cheap generators) and a 1-epoch model, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfake_studio.detector.data import DataConfig

TINY = DataConfig(
    generators=("espeak-ng", "griffin-lim"),
    spoofs_per_generator=6,
    max_bona_fide=10,
    crops_per_recording=1,
    augmented_copies=1,
    seed=3,
)


@pytest.fixture(scope="session")
def tiny_config() -> DataConfig:
    return TINY


@pytest.fixture(scope="session")
def tiny_data(speech_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deepfake_studio.detector.data import build

    out = tmp_path_factory.mktemp("detector-data")
    build(out, TINY, speech_dir=speech_dir)
    return out


@pytest.fixture(scope="session")
def tiny_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch model trained on the tiny set (exported like the shipped one)."""
    from deepfake_studio.detector.train import TrainConfig, train

    out = tmp_path_factory.mktemp("detector-run")
    train(tiny_data, out, TrainConfig(epochs=1, batch_size=8, threads=2), log=lambda _: None)
    return out
