"""`deepfake-studio` command line: each command is a few lines over `Studio`."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from deepfake_studio import __version__
from deepfake_studio.audio import SUPPORTED_OUTPUT, load_audio
from deepfake_studio.errors import StudioError, TextError
from deepfake_studio.studio import Studio, StudioConfig
from deepfake_studio.synthesizer import EngineOptions
from deepfake_studio.text import check_text

app = typer.Typer(
    help="Deepfake Studio: offline voice cloning on a laptop CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
voices_app = typer.Typer(help="List or delete enrolled voices.", invoke_without_command=True)
app.add_typer(voices_app, name="voices")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="DEEPFAKE_STUDIO_HOME", help="Where voices are stored."),
]
Engine = Annotated[
    str | None, typer.Option("--engine", "-e", help="kokoro (default), piper or sv2tts.")
]
Seed = Annotated[int, typer.Option("--seed", help="Seed for the voice analysis.")]


ModelsDir = Annotated[
    Path | None,
    typer.Option(
        "--models-dir",
        envvar="DEEPFAKE_STUDIO_SV2TTS_DIR",
        help="sv2tts engine: folder with RTVC encoder.pt, synthesizer.pt, vocoder.pt.",
    ),
]
Vocoder = Annotated[
    str, typer.Option("--vocoder", help="sv2tts engine: wavernn (slow on CPU) or griffinlim.")
]


def _studio(
    data_dir: Path | None, models_dir: Path | None = None, vocoder: str = "wavernn"
) -> Studio:
    if vocoder not in ("wavernn", "griffinlim"):
        raise StudioError(f"unknown vocoder {vocoder!r} (wavernn or griffinlim)")
    engines = EngineOptions(sv2tts_dir=models_dir, sv2tts_vocoder=vocoder)  # type: ignore[arg-type]
    return Studio(StudioConfig(data_dir=data_dir, engines=engines))


def _bar(description: str):  # type: ignore[no-untyped-def]
    """A tqdm bar on stderr plus a progress callback that drives it."""
    from tqdm import tqdm

    # disable=None: draw only on a terminal, so logs and tests get clean stderr.
    bar = tqdm(
        total=100,
        desc=description,
        file=sys.stderr,
        leave=False,
        disable=None,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
    )

    def update(fraction: float, text: str) -> None:
        bar.n = round(100 * min(max(fraction, 0.0), 1.0))
        bar.set_postfix_str(text, refresh=True)

    return bar, update


@app.command()
def clone(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .wav, .flac or .mp3.")],
    text: Annotated[str | None, typer.Option("--text", "-t", help="Text to speak.")] = None,
    text_file: Annotated[Path | None, typer.Option("--text-file", help="UTF-8 text file.")] = None,
    reference: Annotated[
        Path | None, typer.Option("--reference", "-r", help="Reference recording to clone.")
    ] = None,
    voice: Annotated[str | None, typer.Option("--voice", "-v", help="An enrolled voice.")] = None,
    engine: Engine = None,
    speed: Annotated[float, typer.Option("--speed", help="0.5-2.0, relative to the voice.")] = 1.0,
    seed: Seed = 0,
    no_watermark: Annotated[
        bool, typer.Option("--no-watermark", help="Research use: skip the watermark (recorded).")
    ] = False,
    models_dir: ModelsDir = None,
    vocoder: Vocoder = "wavernn",
    data_dir: DataDir = None,
) -> None:
    """Speak TEXT in the voice of a reference recording or an enrolled voice."""
    if (text is None) == (text_file is None):
        raise TextError("give exactly one of --text or --text-file")
    if (reference is None) == (voice is None):
        raise StudioError("give exactly one of --reference or --voice")
    if out.suffix.lower() not in SUPPORTED_OUTPUT:
        raise StudioError(
            f"cannot write {out.suffix or 'files without a suffix'}: use .wav, .flac or .mp3"
        )
    text = check_text(_read_text(text_file) if text_file is not None else text or "")
    studio = _studio(data_dir, models_dir, vocoder)
    bar, progress = _bar("analysing reference" if reference else "loading voice")
    with bar:
        chosen = studio.resolve_voice(voice, reference, engine, seed, progress)
        bar.set_description("speaking")
        bar.n = 0
        audio = studio.clone(
            text, voice=chosen, speed=speed, watermark=not no_watermark, progress=progress
        )
    path, record = studio.save(
        audio,
        out,
        text=text,
        voice=chosen,
        engine=chosen.engine,
        watermarked=not no_watermark,
        parameters={"speed": speed, "seed": seed},
    )
    mark = "no watermark" if no_watermark else "watermarked"
    typer.echo(
        f"{path}  {audio.duration:.2f} s  voice={chosen.name} engine={chosen.engine}  {mark}"
        f"  record={record.name}"
    )


@app.command()
def enroll(
    reference: Annotated[Path, typer.Argument(help="Reference recording of the speaker.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Name to store the voice under.")],
    consent: Annotated[
        str, typer.Option("--consent", help="The speaker's consent statement (required).")
    ] = "",
    engine: Engine = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a voice of that name.")
    ] = False,
    seed: Seed = 0,
    models_dir: ModelsDir = None,
    vocoder: Vocoder = "wavernn",
    data_dir: DataDir = None,
) -> None:
    """Analyse a reference once and store it as a named voice."""
    studio = _studio(data_dir, models_dir, vocoder)
    bar, progress = _bar("enrolling")
    with bar:
        voice = studio.enroll(
            reference,
            name,
            consent,
            engine=engine,
            seed=seed,
            overwrite=overwrite,
            progress=progress,
        )
    typer.echo(
        f"enrolled {voice.name!r} (engine {voice.engine}, "
        f"{voice.reference_seconds:.1f} s of reference)"
    )


@voices_app.callback()
def voices(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """List enrolled voices (corrupt entries are flagged)."""
    if ctx.invoked_subcommand is not None:
        return
    entries = _studio(data_dir).voices()
    if not entries:
        typer.echo("no voices enrolled yet (deepfake-studio enroll REF --name NAME --consent ...)")
    for entry in entries:
        if isinstance(entry, StudioError):
            typer.echo(f"! {entry}")
        else:
            typer.echo(f"{entry.name}\t{entry.engine}\t{entry.created}\t{entry.source_name}")


@voices_app.command("delete")
def voices_delete(name: str, data_dir: DataDir = None) -> None:
    """Delete an enrolled voice."""
    _studio(data_dir).delete_voice(name)
    typer.echo(f"deleted {name!r}")


watermark_app = typer.Typer(help="Check files for the studio's audio watermark.")
app.add_typer(watermark_app, name="watermark")
provenance_app = typer.Typer(help="Check signed provenance records.")
app.add_typer(provenance_app, name="provenance")


@watermark_app.command("verify")
def watermark_verify(
    files: Annotated[list[Path], typer.Argument(help="Audio files to check.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Report whether each file carries the watermark, with the detector's confidence."""
    from deepfake_studio.audio import load_audio
    from deepfake_studio.provenance import AudioWatermarker

    watermarker = AudioWatermarker()
    for file in files:
        result = watermarker.detect(load_audio(file))
        verdict = "present" if result.present else "absent"
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "file": str(file),
                        "watermark": verdict,
                        "confidence": round(result.confidence, 4),
                    }
                )
            )
        else:
            typer.echo(f"{file}\t{verdict}\tconfidence {result.confidence:.3f}")


