"""The clone evaluation harness: real engines, judge and Whisper on one real speaker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepfake_studio.errors import StudioError
from deepfake_studio.evaluation.clone_eval import METHODS, CloneEvalConfig, run_clone_eval
from deepfake_studio.evaluation.speakers import load_manifest
from deepfake_studio.synthesizer.kokoro.fit import PROBE_SENTENCES, FitConfig
from deepfake_studio.synthesizer.kokoro.reconstruct import StyleFitConfig
from tests.evaluation.conftest import SubsetManifest

# Two short LJ Speech clips (5.1 s reference, 5.7 s ground truth; sorted by path, the first is
# the reference): the harness pays for the reference's length in every method (transcription,
# the standard fit's start-pack choice and alignment), and the test is about the harness.
SHORT_LJ_CLIPS = ("LJ001-0004.flac", "LJ001-0006.flac")


@pytest.mark.slow
def test_harness_measures_every_method_and_resumes(
    subset_manifest: SubsetManifest, tmp_path: Path
) -> None:
    manifest = subset_manifest(lambda row: Path(row["path"]).name in SHORT_LJ_CLIPS, 2)
    # No search generations, one probe sentence (the pitch-moved packs are still screened, so
    # pitch_pack has a shift to rebuild), no rate matching in the fit (best_pack still matches
    # its rate) and a 2-step style fit on 0.5 s crops: the test is about the harness, not
    # about the fits' budgets (tests/synthesizer/test_voice_fit.py, test_rate.py do those).
    config = CloneEvalConfig(
        manifest=manifest,
        split=None,
        speakers=1,
        sentences=1,
        fit=FitConfig(generations=0, probe_sentences=PROBE_SENTENCES[:1], match_speed=False),
        methods=(*METHODS, "standard"),
        style_fit=StyleFitConfig(steps=2, crop_seconds=0.5),
    )
    out = tmp_path / "eval.json"
    data = run_clone_eval(config, out)

    row = data["speakers"]["LJ"]
    assert row["same"] > 0.6  # two recordings of one speaker, by the judge
    for method in config.methods:
        assert 0.0 < row[method]["rtf"] < 20.0
        assert row[method]["wer"] <= 0.25, (method, row[method])
    # A conditioned clone is closer to the speaker than the fixed Piper voice is.
    assert row["clone"]["sim"] > row["piper"]["sim"]
    assert data["summary"]["clone"]["norm"] > 0.0
    assert row["clone"]["enroll_s"] > 0.0
    # standard: enrolled on its own (the gradient fit), timed, and it says what it kept.
    assert row["standard"]["enroll_s"] > 0.0 and row["standard"]["sim"] > row["piper"]["sim"]
    assert row["standard_info"]["quality"] == "standard"
    # Quick, whatever the studio's default (the style encoder); the ablations are rebuilt
    # from the search it replaced, which is measured beside it.
    assert row["fit_info"]["quality"] == "quick"
    assert row["fit_info"]["method"] == "kokoro-style-encoder"
    assert "best_pack_ge2e_only" in row["search_info"] and row["search"]["enroll_s"] > 0.0
    assert data["summary"]["piper"]["norm"] == pytest.approx(0.0, abs=1e-6)
    table = out.with_suffix(".md").read_text()
    assert all(f"| {m} |" in table for m in ("clone", "search", "standard"))
    assert "| LJ | ljspeech |" in table
    assert json.loads(out.read_text())["speakers"]["LJ"]["clone"] == row["clone"]

    # Same settings: the finished speaker is kept, not measured again.
    again = run_clone_eval(config, out)
    assert again["speakers"]["LJ"]["clone"]["enroll_s"] == row["clone"]["enroll_s"]


def test_manifest_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="cannot read the manifest"):
        load_manifest(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,who\na.wav,x\n")
    with pytest.raises(StudioError, match="lacks the column"):
        load_manifest(bad)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(StudioError, match="sentences"):
        CloneEvalConfig(sentences=0)
    with pytest.raises(StudioError, match="split"):
        CloneEvalConfig(split="holdout")
    with pytest.raises(StudioError, match="method"):
        CloneEvalConfig(methods=("clone", "magic"))
