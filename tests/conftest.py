"""Shared fixtures: real models loaded once per test session, data from ../shared when present."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DEEPFAKE_STUDIO_DATA", ROOT.parent / "shared" / "data"))
EXAMPLE_REFERENCE = ROOT / "examples" / "lj_reference.flac"


def skip_or_fail_in_ci(reason: str) -> NoReturn:
    """Skip when shared data, a system tool or an extra is missing; fail instead when `CI` is set
    (.ci/run installs everything, so there a skip would hide a missing install step).

    Works inside a test or fixture and at module level (`from tests.conftest import ...`)."""
    if os.environ.get("CI"):
        pytest.fail(f"missing in CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def import_or_fail_in_ci(module: str, why: str) -> ModuleType:
    """`pytest.importorskip`, but a failure under `CI`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        skip_or_fail_in_ci(f"{module} is not installed ({why})")


RunHere = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def run_here(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> RunHere:
    """The `deepfake-studio` command through its entry point `cli.main()` in this process: exit
    code, stdout and stderr, as `subprocess.run` would give them, without the 3-6 s of
    interpreter start-up and imports a real process costs (tests/test_cli.py starts those)."""
    from deepfake_studio import cli

    def invoke(*args: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
        argv = ["deepfake-studio", *map(str, args)]
        monkeypatch.setenv("DEEPFAKE_STUDIO_HOME", str(home))
        monkeypatch.setattr(sys, "argv", argv)
        capsys.readouterr()  # this call's output only
        try:
            cli.main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out, err)

    return invoke


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    """The shared real-speech corpus; tests that need it skip when it is absent (fail in CI)."""
    folder = SHARED_DATA / "speech"
    if not (folder / "manifest.csv").exists():
        skip_or_fail_in_ci(f"shared speech data not found at {folder} (set DEEPFAKE_STUDIO_DATA)")
    return folder


@pytest.fixture(scope="session")
def example_reference() -> Path:
    return EXAMPLE_REFERENCE


@pytest.fixture(scope="session")
def transcriber(studio):  # type: ignore[no-untyped-def]
    """Whisper-base: the session studio's, so the consent checks and the tests share one."""
    return studio.transcriber


@pytest.fixture(scope="session")
def kokoro_engine():  # type: ignore[no-untyped-def]
    from deepfake_studio.synthesizer.kokoro import KokoroEngine

    return KokoroEngine()


@pytest.fixture(scope="session")
def kokoro_torch():  # type: ignore[no-untyped-def]
    """The float PyTorch Kokoro, filled from the bundled int8 ONNX (cached after the first run)."""
    from deepfake_studio.synthesizer.kokoro.weights import load_kokoro_model

    model, _ = load_kokoro_model()
    return model


@pytest.fixture(scope="session")
def piper_engine():  # type: ignore[no-untyped-def]
    from deepfake_studio.synthesizer.piper import PiperEngine

    return PiperEngine()


@pytest.fixture(scope="session")
def studio(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One Studio for the session (models load once). Shipped settings except one: kokoro
    voices are enrolled at `quick` quality, not the shipped `standard` default, because these
    tests use a voice rather than judge its fit, and a standard fit costs minutes each on 2
    cores. The default itself: tests/test_cli.py::test_enroll_at_the_default_quality; the
    qualities: `enroll_studio` and tests/synthesizer/kokoro/test_reconstruct.py."""
    from deepfake_studio import Studio, StudioConfig
    from deepfake_studio.synthesizer import EngineOptions
    from deepfake_studio.synthesizer.kokoro import KokoroConfig

    quick = EngineOptions(kokoro=KokoroConfig(quality="quick"))
    return Studio(StudioConfig(data_dir=tmp_path_factory.mktemp("studio-home"), engines=quick))


@pytest.fixture(scope="session")
def enroll_studio(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A Studio for tests of the enrollment options (quality, reference text), not of likeness:
    kokoro's default quality is `standard`, so a test that asks for `quick` sees it was passed
    on, and every fit is cut to the bone (one probe sentence, no pitch-moved packs, held-out
    check or rate matching; 2 gradient steps on 0.5 s crops, and 2 adaptation steps)."""
    from deepfake_studio import Studio, StudioConfig
    from deepfake_studio.synthesizer import EngineOptions
    from deepfake_studio.synthesizer.kokoro import FitConfig, KokoroConfig
    from deepfake_studio.synthesizer.kokoro.adapt import AdaptConfig
    from deepfake_studio.synthesizer.kokoro.fit import PROBE_SENTENCES
    from deepfake_studio.synthesizer.kokoro.reconstruct import StyleFitConfig

    search = FitConfig(
        probe_sentences=PROBE_SENTENCES[:1],
        holdout_sentence=None,
        pitch_shift=False,
        match_speed=False,
    )
    kokoro = KokoroConfig(
        quality="standard",
        fit=search,
        style_fit=StyleFitConfig(steps=2, crop_seconds=0.5),
        adapt=AdaptConfig(steps=2, check_every=1, crop_seconds=0.5),
    )
    return Studio(
        StudioConfig(
            data_dir=tmp_path_factory.mktemp("enroll-studio-home"),
            engines=EngineOptions(kokoro=kokoro),
        )
    )


TINY_CORPUS_SPEAKERS = ("VCC16_SF1", "VCC16_SM1", "VCC16_TF1", "VCC16_TM1", "VCC16_SF2")


@pytest.fixture(scope="session")
def tiny_manifest(speech_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of 5 VCC2016 speakers × 3 short clips (1.5-4.5 s) from the shared corpus."""
    import csv

    with (speech_dir / "manifest.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if 1.5 < float(r["duration_s"]) < 4.5]
    chosen = []
    for speaker in TINY_CORPUS_SPEAKERS:
        mine = sorted((r for r in rows if r["speaker"] == speaker), key=lambda r: r["path"])[:3]
        if len(mine) < 3:
            skip_or_fail_in_ci(f"shared speech data has too few short clips of {speaker}")
        chosen += mine
    manifest = tmp_path_factory.mktemp("tiny-corpus") / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "speaker", "text"])
        for r in chosen:
            writer.writerow([str(speech_dir / r["path"]), r["speaker"], r["text"]])
    return manifest


@pytest.fixture(scope="session")
def prepared_data(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Factory: sample rate → a prepared folder of the tiny corpus (built once per rate).

    Speakers are split 3 train / 1 val / 1 test.
    """
    from deepfake_studio.training.prepare import PrepareConfig, prepare

    made: dict[int, Path] = {}

    def make(sample_rate: int = 22_050) -> Path:
        if sample_rate not in made:
            out = tmp_path_factory.mktemp(f"prepared-{sample_rate}")
            split = PrepareConfig(val_fraction=0.2, test_fraction=0.2)  # 3 / 1 / 1 speakers
            prepare(tiny_manifest, out, sample_rate=sample_rate, config=split, workers=1)
            made[sample_rate] = out
        return made[sample_rate]

    return make


@pytest.fixture(autouse=True)
def _torch_threads_restored() -> Iterator[None]:
    """Each test leaves torch's thread count as it found it: training code sets it
    (the training tests ask for 1 thread) and it would hold for every later test in the same
    process, so their speed depended on the order they ran in."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and before is not None and torch.get_num_threads() != before:
        torch.set_num_threads(before)
