"""`deepfake-studio batch` in this process: the jobs file's checks, outputs, resuming, failures.
(The same batch through workers is tested in test_distributed.py.)"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepfake_studio import Studio
from deepfake_studio.cli import main
from deepfake_studio.provenance import sidecar_path, verify
from deepfake_studio.service.batch import BatchError, finished, read_jobs, run_local

VOICE = "Batch Piper"
# Rows one and two read this at speeds 1.0 and 1.2 (long, so Piper's random durations average).
SAME_TEXT = (
    "Row one and row two read these same words, and the second row reads them a little faster "
    "than the first, so its file comes out shorter."
)


@pytest.fixture(scope="module")
def batch_voice(studio: Studio, example_reference: Path) -> str:
    studio.enroll(example_reference, VOICE, "Public-domain LJ Speech reader.", engine="piper",
                  overwrite=True)  # fmt: skip
    return VOICE


def _csv(folder: Path, text: str) -> Path:
    path = folder / "jobs.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "jobs.csv is empty: it needs a header row"),
        ("text,out,voice\n", "jobs.csv has no jobs"),
        ("txt,out,voice\nHi.,a.wav,x\n", "unknown column 'txt'"),
        ("text,voice\nHi.,x\n", "missing column 'out'"),
        ("text,out\nHi.,a.wav\n", "missing column 'voice or reference'"),
        ("text,out,voice\nHi.,a.wav,nobody\n", "line 2: unknown voice 'nobody'"),
        ("text,out,voice,reference\nHi.,a.wav,{v},r.wav\n", "line 2: give exactly one of"),
        ("text,out,reference\nHi.,a.wav,missing.wav\n", "line 2: reference file not found"),
        ("text,out,reference\nHi.,a.wav,jobs.csv\n", "line 2: a reference needs the speaker's"),
        ("text,out,voice\nHi.,../a.wav,{v}\n", "line 2: out must be a plain file name"),
        ("text,out,voice\nHi.,a.ogg,{v}\n", "must end in .wav, .flac or .mp3"),
        ("text,out,voice\n  ,a.wav,{v}\n", "line 2: the text is empty"),
        ("text,out,voice,speed\nHi.,a.wav,{v},fast\n", "line 2: speed must be a number"),
        ("text,out,voice,speed\nHi.,a.wav,{v},9\n", "speed 9.0 is out of range"),
        ("text,out,voice,engine\nHi.,a.wav,{v},nope\n", "unknown engine 'nope'"),
        ("text,out,voice,language\nHi.,a.wav,{v},xx\n", "line 2: unknown language 'xx'"),
        ("text,out,voice\nHi.,a.wav,{v}\nYo.,a.wav,{v}\n", "line 3: output 'a.wav' is already"),
        ("text,out,voice\nHi.,a.wav,{v},extra\n", "line 2: more cells than columns"),
        (
            "text,out,reference,consent,quality\nHi.,a.wav,jobs.csv,yes,top\n",
            "line 2: quality must be quick, standard or best, not 'top'",
        ),
        (
            "text,out,voice,quality\nHi.,a.wav,{v},quick\n",
            "line 2: quality and reference_text go with a reference",
        ),
        (
            "text,out,reference,consent,engine,quality\nHi.,a.wav,jobs.csv,yes,piper,quick\n",
            "line 2: a quality and a reference text go with the kokoro engine, not piper",
        ),
        (
            "text,out,reference,consent,quality,reference_text\nHi.,a.wav,jobs.csv,yes,quick,Hi\n",
            "line 2: a reference text is only used by the standard and best qualities",
        ),
    ],
)
def test_bad_jobs_files_are_one_line_errors(
    content: str, message: str, tmp_path: Path, studio: Studio, batch_voice: str
) -> None:
    path = _csv(tmp_path, content.replace("{v}", batch_voice))
    with pytest.raises(BatchError) as error:
        read_jobs(path, tmp_path / "out", studio)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_missing_jobs_file(tmp_path: Path, studio: Studio) -> None:
    with pytest.raises(BatchError, match="jobs file not found"):
        read_jobs(tmp_path / "nope.csv", tmp_path, studio)


def test_batch_writes_signed_outputs_and_resumes(
    tmp_path: Path, studio: Studio, batch_voice: str, example_reference: Path
) -> None:
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "lj.flac").write_bytes(example_reference.read_bytes())
    path = _csv(
        tmp_path,
        "\ufefftext,out,voice,reference,consent,engine,speed\n"  # an Excel BOM is fine
        f'"{SAME_TEXT}",one.wav,{batch_voice},,,,\n'
        f'"{SAME_TEXT}",two.flac,{batch_voice},,,,1.2\n'  # the same text, faster
        "Row three clones a reference.,three.wav,,refs/lj.flac,LJ (public domain),piper,\n",
    )
    out = tmp_path / "out"
    rows = read_jobs(path, out, studio)
    assert [r.line for r in rows] == [2, 3, 4] and rows[1].speed == 1.2
    seen: list[tuple[str, str | None]] = []
    report = run_local(studio, rows, lambda row, error: seen.append((row.out.name, error)))
    assert report.summary() == "3 done, 0 skipped (already there), 0 failed"
    assert seen == [("one.wav", None), ("two.flac", None), ("three.wav", None)]
    for row in rows:
        data, rate = sf.read(row.out, dtype="float32")
        assert rate == 22_050 and len(data) / rate > 0.8
        assert np.sqrt(np.mean(np.square(data))) > 0.01
        assert verify(row.out, data_dir=studio.data_dir).ok
    # Speed 1.2 shortens the same text, though less than 1/1.2: Piper rounds every phoneme's
    # duration up to whole frames (measured: 0.93 of the length, +-1.5 % from its sampled
    # durations; about 1.0 when the column is ignored).
    ratio = len(sf.read(rows[1].out)[0]) / len(sf.read(rows[0].out)[0])
    assert 0.8 < ratio < 0.97, ratio
    mtimes = {r.out: r.out.stat().st_mtime_ns for r in rows}

    # Re-run: nothing to do.
    again = run_local(studio, rows, lambda row, error: None)
    assert again.summary() == "0 done, 3 skipped (already there), 0 failed"
    # A half-finished output (audio without its record, or junk) is not counted as done.
    sidecar_path(rows[0].out).unlink()
    rows[2].out.write_bytes(b"half a file")
    sidecar_path(rows[2].out).unlink()
    assert not finished(rows[0]) and not finished(rows[2])
    third = run_local(studio, rows, lambda row, error: None)
    assert [r.out.name for r in third.done] == ["one.wav", "three.wav"]
    assert rows[1].out.stat().st_mtime_ns == mtimes[rows[1].out]
    assert sf.read(rows[2].out)[1] == 22_050 and verify(rows[2].out, data_dir=studio.data_dir).ok
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    # An edited row is made again, not skipped because its file exists.
    edited = replace(rows[1], text="Row two, edited.")
    assert not finished(edited) and finished(rows[1])
    assert run_local(studio, [edited], lambda row, error: None).summary().startswith("1 done")


def test_a_row_clones_its_reference_at_the_quality_it_names(
    tmp_path: Path, enroll_studio: Studio, example_reference: Path
) -> None:
    # enroll_studio's default quality is standard: a quick voice means the column was used.
    (tmp_path / "lj.flac").write_bytes(example_reference.read_bytes())
    path = _csv(
        tmp_path,
        "text,out,reference,consent,quality\n"
        "Short and clear.,q.wav,lj.flac,LJ (public domain),quick\n",
    )
    rows = read_jobs(path, tmp_path / "out", enroll_studio)
    assert rows[0].quality == "quick" and rows[0].request()["quality"] == "quick"
    unset = replace(rows[0], quality=None)
    assert "quality" not in unset.request() and unset.task_id() != rows[0].task_id()
    report = run_local(enroll_studio, rows, lambda row, error: None)
    assert report.summary() == "1 done, 0 skipped (already there), 0 failed", report.failed
    data, rate = sf.read(rows[0].out, dtype="float32")
    assert rate == 24_000 and len(data) / rate > 0.5
    checked = verify(rows[0].out, data_dir=enroll_studio.data_dir)
    assert checked.ok and checked.record is not None
    assert checked.record["parameters"]["quality"] == "quick"


def _cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run the command line's entry point in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["deepfake-studio", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_cli_reports_failures_and_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16_000 * 3, np.float32), 16_000)
    _csv(
        tmp_path,
        "text,out,reference,consent,engine\nNothing to hear.,x.wav,silence.wav,yes,piper\n",
    )
    monkeypatch.setenv("DEEPFAKE_STUDIO_HOME", str(tmp_path / "home"))
    out_dir = str(tmp_path / "out")
    code, out, err = _cli(
        ["batch", str(tmp_path / "jobs.csv"), "--out", out_dir], monkeypatch, capsys
    )
    assert code == 1, err
    assert "0 done, 0 skipped (already there), 1 failed" in out
    assert "failed: line 2 x.wav: the reference silence.wav contains no speech" in err
    assert not (tmp_path / "out" / "x.wav").exists()

    code, _, err = _cli(["batch", str(tmp_path / "no.csv"), "--out", out_dir], monkeypatch, capsys)
    assert code == 1
    assert err.strip().splitlines() == [f"error: jobs file not found: {tmp_path}/no.csv"]
