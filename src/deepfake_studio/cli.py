"""`deepfake-studio` command line: each command is a few lines over `Studio`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from deepfake_studio import __version__
from deepfake_studio.audio import SUPPORTED_OUTPUT, save_audio
from deepfake_studio.errors import StudioError, TextError
from deepfake_studio.studio import Studio, StudioConfig
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
Engine = Annotated[str | None, typer.Option("--engine", "-e", help="kokoro (default) or piper.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for the voice analysis.")]


def _studio(data_dir: Path | None) -> Studio:
    return Studio(StudioConfig(data_dir=data_dir))


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
    studio = _studio(data_dir)
    bar, progress = _bar("analysing reference" if reference else "loading voice")
    with bar:
        chosen = studio.resolve_voice(voice, reference, engine, seed, progress)
        bar.set_description("speaking")
        bar.n = 0
        audio = studio.clone(text, voice=chosen, speed=speed, progress=progress)
    path = save_audio(audio, out)
    typer.echo(f"{path}  {audio.duration:.2f} s  voice={chosen.name} engine={chosen.engine}")


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
    data_dir: DataDir = None,
) -> None:
    """Analyse a reference once and store it as a named voice."""
    studio = _studio(data_dir)
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


if __name__ == "__main__":
    main()
