"""The installed `deepfake-studio` command: exit codes, one-line errors, real processes.

End-to-end runs (and a few refusals) start the real command. The other refusals call its entry
point `main()` in the test process (`run_here`): the same code from argv to exit code and
stderr, without ~3-6 s of interpreter start-up and imports per call."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from deepfake_studio.evaluation.asr import word_error_rate
from tests.conftest import RunHere
from tests.service.serve import CLI, WARM, free_port, log_of, start_serve, wait_until_warm

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEEPFAKE_STUDIO_HOME": str(home)}
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, env=env, timeout=600
    )


STATUS_LINE = re.compile(r"^\[ *\d+\.\d s\] ")  # "[  1.2 s] analysing the reference ..."


def assert_one_line_error(result: subprocess.CompletedProcess[str], pattern: str) -> None:
    """Exit 1 and one error line on stderr (status lines of the stage reached may precede it)."""
    assert result.returncode == 1, result.stderr
    lines = [s for s in result.stderr.splitlines() if s.strip() and not STATUS_LINE.match(s)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["clone", "--reference", "missing.wav", "--text", "Hi.", "--out", "o.wav"], "missing.wav"),
        (["clone", "--reference", "{ref}", "--text", "  ", "--out", "o.wav"], "text is empty"),
        (["clone", "--reference", "{ref}", "--text", "x" * 20_001, "--out", "o.wav"], "limit"),
        (["clone", "--voice", "nobody", "--text", "Hi.", "--out", "o.wav"], "unknown voice"),
        (["clone", "--reference", "{ref}", "--text", "Hi.", "--out", "o.ogg"], "cannot write .ogg"),
        (
            ["clone", "--reference", "{ref}", "--text", "Hi.", "--out", "o.wav", "-e", "x"],
            "unknown engine",
        ),
        (["clone", "--reference", "{bad}", "--text", "Hi.", "--out", "o.wav"], "bad.wav"),
        (
            ["clone", "--reference", "{ref}", "--text-file", "nope.txt", "--out", "o.wav"],
            "nope.txt",
        ),
        (["enroll", "{ref}", "--name", "x"], "consent"),
        (["watermark", "verify", "{bad}"], "bad.wav"),
        (["eval", "clone", "--out", "e.json", "--manifest", "none.csv"], "none.csv"),
        (["eval", "clone", "--out", "e.json", "--fit", "bogus=1"], "FitConfig field"),
        (["eval", "clone", "--out", "e.json", "--fit", "generations=x"], "not a number"),
        (["eval", "clone", "--out", "e.json", "--split", "holdout"], "unknown split"),
    ],
)
def test_bad_input_gives_one_line_and_exit_1(
    args: list[str],
    message: str,
    tmp_path: Path,
    example_reference: Path,
    run_here: RunHere,
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("this is not audio")
    filled = [a.format(ref=example_reference, bad=bad) for a in args]
    if "--reference" in filled:  # a one-off clone needs consent (checked in its own test)
        filled += ["--consent", "The test speaker consents."]
    result = run_here(*filled, home=tmp_path)
    assert_one_line_error(result, message)
    assert not (tmp_path / "o.wav").exists()


def test_clone_and_enroll_report_each_stage_when_piped(
    tmp_path: Path, example_reference: Path
) -> None:
    out = tmp_path / "o.wav"
    consent = ["--consent", "The test speaker consents."]
    text = "One sentence here. And another one."
    cloned = run(
        "clone", "-r", example_reference, "-e", "piper", "-t", text, "-o", out, *consent,
        home=tmp_path,
    )  # fmt: skip
    assert cloned.returncode == 0, cloned.stderr
    stages = [STATUS_LINE.sub("", line) for line in cloned.stderr.splitlines()]
    assert stages[0].startswith("analysing the reference (models load on first use")
    assert "analysing the reference: matched speaking rate (100 %)" in stages
    assert stages[-3:] == [
        "speaking",
        "speaking: sentence 1/2 (50 %)",
        "speaking: sentence 2/2 (100 %)",
    ]
    assert all(STATUS_LINE.match(line) for line in cloned.stderr.splitlines())
    enrolled = run(
        "enroll", example_reference, "-n", "Piped", "-e", "piper", *consent, home=tmp_path
    )
    assert enrolled.returncode == 0, enrolled.stderr
    assert [STATUS_LINE.sub("", line) for line in enrolled.stderr.splitlines()] == [
        "enrolling (models load on first use)",  # piper fits no style: no kokoro fit time
        "enrolling: matched speaking rate (100 %)",
    ]


def test_the_progress_bar_reads_stage_step_percentage() -> None:
    import io

    from deepfake_studio.cli import StageProgress

    screen = io.StringIO()
    with StageProgress("speaking", file=screen, tty=True) as progress:
        progress(1 / 6, "sentence 1/6")
        drawn = screen.getvalue().split("\r")[-1]
    assert drawn.startswith("speaking: sentence 1/6  17%|"), repr(drawn)


def test_clone_from_a_reference_needs_consent(tmp_path: Path, example_reference: Path) -> None:
    args = ["clone", "-r", example_reference, "-t", "Hi.", "-o", tmp_path / "o.wav", "-e", "piper"]
    assert_one_line_error(run(*args, home=tmp_path), "consent statement")
    assert_one_line_error(run(*args, "--consent", "  ", home=tmp_path), "consent statement")
    assert not (tmp_path / "o.wav").exists()


def test_clone_from_a_reference_takes_the_quality_options_of_enroll(
    tmp_path: Path,
    example_reference: Path,
    run_here: RunHere,
) -> None:
    out = tmp_path / "o.wav"
    args = ["clone", "-r", example_reference, "-t", "Hi.", "-o", out]
    args += ["--consent", "The test speaker consents."]
    bad = run_here(*args, "--quality", "finest", home=tmp_path)
    assert_one_line_error(bad, "--quality must be quick, standard or best, not 'finest'")
    enrolled = run_here("clone", "--voice", "x", "-t", "Hi.", "-o", out, "--quality", "quick",
                        home=tmp_path)  # fmt: skip
    assert_one_line_error(enrolled, "--quality and --reference-text go with --reference")
    piper = run_here(*args, "-e", "piper", "--quality", "quick", home=tmp_path)
    assert_one_line_error(piper, "go with the kokoro engine, not piper")
    # Both options reach the engine: a standard fit checks its words before any work; a quick
    # one refuses words (dropping either option on the way would give the other error or a fit).
    empty = run_here(*args, "--quality", "standard", "--reference-text", "", home=tmp_path)
    assert_one_line_error(empty, "the reference text is empty")
    assert "(models load on first use; a standard kokoro fit takes 1-2 minutes)" in empty.stderr
    quick = run_here(*args, "--quality", "quick", "--reference-text", "Printing.", home=tmp_path)
    assert_one_line_error(quick, "a reference text is only used by the standard and best qualities")
    assert not out.exists()


def test_voices_lists_the_quality_each_voice_was_enrolled_with(
    tmp_path: Path, run_here: RunHere
) -> None:
    import numpy as np

    from deepfake_studio.synthesizer.base import Conditioning
    from deepfake_studio.voices import Voice, VoiceLibrary

    library = VoiceLibrary(tmp_path)
    style = {"style": np.zeros((510, 256), np.float32)}
    infos = {
        "Fitted": ("kokoro", {"method": "kokoro-style-fit", "quality": "standard"}),
        "Older": ("kokoro", {"method": "kokoro-fit-es"}),  # stored before fits named a quality
        "Rate Only": ("piper", {}),
    }
    for name, (engine, info) in infos.items():
        arrays = style if engine == "kokoro" else {}
        conditioning = Conditioning(engine=engine, arrays=arrays, info=info)
        library.save(Voice(name, np.ones(256, np.float32), conditioning, "yes", "0" * 64))
    listed = run_here("voices", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split("\t")[0]: line.split("\t")[1:3] for line in listed.stdout.splitlines()}
    assert rows == {
        "Fitted": ["kokoro", "standard"],
        "Older": ["kokoro", "quick"],
        "Rate Only": ["piper", "-"],
    }


@pytest.mark.slow
def test_enroll_list_clone_and_delete(
    tmp_path: Path, example_reference: Path, transcriber, run_here: RunHere
) -> None:  # type: ignore[no-untyped-def]
    # Enroll and clone start the real command; the listing, checks and deletion go through its
    # entry point in this process (`run_here`): the same code, ~4 s of start-up less each.
    enrolled = run(
        "enroll",
        example_reference,
        "--name",
        "Reader",
        "--engine",
        "piper",
        "--consent",
        "public-domain reader",
        home=tmp_path,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    listed = run_here("voices", home=tmp_path)
    assert "Reader\tpiper" in listed.stdout

    text_file = tmp_path / "story.txt"
    text_file.write_text("The river was calm. Birds sang in the trees.\n\nThen it rained.")
    out = tmp_path / "out" / "story.flac"
    cloned = run(
        "clone", "--voice", "reader", "--text-file", text_file, "--out", out, home=tmp_path
    )
    assert cloned.returncode == 0, cloned.stderr
    assert str(out) in cloned.stdout
    samples, rate = sf.read(out, dtype="float32")
    assert rate == 22_050 and 3.0 < len(samples) / rate < 12.0
    heard = transcriber.transcribe(samples, rate)
    # Piper samples its prosody noise, so runs differ; 11 words: up to 3 slips (seen: 0-3).
    said = "The river was calm. Birds sang in the trees. Then it rained."
    assert word_error_rate(said, heard) <= 0.3, heard

    # Every output is watermarked and has a signed record that catches tampering.
    assert "\tpresent\t" in run_here("watermark", "verify", out, home=tmp_path).stdout
    assert run_here("provenance", "verify", out, home=tmp_path).returncode == 0
    samples[1000] += 0.25
    sf.write(out, samples, rate)
    tampered = run_here("provenance", "verify", out, home=tmp_path)
    assert tampered.returncode == 1 and "audio hash mismatch" in tampered.stderr

    deleted = run_here("voices", "delete", "reader", home=tmp_path)
    assert deleted.returncode == 0
    assert "no voices enrolled" in run_here("voices", home=tmp_path).stdout


@pytest.mark.slow
def test_enroll_at_the_default_quality_fits_a_standard_voice_that_speaks(
    tmp_path: Path, example_reference: Path, transcriber, run_here: RunHere
) -> None:  # type: ignore[no-untyped-def]
    # The one test of the shipped default as a user meets it (no --quality, no
    # --reference-text: Whisper-base transcribes, 30 gradient steps, then the held-out guard);
    # minutes on 2 cores, so every other test enrolls kokoro voices at quick.
    from deepfake_studio import Studio, StudioConfig
    from deepfake_studio.synthesizer.kokoro.engine import ENCODER_SEED, load_style_packs

    enrolled = run(
        "enroll", example_reference, "--name", "Reader", "--consent", "public-domain reader",
        home=tmp_path,
    )  # fmt: skip
    assert enrolled.returncode == 0, enrolled.stderr
    stages = [STATUS_LINE.sub("", line) for line in enrolled.stderr.splitlines()]
    note = "(models load on first use; a standard kokoro fit takes 1-2 minutes)"
    assert stages[0] == f"enrolling {note}"
    # Whisper heard the words (none were given), then the gradient fit ran.
    assert any(s.startswith("enrolling: transcribing the reference") for s in stages), stages
    assert any(s.startswith("enrolling: fitting the voice: step") for s in stages), stages
    rows = [line.split("\t") for line in run_here("voices", home=tmp_path).stdout.splitlines()]
    assert [row[:3] for row in rows] == [["Reader", "kokoro", "standard"]]

    info = Studio(StudioConfig(data_dir=tmp_path)).voice("reader").conditioning.info
    assert info["quality"] == "standard" and info["method"] == "kokoro-style-fit"
    assert info["steps"] == 30
    guard = info["guard"]
    assert guard["kept"] in ("fit", "start pack"), guard
    assert guard["score_start"] != guard["score_fit"], guard  # both styles were heard
    studio = Studio(StudioConfig(data_dir=tmp_path))
    style = studio.voice("reader").conditioning.arrays["style"]
    if info["best_pack"] == ENCODER_SEED:  # the style encoder's table started the fit
        reference, _, _ = studio.load_reference(example_reference)
        start = studio.engine("kokoro").encoded_table(reference, studio.encoder)
    else:
        start = load_style_packs()[str(info["best_pack"])]
    # The guard's verdict is what is stored: the fitted table, or exactly the start pack.
    assert (float(np.abs(style - start).max()) > 1e-3) == (guard["kept"] == "fit"), guard

    out = tmp_path / "museum.wav"
    said = "The museum opens at nine and closes late on Thursday evenings."
    # The voice as stored on disk, read back by a fresh Studio: the entry point in this process
    # (`run_here`) spares a second interpreter start-up and model load.
    cloned = run_here("clone", "--voice", "reader", "--text", said, "--out", out, home=tmp_path)
    assert cloned.returncode == 0, cloned.stderr
    samples, rate = sf.read(out, dtype="float32")
    assert rate == 24_000 and 2.5 < len(samples) / rate < 9.0
    assert float(np.sqrt(np.mean(samples**2))) > 0.03  # speech at the studio's level
    heard = transcriber.transcribe(samples, rate)
    assert word_error_rate(said, heard) <= 0.2, heard  # 11 words: at most 2 slips


def test_sv2tts_engine_reports_missing_and_lfs_pointer_checkpoints(
    tmp_path: Path,
    example_reference: Path,
    run_here: RunHere,
) -> None:
    models = tmp_path / "rtvc"
    models.mkdir()
    args = ["clone", "-r", example_reference, "--text", "Hi.", "--out", tmp_path / "o.wav"]
    args += ["--consent", "The test speaker consents."]
    no_dir = run_here(*args, "-e", "sv2tts", home=tmp_path)
    assert_one_line_error(no_dir, "--models-dir")
    missing = run_here(*args, "-e", "sv2tts", "--models-dir", models, home=tmp_path)
    assert_one_line_error(missing, "encoder.pt")
    for name in ("encoder.pt", "synthesizer.pt", "vocoder.pt"):
        (models / name).write_text("version https://git-lfs.github.com/spec/v1\nsize 17090379\n")
    pointer = run_here(*args, "-e", "sv2tts", "--models-dir", models, home=tmp_path)
    assert_one_line_error(pointer, "Git LFS pointer")


FACES = Path(__file__).resolve().parents[1] / "examples" / "faces"


def test_faceswap_errors_are_one_line(tmp_path: Path, run_here: RunHere) -> None:
    args = ["--source", FACES / "obama.jpg", "--target", FACES / "astronaut.jpg", "--face", "2"]
    result = run_here("faceswap", *args, "--out", tmp_path / "o.png", home=tmp_path)
    assert_one_line_error(result, "--face 2 is out")
    assert not (tmp_path / "o.png").exists()
    # The cloned soundtrack's enrollment options: checked before any model loads.
    bogus = run_here(
        "faceswap", *args[:4], "--out", tmp_path / "o.png", "--quality", "x", home=tmp_path
    )
    assert_one_line_error(bogus, "--quality must be quick, standard or best")
    video = run_here(
        "faceswap", "--source", FACES / "obama.jpg", "--target", tmp_path / "in.mp4",
        "--out", tmp_path / "o.mp4", "--voice", "someone", "--text", "Hi.", "--quality", "best",
        home=tmp_path,
    )  # fmt: skip
    assert_one_line_error(video, "--quality and --reference-text go with --reference")


def test_faceswap_face_n_of_a_group_then_verify_its_marks(
    tmp_path: Path, run_here: RunHere
) -> None:
    import cv2
    import numpy as np

    # A group of three (left to right: Obama, the astronaut, the astronaut mirrored), each in
    # its own 512 px high panel; --face 1 is the middle one.
    astronaut = cv2.imread(str(FACES / "astronaut.jpg"))
    obama = cv2.imread(str(FACES / "obama.jpg"))
    obama = cv2.resize(obama, (obama.shape[1] * 512 // obama.shape[0], 512))
    panels = [obama, astronaut, np.ascontiguousarray(astronaut[:, ::-1])]
    group = tmp_path / "group.png"
    cv2.imwrite(str(group), np.hstack(panels))
    out = tmp_path / "swapped.png"
    args = ["--source", FACES / "obama.jpg", "--target", group, "--face", "1", "--out", out]
    swapped = run("faceswap", *args, home=tmp_path)
    assert swapped.returncode == 0, swapped.stderr
    assert "found 3 faces in the target, swapped 1" in swapped.stdout
    # Only the middle panel's face changed; elsewhere only the invisible watermark moved pixels.
    diff = np.abs(cv2.imread(str(out)).astype(int) - cv2.imread(str(group)).astype(int)).max(2)
    edges = np.cumsum([0] + [p.shape[1] for p in panels])
    changed = [float((diff[:, a:b] > 40).mean()) for a, b in itertools.pairwise(edges)]
    assert changed[1] > 0.005 and changed[0] < 1e-4 and changed[2] < 1e-4, changed  # 1.5 %, 0, 0
    checked = run_here("watermark", "verify", out, group, home=tmp_path)
    lines = checked.stdout.splitlines()
    assert "\tpresent\t" in lines[0] and "\tabsent\t" in lines[1]
    # (provenance verify of face-swap outputs: tests/faceswap; it is the same command)


def test_results_are_never_overwritten_without_asking(tmp_path: Path, run_here: RunHere) -> None:
    earlier = tmp_path / "mine" / "detector_eval.md"
    earlier.parent.mkdir()
    earlier.write_text("my earlier results")
    refused = run_here("eval", "detect", "--data", tmp_path, "--out", earlier.parent, home=tmp_path)
    assert_one_line_error(refused, "detector_eval.md already exists: pass --overwrite")
    assert earlier.read_text() == "my earlier results"
    # The benchmark scripts guard the committed tables in benchmarks/ the same way.
    committed = ROOT / "benchmarks" / "detector_speed.md"
    before = committed.read_bytes()
    script = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_detector.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert script.returncode == 1 and "pass --overwrite to replace them" in script.stderr
    assert committed.read_bytes() == before


def test_detect_uses_the_model_folder_it_is_given(
    tmp_path: Path, example_reference: Path, run_here: RunHere
) -> None:
    import json
    import shutil

    from deepfake_studio.detector.infer import weights_dir

    mine = tmp_path / "my-detector"
    shutil.copytree(weights_dir(), mine)
    card = json.loads((mine / "detector.json").read_text())
    card["threshold"] = 0.001  # this "trained" model calls (nearly) everything synthetic
    (mine / "detector.json").write_text(json.dumps(card))
    shipped = json.loads(run_here("detect", example_reference, "--json", home=tmp_path).stdout)
    assert shipped["label"] == "real" and shipped["threshold"] > 0.5
    custom = run_here("detect", example_reference, "--json", "--model", mine, home=tmp_path)
    verdict = json.loads(custom.stdout)
    assert verdict["label"] == "synthetic" and verdict["threshold"] == 0.001
    assert verdict["probability_synthetic"] == shipped["probability_synthetic"]  # same network
    missing = run_here("detect", example_reference, "--model", tmp_path / "nothing", home=tmp_path)
    assert_one_line_error(missing, "no detector model in")


def test_provenance_verify_takes_several_files_and_reports_failures_on_stderr(
    tmp_path: Path, run_here: RunHere
) -> None:
    import numpy as np

    from deepfake_studio import Audio, Studio, StudioConfig

    studio = Studio(StudioConfig(data_dir=tmp_path))  # signs with the key in tmp_path
    tone = Audio(0.1 * np.sin(np.arange(16_000, dtype=np.float32) / 8), 16_000)
    good, tampered, unsigned = tmp_path / "good.wav", tmp_path / "tampered.wav", tmp_path / "u.wav"
    for path in (good, tampered):
        studio.save(tone, path, text="A tone.", engine="test", watermarked=True)
    sf.write(tampered, tone.samples * 0.5, 16_000)
    sf.write(unsigned, tone.samples, 16_000)
    checked = run_here("provenance", "verify", good, tampered, unsigned, home=tmp_path)
    assert checked.returncode == 1
    assert checked.stdout.splitlines() == [f"{good}\tverified: signed by this studio's key "
                                           f"({checked.stdout.split('(')[1].split(')')[0]}), "
                                           "audio unchanged"]  # fmt: skip
    failures = checked.stderr.splitlines()
    assert [line.split("\t")[0] for line in failures] == [str(tampered), str(unsigned)]
    assert "audio hash mismatch" in failures[0] and "record" in failures[1]
    assert run_here("provenance", "verify", good, home=tmp_path).returncode == 0


def test_serve_listens_on_loopback_and_warms_streaming_up_in_the_background(
    tmp_path: Path,
) -> None:
    # `serve` speaks a warm-up sentence beside the start-up so the first listener pays no
    # one-off set-up; /health lists `kokoro-streaming` once that has run.
    port = free_port()
    server = start_serve(tmp_path, port)
    try:
        answers = wait_until_warm(server, port)
        assert server.poll() is None, log_of(tmp_path).read_text()
        assert answers and all(a.status_code == 200 for a in answers), answers[-3:]
        assert all(a.json()["status"] == "ok" for a in answers)
        assert WARM in answers[-1].json()["models_loaded"], [a.json() for a in answers[-3:]]
        # Bound to loopback only: the machine's own outward address does not answer.
        # (A machine with no outward interface at all has nothing else to reach it by.)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.connect(("192.0.2.1", 9))  # picks the outward interface; sends nothing
                outside: str | None = udp.getsockname()[0]
            except OSError:
                outside = None
        if outside is not None and not outside.startswith("127."):
            with socket.socket() as probe:
                probe.settimeout(2)
                assert probe.connect_ex((outside, port)) != 0, outside
        # Ctrl+C with the web studio open in a browser: its heartbeat connection never ends,
        # and the server used to wait for it forever. It stops within the 5 s grace now.
        heartbeat = f"http://127.0.0.1:{port}/gradio_api/heartbeat/open-page"
        opened = threading.Event()

        def hold_a_page_open() -> None:
            with contextlib.suppress(httpx.HTTPError), httpx.stream("GET", heartbeat) as page:
                for _ in page.iter_lines():
                    opened.set()

        threading.Thread(target=hold_a_page_open, daemon=True).start()
        assert opened.wait(timeout=30)
        started = time.monotonic()
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
        assert time.monotonic() - started < 15
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
