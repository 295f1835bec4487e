"""`prepare` on real clips of the shared corpus: files, shapes, speaker split, skips, resume."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepfake_studio.synthesizer.tacotron import HIFIGAN_AUDIO, RTVC_AUDIO
from deepfake_studio.training.common import TrainingError
from deepfake_studio.training.dataset import SPLITS, PreparedData
from deepfake_studio.training.prepare import PrepareConfig, prepare
from tests.conftest import RunHere

SPLIT_3_1_1 = PrepareConfig(val_fraction=0.2, test_fraction=0.2)


def _rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def corpus_with_bad_files(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny corpus plus a corrupt file, a silent file and an empty transcript."""
    folder = tmp_path_factory.mktemp("bad-corpus")
    (folder / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt this is not audio")
    sf.write(folder / "silent.wav", np.zeros(32_000, np.float32), 16_000)
    rows = _rows(tiny_manifest)
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "speaker", "text", "emotion"])
        for r in rows:
            writer.writerow([r["path"], r["speaker"], r["text"], ""])
        writer.writerow(["corrupt.wav", "VCC16_SF1", "Broken file.", "neutral"])
        writer.writerow(["silent.wav", "VCC16_SM1", "Nothing said.", "neutral"])
        writer.writerow([rows[0]["path"], "VCC16_TF1", "   ", "neutral"])
        writer.writerow([rows[1]["path"], "VCC16_TF1", "Too cheerful.", "ecstatic"])
    return manifest


def test_prepare_writes_the_layout_and_splits_by_speaker(
    corpus_with_bad_files: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    summary = prepare(corpus_with_bad_files, out, sample_rate=22_050, config=SPLIT_3_1_1, workers=1)
    data = PreparedData(out)
    assert data.audio == HIFIGAN_AUDIO
    counts = {split: len(data.utterances(split)) for split in SPLITS}
    assert counts == {"train": 9, "val": 3, "test": 3}
    speakers = {split: set(data.speakers(split)) for split in SPLITS}
    assert len(speakers["train"]) == 3 and len(speakers["val"]) == len(speakers["test"]) == 1
    assert not (speakers["train"] & speakers["val"] or speakers["train"] & speakers["test"])
    assert set().union(*speakers.values()) == {r["speaker"] for r in _rows(corpus_with_bad_files)}

    for utterance in data.utterances("train") + data.utterances("test"):
        wav, mel, embedding = data.wav(utterance), data.mel(utterance), data.embedding(utterance)
        assert wav.dtype == np.float32 and len(wav) == utterance.n_samples
        assert 0.5 < len(wav) / 22_050 < 5.0  # trimmed 1.5-4.5 s clips
        assert (
            mel.shape == (80, len(wav) // HIFIGAN_AUDIO.hop_length + 1) == (80, utterance.n_frames)
        )
        assert embedding.shape == (256,) and abs(np.linalg.norm(embedding) - 1) < 1e-4
        assert utterance.emotion == "neutral" and utterance.text
    rms = [np.sqrt(np.mean(data.wav(u) ** 2)) for u in data.utterances("train")]
    assert max(rms) / min(rms) < 3  # loudness-normalised

    with (out / "skipped.csv").open(newline="") as handle:
        skipped = {Path(r["source"]).name + " " + r["reason"] for r in csv.DictReader(handle)}
    reasons = " | ".join(sorted(skipped))
    assert "corrupt.wav unreadable audio" in reasons
    assert "silent.wav silence" in reasons
    assert "empty text" in reasons and "unknown emotion 'ecstatic'" in reasons
    assert len(skipped) == 4
    info = json.loads((out / "prepare.json").read_text())
    assert info["utterances"] == counts and "bundled" in info["encoder"]
    assert "skipped 4" in str(summary) and "train 9 utterances / 3 speakers" in str(summary)


def test_prepare_resumes_and_completes_an_interrupted_run(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data16"
    first = prepare(tiny_manifest, out, sample_rate=16_000, config=SPLIT_3_1_1, workers=2)
    assert first.reused == 0 and PreparedData(out).audio == RTVC_AUDIO
    mel_file = sorted((out / "mels").glob("*.npy"))[0]
    before = mel_file.stat().st_mtime_ns
    victim = sorted((out / "embeds").glob("*.npy"))[-1]
    victim.unlink()  # as if the run had been killed while writing this utterance
    second = prepare(tiny_manifest, out, sample_rate=16_000, config=SPLIT_3_1_1, workers=1)
    assert second.reused == 14 and victim.exists()
    assert mel_file.stat().st_mtime_ns == before  # finished work is not redone
    assert second.rows == first.rows
    assert not list(out.rglob(".*tmp*"))  # no half-written files left behind
    with pytest.raises(TrainingError, match="another mel format"):
        prepare(tiny_manifest, out, sample_rate=22_050, config=SPLIT_3_1_1, workers=1)


def test_prepare_reads_a_folder_layout(tiny_manifest: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for r in _rows(tiny_manifest):
        speaker = corpus / r["speaker"]
        speaker.mkdir(parents=True, exist_ok=True)
        stem = Path(r["path"]).stem
        os.symlink(r["path"], speaker / f"{stem}{Path(r['path']).suffix}")
        (speaker / f"{stem}.txt").write_text(r["text"])
    (corpus / "VCC16_SF1" / "orphan.flac").symlink_to(_rows(tiny_manifest)[0]["path"])
    summary = prepare(corpus, tmp_path / "out", sample_rate=16_000, config=SPLIT_3_1_1, workers=1)
    assert sum(len(rows) for rows in summary.rows.values()) == 15
    assert summary.skipped == {"no transcript or empty text": 1}


def test_prepare_errors_are_one_line(tiny_manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="not found"):
        prepare(tmp_path / "nothing.csv", tmp_path / "o")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,who\na.wav,x\n")
    with pytest.raises(TrainingError, match="lacks the column"):
        prepare(bad, tmp_path / "o")
    two = tmp_path / "two.csv"
    two.write_text("".join(
        f"{line}\n" for line in ["path,speaker,text", *(f"{r['path']},{r['speaker']},{r['text']}"
                                 for r in _rows(tiny_manifest)[:6])]
    ))  # fmt: skip
    with pytest.raises(TrainingError, match="needs at least 3"):
        prepare(two, tmp_path / "o2", workers=1)


def test_prepare_cli(tiny_manifest: Path, tmp_path: Path, run_here: RunHere) -> None:
    config = tmp_path / "prepare.json"
    config.write_text(json.dumps({"val_fraction": 0.2, "test_fraction": 0.2, "max_per_speaker": 1}))
    cli = [sys.executable, "-m", "deepfake_studio.cli", "prepare"]
    ok = subprocess.run([*cli, str(tiny_manifest), "--out", str(tmp_path / "d"), "--sample-rate",
                         "16000", "--config", str(config), "--workers", "1"],
                        capture_output=True, text=True, timeout=300)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "train 3 utterances / 3 speakers" in ok.stdout
    # The refusal through main() in-process (no interpreter start-up for a one-line error).
    missing = run_here("prepare", tmp_path / "none.csv", "--out", tmp_path / "e", home=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "corpus not found" in missing.stderr