@provenance_app.command("verify")
def provenance_verify(
    file: Annotated[Path, typer.Argument(help="Audio file with a .provenance.json sidecar.")],
    record: Annotated[Path | None, typer.Option("--record", help="Record path.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Check the record's signature and the audio hash; exit 1 and say what fails."""
    from deepfake_studio.provenance import verify
    from deepfake_studio.studio import default_data_dir

    report = verify(file, record, data_dir=data_dir or default_data_dir())
    if as_json:
        summary = {
            "file": str(file),
            "ok": report.ok,
            "failures": [str(f) for f in report.failures],
            "details": list(report.details),
            "key_id": report.key_id,
            "key_is_local": report.key_is_local,
        }
        typer.echo(json.dumps(summary))
    else:
        typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def detect(
    files: Annotated[list[Path], typer.Argument(help="Audio files to check.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per file.")
    ] = False,
    segments: Annotated[
        bool, typer.Option("--segments", help="Add the per-window timeline.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Probability that each file is synthetic speech, its label, and the studio watermark."""
    studio = _studio(data_dir)
    failed = False
    for file in files:
        try:
            audio = load_audio(file)
            result = studio.detect(audio)
            mark = studio.watermarker.detect(audio)
        except StudioError as e:  # report it and go on with the other files
            typer.echo(f"error: {e}", err=True)
            failed = True
            continue
        timeline = [asdict(s) for s in result.segments] if segments else None
        if as_json:
            summary: dict[str, object] = {
                "file": str(file),
                "probability_synthetic": round(result.probability, 4),
                "label": result.label,
                "threshold": round(result.threshold, 4),
                "duration_s": round(result.duration, 2),
                "watermark": {"present": mark.present, "confidence": round(mark.confidence, 4)},
            }
            if timeline is not None:
                summary["segments"] = timeline
            typer.echo(json.dumps(summary))
            continue
        verdict = "watermark present" if mark.present else "no watermark"
        typer.echo(
            f"{file}\t{result.label}\tp(synthetic) {result.probability:.3f}"
            f"\t{verdict} ({mark.confidence:.2f})"
        )
        for s in result.segments if segments else ():
            note = "" if s.speech else "  (little speech, not counted)"
            typer.echo(f"  {s.start:7.2f}-{s.end:7.2f} s  p {s.probability:.3f}{note}")
    if failed:
        raise typer.Exit(1)


detector_app = typer.Typer(help="Build data for and train the synthetic-speech detector.")
app.add_typer(detector_app, name="detector")
eval_app = typer.Typer(help="Measure the studio's models on held-out data.")
app.add_typer(eval_app, name="eval")


def _steps(description: str):  # type: ignore[no-untyped-def]
    """Progress for counted steps: a bar on a terminal, else a line every 5 % (logs)."""
    from tqdm import tqdm

    bar = tqdm(desc=description, file=sys.stderr, disable=None, leave=False)
    shown = [-1]

    def update(done: int, total: int, what: str) -> None:
        if bar.disable:
            if 20 * done // total != shown[0]:
                shown[0] = 20 * done // total
                typer.echo(f"{description}: {done}/{total} ({what})", err=True)
            return
        bar.total = total
        bar.n = done
        bar.set_postfix_str(what, refresh=True)

    return bar, update


@detector_app.command("build-data")
def detector_build_data(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for clips + manifest.")],
    spoofs: Annotated[
        int, typer.Option("--spoofs-per-generator", help="Synthetic clips per generator.")
    ] = 43,
    generators: Annotated[
        str | None, typer.Option("--generators", help="Comma-separated subset (default: all).")
    ] = None,
    max_real: Annotated[
        int, typer.Option("--max-real", help="Cap on real clips (0: every recording).")
    ] = 519,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the whole build.")] = 0,
    speech: Annotated[
        Path | None, typer.Option("--speech", help="Real-speech corpus (manifest.csv).")
    ] = None,
) -> None:
    """Generate the detector's real/synthetic clips (resumable: run it again to continue)."""
    from deepfake_studio.detector.data import GENERATORS, DataConfig, build

    chosen = tuple(g.strip() for g in generators.split(",")) if generators else GENERATORS
    config = DataConfig(
        generators=chosen,
        spoofs_per_generator=spoofs,
        max_bona_fide=max_real or None,
        seed=seed,
    )
    bar, progress = _steps("building")
    with bar:
        written = build(out, config, speech_dir=speech, progress=progress)
    made = ", ".join(f"{k} {v}" for k, v in written.items()) or "nothing new (already complete)"
    typer.echo(f"{out}: {made}")


@detector_app.command("train")
def detector_train(
    data: Annotated[Path, typer.Option("--data", "-d", help="Folder made by build-data.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoints + ONNX export.")] = Path(
        "detector-run"
    ),
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 30,
    exclude: Annotated[
        str | None, typer.Option("--exclude", help="Comma-separated generators to leave out.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/last.pt.")] = False,
) -> None:
    """Train the detector; OUT gets detector.onnx + detector.json (copy them to ship)."""
    from deepfake_studio.detector.train import TrainConfig, train

    left_out = tuple(g.strip() for g in exclude.split(",")) if exclude else ()
    config = TrainConfig(epochs=epochs, seed=seed, exclude_generators=left_out)
    card = train(data, out, config, resume=resume, log=lambda line: typer.echo(line, err=True))
    typer.echo(f"{out / 'detector.onnx'}  dev EER {100 * float(card['dev']['eer']):.2f} %")  # type: ignore[index]


@eval_app.command("detect")
def eval_detect(
    data: Annotated[Path, typer.Option("--data", "-d", help="Folder made by build-data.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where results go.")] = Path(
        "benchmarks"
    ),
    runs: Annotated[
        Path, typer.Option("--runs", help="Leave-one-generator-out models (resumable).")
    ] = Path("detector-runs"),
    logo: Annotated[bool, typer.Option("--logo/--no-logo", help="Leave-one-out runs.")] = True,
    logo_epochs: Annotated[int, typer.Option("--logo-epochs", help="Epochs per run.")] = 6,
) -> None:
    """EER (seen, leave-one-generator-out; clean and augmented), FPR, DET plot → OUT."""
    from deepfake_studio.detector.evaluate import EvalConfig, evaluate, write_report

    config = EvalConfig(logo=logo, logo_epochs=logo_epochs)
    report = evaluate(data, runs, config, log=lambda line: typer.echo(line, err=True))
    json_path, md, png = write_report(report, out)
    typer.echo(md.read_text(encoding="utf-8"))
    typer.echo(f"wrote {json_path}, {md}, {png}")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="DEEPFAKE_STUDIO_TOKEN", help="Bearer token for the API."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Serve the web studio (/) and REST API (/api/v1, docs at /docs) on 127.0.0.1 by default."""
    from deepfake_studio.service.server import serve as run_server

    run_server(_studio(data_dir), host=host, port=port, token=token)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TextError(f"text file not found: {path}") from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as e:
        raise TextError(f"cannot read text file {path}: {type(e).__name__}") from None


def main() -> None:
    """Entry point: one line on stderr and a non-zero exit for every user error."""
    try:
        app()  # usage errors are handled by Typer itself (exit code 2)
    except StudioError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # a bug, not a user error: still one line unless debugging
        if os.environ.get("DEEPFAKE_STUDIO_DEBUG"):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        typer.echo(
            f"error: internal error ({type(e).__name__}: {first}); "
            "set DEEPFAKE_STUDIO_DEBUG=1 for the traceback",
            err=True,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
