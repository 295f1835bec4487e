"""`deepfake-studio` command line: each command is a few lines over `Studio`."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import numpy as np
import typer

from deepfake_studio import __version__
from deepfake_studio.audio import SUPPORTED_OUTPUT, load_audio
from deepfake_studio.errors import StudioError, TextError
from deepfake_studio.studio import (
    Studio,
    StudioConfig,
    check_consent,
    check_quality,
    enrollment_quality,
)
from deepfake_studio.synthesizer import ENGINES, EngineOptions
from deepfake_studio.synthesizer.emotion import check_emotion
from deepfake_studio.synthesizer.kokoro.engine import QUALITY_CARDS, quality_similarities
from deepfake_studio.synthesizer.kokoro.fit import FitConfig
from deepfake_studio.synthesizer.languages import check_language
from deepfake_studio.text import check_text, plural
from deepfake_studio.wav_stream import pcm16, wav_header

if TYPE_CHECKING:
    from deepfake_studio.service.distributed import QueueConfig

app = typer.Typer(
    help="Deepfake Studio: offline voice cloning and face swap on a laptop CPU.",
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
    str | None,
    typer.Option("--engine", "-e", help="kokoro (default), piper, sv2tts or transformer."),
]
Seed = Annotated[int, typer.Option("--seed", help="Seed for the voice analysis.")]
Quality = Annotated[
    str | None,
    typer.Option(
        "--quality",
        help="kokoro only: "
        + "; ".join(
            f"{q} ({card.method}; {card.time} on 2 cores"
            + (f", {card.storage} per voice" if card.storage else "")
            + ")"
            for q, card in QUALITY_CARDS.items()
        )
        + f". Default: standard. Normalised similarity to unseen speakers: "
        f"{quality_similarities()} (README).",
    ),
]
ReferenceText = Annotated[
    str | None,
    typer.Option(
        "--reference-text",
        help="The words spoken in the reference (standard and best; else transcribed).",
    ),
]
# What a newcomer waits for: models load on first use, and a kokoro voice is fitted to the
# reference (piper only matches the rate, in about a second).
MODELS_NOTE = " (models load on first use)"
QUALITY_NOTES = {
    q: f" (models load on first use; a {q} kokoro fit takes {card.time})"
    for q, card in QUALITY_CARDS.items()
}


def _reference_note(studio: Studio, engine: str | None, quality: str | None) -> str:
    """What fitting a voice to a reference will cost, for the quality that will be used."""
    if (engine or studio.config.default_engine) != "kokoro":
        return MODELS_NOTE
    chosen = quality or studio.config.engines.kokoro.quality  # omitted: the engine's default
    return QUALITY_NOTES.get(chosen, QUALITY_NOTES["standard"])


# Options of every command that speaks text (clone, speak).
Text = Annotated[str | None, typer.Option("--text", "-t", help="Text to speak.")]
TextFile = Annotated[Path | None, typer.Option("--text-file", help="UTF-8 text file.")]
Speed = Annotated[float, typer.Option("--speed", help="0.5-2.0, relative to the voice.")]
Language = Annotated[
    str,
    typer.Option(
        "--language",
        "-l",
        help="en-us (default), en-gb, es, fr, it, pt-br, hi, ja or zh (kokoro engine).",
    ),
]
NoWatermark = Annotated[
    bool, typer.Option("--no-watermark", help="Research use: skip the watermark (recorded).")
]
EmotionOption = Annotated[
    str | None,
    typer.Option(
        "--emotion",
        help="neutral (default), happy, sad, angry, fearful or surprised (kokoro and "
        "transformer voices).",
    ),
]
EmotionStrength = Annotated[
    float | None,
    typer.Option("--emotion-strength", help="0-1 (default 1); 0 is exactly the neutral speech."),
]

ModelsDir = Annotated[
    Path | None,
    typer.Option(
        "--models-dir",
        envvar="DEEPFAKE_STUDIO_SV2TTS_DIR",
        help="sv2tts: folder with RTVC encoder.pt, synthesizer.pt, vocoder.pt; transformer: "
        "a 'train' run folder (transformer.pt, hifigan.pt).",
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
    engines = EngineOptions(  # one folder option for both trainable engines
        sv2tts_dir=models_dir,
        sv2tts_vocoder=vocoder,  # type: ignore[arg-type]
        transformer_dir=models_dir,
    )
    return Studio(StudioConfig(data_dir=data_dir, engines=engines))


class StageProgress:
    """Progress of a slow command on stderr. On a terminal: one bar whose text says the stage
    and its step ("speaking: sentence 1/6  17%|██  |"). Piped or logged: one line when a
    stage starts, when its step changes kind, and at every quarter, with the elapsed time,
    so a long step never runs silently."""

    def __init__(
        self, stage: str, note: str = "", *, file: TextIO | None = None, tty: bool | None = None
    ) -> None:
        from tqdm import tqdm

        self.file = file or sys.stderr
        self.tty = self.file.isatty() if tty is None else tty
        self.started = time.monotonic()
        self.bar = tqdm(
            total=100,
            file=self.file,
            leave=False,
            disable=not self.tty,
            bar_format="{desc} {percentage:3.0f}%|{bar}|",
        )
        self.begin(stage, note)

    def begin(self, stage: str, note: str = "") -> None:
        """A new stage (its progress starts again from 0)."""
        self.stage, self._kind, self._quarter = stage, "", 0
        self.bar.n = 0
        self.bar.set_description_str(stage, refresh=True)
        if not self.tty:
            self._line(f"{stage}{note}")

    def __call__(self, fraction: float, text: str) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if self.tty:
            self.bar.n = round(100 * fraction)
            self.bar.set_description_str(f"{self.stage}: {text}", refresh=True)
            return
        kind, quarter = re.sub(r"\d+", "#", text), int(4 * fraction)
        if kind != self._kind or quarter > self._quarter:
            self._kind, self._quarter = kind, quarter
            self._line(f"{self.stage}: {text} ({100 * fraction:.0f} %)")

    def _line(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f} s] {text}", file=self.file, flush=True)

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(self, *_: object) -> None:
        self.bar.close()


@app.command()
def clone(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .wav, .flac or .mp3.")],
    text: Text = None,
    text_file: TextFile = None,
    reference: Annotated[
        Path | None, typer.Option("--reference", "-r", help="Reference recording to clone.")
    ] = None,
    voice: Annotated[str | None, typer.Option("--voice", "-v", help="An enrolled voice.")] = None,
    consent: Annotated[
        str | None,
        typer.Option("--consent", help="With --reference: the speaker's consent statement."),
    ] = None,
    engine: Engine = None,
    speed: Speed = 1.0,
    language: Language = "en-us",
    seed: Seed = 0,
    no_watermark: NoWatermark = False,
    models_dir: ModelsDir = None,
    vocoder: Vocoder = "wavernn",
    emotion: EmotionOption = None,
    emotion_strength: EmotionStrength = None,
    data_dir: DataDir = None,
    quality: Quality = None,
    reference_text: ReferenceText = None,
) -> None:
    """Speak TEXT in the voice of a reference recording or an enrolled voice."""
    emotion, emotion_strength = check_emotion(emotion, emotion_strength, "--emotion")
    if (text is None) == (text_file is None):
        raise TextError("give exactly one of --text or --text-file")
    if (reference is None) == (voice is None):
        raise StudioError("give exactly one of --reference or --voice")
    check_quality(quality, "--quality")
    if reference is None and (quality is not None or reference_text is not None):
        raise StudioError("--quality and --reference-text go with --reference")
    if out.suffix.lower() not in SUPPORTED_OUTPUT:
        raise StudioError(
            f"cannot write {out.suffix or 'files without a suffix'}: use .wav, .flac or .mp3"
        )
    text = check_text(_read_text(text_file) if text_file is not None else text or "")
    language = check_language(language)  # a one-line error before any model loads
    if reference is not None:
        check_consent(consent, "cloning from a recording")
    elif consent is not None:
        raise StudioError("--consent goes with --reference (an enrolled voice has its own)")
    studio = _studio(data_dir, models_dir, vocoder)
    stage, note = (
        ("analysing the reference", _reference_note(studio, engine, quality))
        if reference
        else ("loading the voice", "")
    )
    with StageProgress(stage, note) as progress:
        chosen = studio.resolve_voice(
            voice,
            reference,
            engine,
            seed,
            progress,
            consent=consent,
            quality=quality,
            reference_text=reference_text,
        )
        progress.begin("speaking")
        audio = studio.clone(
            text,
            voice=chosen,
            speed=speed,
            watermark=not no_watermark,
            progress=progress,
            language=language,
            emotion=emotion,
            emotion_strength=emotion_strength,
        )
    path, record = studio.save(audio, out)
    mark = "no watermark" if no_watermark else "watermarked"
    typer.echo(
        f"{path}  {audio.duration:.2f} s  voice={chosen.name} engine={chosen.engine}  {mark}"
        f"  record={record.name}"
    )


@app.command()
def speak(
    voice: Annotated[str, typer.Option("--voice", "-v", help="An enrolled voice.")],
    text: Text = None,
    text_file: TextFile = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            help="Output .wav, .flac or .mp3 (with its provenance record), or - for 16-bit "
            "WAV on stdout as it is made (header with unknown length, for piping).",
        ),
    ] = None,
    play: Annotated[
        bool,
        typer.Option("--play", help="Play as it is made (needs the sounddevice package)."),
    ] = False,
    speed: Speed = 1.0,
    language: Language = "en-us",
    no_watermark: NoWatermark = False,
    emotion: EmotionOption = None,
    emotion_strength: EmotionStrength = None,
    data_dir: DataDir = None,
) -> None:
    """Speak TEXT in an enrolled voice while it is synthesised (kokoro voices: the first
    0.4 s plays after about half a second; other engines sentence by sentence)."""
    emotion, emotion_strength = check_emotion(emotion, emotion_strength, "--emotion")
    if (text is None) == (text_file is None):
        raise TextError("give exactly one of --text or --text-file")
    if (out is None) == (not play):
        raise StudioError("give exactly one of --out FILE, --out - (stdout) or --play")
    if out not in (None, "-") and Path(out).suffix.lower() not in SUPPORTED_OUTPUT:
        raise StudioError(
            f"cannot write {Path(out).suffix or 'files without a suffix'}: "
            "use .wav, .flac or .mp3, or - for stdout"
        )
    text = check_text(_read_text(text_file) if text_file is not None else text or "")
    language = check_language(language)
    player = _SoundDevice() if play else None  # no device: fail before any model loads
    studio = _studio(data_dir)
    chosen = studio.voice(voice)
    started = time.perf_counter()
    first_audio: float | None = None
    pieces = []
    stdout = sys.stdout.buffer if out == "-" else None
    for piece in studio.speak_stream(
        text,
        chosen,
        speed=speed,
        watermark=not no_watermark,
        language=language,
        emotion=emotion,
        emotion_strength=emotion_strength,
    ):
        if first_audio is None:
            first_audio = time.perf_counter() - started
            if stdout is not None:
                stdout.write(wav_header(piece.sample_rate))
        if stdout is not None:
            try:
                stdout.write(pcm16(piece.samples))
                stdout.flush()
            except BrokenPipeError:  # the reader stopped (e.g. `| head -c`): stop speaking
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise StudioError("stdout was closed by its reader; stopped") from None
        elif player is not None:
            player.write(piece.samples, piece.sample_rate)
        pieces.append(piece)
    if player is not None:
        player.close()
    clip = studio.join_stream(pieces, text)
    mark = "no watermark" if no_watermark else "watermarked"
    summary = (
        f"{clip.duration:.2f} s  voice={chosen.name} engine={chosen.engine}  {mark}"
        f"  first audio {first_audio or 0.0:.2f} s"
    )
    if out in (None, "-"):
        # The audio went to stdout or the speaker: a copy with its record is kept in the data
        # folder, as the server does for streams, so every clip made has a record.
        kept, _ = studio.keep_stream(clip)
        typer.echo(f"{'played' if play else 'stdout'}  {summary}  kept={kept}", err=True)
        return
    path, record = studio.save(clip, Path(out))  # the record, once the stream has ended
    typer.echo(f"{path}  {summary}  record={record.name}")


class _SoundDevice:
    """The default output device through `sounddevice` (an optional package: `[play]`)."""

    def __init__(self) -> None:
        try:
            import sounddevice
        except (ImportError, OSError):  # OSError: the package without its PortAudio library
            raise StudioError(
                "--play needs the sounddevice package (pip install 'deepfake-studio[play]'); "
                "or pipe: --out - | aplay"
            ) from None
        try:
            sounddevice.query_devices(kind="output")
        except (ValueError, sounddevice.PortAudioError):
            raise StudioError(
                "--play: no sound output device here; use --out FILE or --out -"
            ) from None
        self._sd = sounddevice
        self._stream: object | None = None

    def write(self, samples: np.ndarray, sample_rate: int) -> None:
        if self._stream is None:
            self._stream = self._sd.OutputStream(
                samplerate=sample_rate, channels=1, dtype="float32"
            )
            self._stream.start()  # type: ignore[attr-defined]
        self._stream.write(samples.astype(np.float32).reshape(-1, 1))  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._stream is not None:
            self._stream.stop()  # type: ignore[attr-defined]  # plays what is queued first
            self._stream.close()  # type: ignore[attr-defined]


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
    quality: Quality = None,
    reference_text: ReferenceText = None,
    consent_audio: Annotated[
        Path | None,
        typer.Option(
            "--consent-audio",
            help="The speaker reading the sentence of 'consent phrase': consent proven by "
            "voice (phrase heard, same speaker as the reference, not synthetic).",
        ),
    ] = None,
    challenge: Annotated[
        str | None,
        typer.Option(
            "--challenge", help="With --consent-audio: the phrase's id (default: the newest)."
        ),
    ] = None,
) -> None:
    """Analyse a reference once and store it as a named voice."""
    check_quality(quality, "--quality")  # a one-line error before any model loads
    studio = _studio(data_dir, models_dir, vocoder)
    with StageProgress("enrolling", _reference_note(studio, engine, quality)) as progress:
        voice = studio.enroll(
            reference,
            name,
            consent,
            engine=engine,
            seed=seed,
            overwrite=overwrite,
            progress=progress,
            quality=quality,
            reference_text=reference_text,
            consent_audio=consent_audio,
            challenge=challenge,
        )
    typer.echo(
        f"enrolled {voice.name!r} (engine {voice.engine}, "
        f"{voice.reference_seconds:.1f} s of reference)"
    )
    if voice.consent_evidence:
        e = voice.consent_evidence
        typer.echo(
            f"consent proven by voice: {e['words_heard']} of {len(e['challenge']['words'])} "
            f"phrase words heard, speaker similarity {e['speaker_similarity']:.3f} "
            f"(>= {e['speaker_threshold']:.2f}), watermark {e['watermark_score']:.2f}, "
            f"detector {e['detector_probability']:.2f}"
        )


consent_app = typer.Typer(help="Consent proven by the speaker's voice.")
app.add_typer(consent_app, name="consent")


@consent_app.command("phrase")
def consent_phrase(
    name: Annotated[str, typer.Option("--name", "-n", help="The speaker's name, as enrolled.")],
    as_json: Annotated[bool, typer.Option("--json", help="The challenge as JSON.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Issue a fresh consent phrase: the speaker reads it aloud, and that recording is
    'enroll --consent-audio'. Valid once, for an hour."""
    challenge = _studio(data_dir).consent_phrase(name)
    if as_json:
        typer.echo(json.dumps(challenge.as_dict()))
        return
    typer.echo(challenge.sentence)
    typer.echo(
        f"(challenge {challenge.id}, valid until {challenge.expires}: record the speaker "
        f"reading the sentence above, then: deepfake-studio enroll REF --name {name!r} "
        "--consent-audio RECORDING)",
        err=True,
    )


@voices_app.callback()
def voices(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """List enrolled voices: name, engine, quality, created, reference (corrupt ones flagged)."""
    if ctx.invoked_subcommand is not None:
        return
    entries = _studio(data_dir).voices()
    if not entries:
        typer.echo("no voices enrolled yet (deepfake-studio enroll REF --name NAME --consent ...)")
    for entry in entries:
        if isinstance(entry, StudioError):
            typer.echo(f"! {entry}")
        else:
            quality = enrollment_quality(entry) or "-"  # what the voice's fit cost (kokoro)
            typer.echo(
                f"{entry.name}\t{entry.engine}\t{quality}\t{entry.created}\t{entry.source_name}"
            )


@voices_app.command("delete")
def voices_delete(name: str, data_dir: DataDir = None) -> None:
    """Delete an enrolled voice."""
    _studio(data_dir).delete_voice(name)
    typer.echo(f"deleted {name!r}")


@app.command()
def faceswap(
    source: Annotated[Path, typer.Option("--source", "-s", help="Image with the face to use.")],
    target: Annotated[
        Path, typer.Option("--target", "-t", help="Image or video (.mp4, .mov, ...) to change.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .png/.jpg/.webp or .mp4.")],
    face: Annotated[
        int | None,
        typer.Option("--face", help="Swap only this target face (0 = leftmost); default: all."),
    ] = None,
    voice: Annotated[
        str | None, typer.Option("--voice", "-v", help="Video: speak --text in this voice.")
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option("--reference", "-r", help="Video: speak --text in this recording's voice."),
    ] = None,
    consent: Annotated[
        str | None,
        typer.Option("--consent", help="With --reference: the speaker's consent statement."),
    ] = None,
    text: Annotated[
        str | None, typer.Option("--text", help="Video: new soundtrack text (cloned voice).")
    ] = None,
    audio: Annotated[
        Path | None, typer.Option("--audio", help="Video: replace the soundtrack with this file.")
    ] = None,
    extend: Annotated[
        bool,
        typer.Option(
            "--extend", help="Video: hold the last frame while a longer new soundtrack ends."
        ),
    ] = False,
    quality: Quality = None,
    reference_text: ReferenceText = None,
    data_dir: DataDir = None,
) -> None:
    """Put the face from SOURCE onto the faces of TARGET (an image or a video)."""
    check_quality(quality, "--quality")  # a one-line error before any model loads
    studio = _studio(data_dir)
    with StageProgress("swapping faces") as progress:
        result = studio.faceswap(
            source,
            target,
            out,
            face=face,
            text=text,
            voice=voice,
            reference=reference,
            audio=audio,
            progress=progress,
            consent=consent,
            extend=extend,
            quality=quality,
            reference_text=reference_text,
        )
    if result.audio_cut_s > 0:
        typer.echo(
            f"warning: the new soundtrack is {result.audio_cut_s:.1f} s longer than the video; "
            "its end is cut (--extend holds the last frame until it ends)",
            err=True,
        )
    found = f"{result.faces_found} face{'s' if result.faces_found != 1 else ''}"
    if result.media == "image":
        done = f"found {found} in the target, swapped {result.faces_swapped}"
    else:
        done = (
            f"found {found} (tracked) in the video, swapped {result.faces_swapped}/"
            f"{result.frames} frames at {result.fps} fps, audio: {result.audio}"
        )
        if result.extended_s > 0:
            done += f" (last frame held {result.extended_s:.1f} s)"
    mark = "watermarked" if result.watermarked else "no watermark"
    typer.echo(f"{result.path}  {done}  {mark}  record={result.record.name}")


watermark_app = typer.Typer(help="Check files for the studio's watermark (audio, images, video).")
app.add_typer(watermark_app, name="watermark")
provenance_app = typer.Typer(help="Check signed provenance records.")
app.add_typer(provenance_app, name="provenance")


@watermark_app.command("verify")
def watermark_verify(
    files: Annotated[list[Path], typer.Argument(help="Audio, image or video files to check.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Report whether each file carries the watermark: a score (1 = the mark reads back
    perfectly, near 0 for unmarked files; not a probability) and the threshold it is judged at.

    Audio: PerthNet (score, threshold 0.85) and, when the data directory holds a signing key,
    the spread-spectrum layer keyed from it; "present" when either finds it, and the line says
    which did. Images: the invisible-watermark payload; videos: the same payload, each bit by
    majority over the frames (threshold 0.79).
    """
    from deepfake_studio.faceswap.config import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    checkers: dict[str, object] = {}
    for file in files:
        suffix = file.suffix.lower()
        extra = ""
        if suffix in IMAGE_SUFFIXES:
            result = _image_checker(checkers).detect(_read_image(file))
            kind = "image"
        elif suffix in VIDEO_SUFFIXES:
            result, frames = _video_watermark(file, _image_checker(checkers))
            kind, extra = "video", f" over {plural(frames, 'frame')}"
        else:
            from deepfake_studio.audio import load_audio

            result = _audio_checker(checkers, data_dir).detect(load_audio(file))
            kind = "audio"
            extra = f"\tfound by {', '.join(result.found_by)}" if result.found_by else ""
        verdict = "present" if result.present else "absent"
        if as_json:
            from deepfake_studio.service.runner import watermark_summary

            summary = {"file": str(file), "media": kind, "watermark": verdict}
            summary |= {k: v for k, v in watermark_summary(result).items() if k != "present"}
            typer.echo(json.dumps(summary))
        else:
            typer.echo(
                f"{file}\t{verdict}\tscore {result.score:.2f} "
                f"(threshold {result.threshold:.2f}){extra}"
            )


def _image_checker(cache: dict[str, object]):  # type: ignore[no-untyped-def]
    """One image watermarker for all files of a command (created on first need)."""
    if "image" not in cache:
        from deepfake_studio.provenance.image_watermark import ImageWatermarker

        cache["image"] = ImageWatermarker()
    return cache["image"]


def _audio_checker(cache: dict[str, object], data_dir: Path | None):  # type: ignore[no-untyped-def]
    """Both audio layers when `data_dir` holds this studio's signing key (never creates one:
    without it nothing here was marked with the keyed layer), else PerthNet alone."""
    if "audio" not in cache:
        from deepfake_studio.provenance import AudioWatermarker, key_path, load_or_create_key
        from deepfake_studio.provenance.spread_watermark import layer_key

        has_key = key_path(data_dir).exists()
        key = layer_key(load_or_create_key(data_dir)) if has_key else None
        cache["audio"] = AudioWatermarker(key=key)
    return cache["audio"]


def _read_image(file: Path):  # type: ignore[no-untyped-def]
    from deepfake_studio.faceswap.config import FaceSwapConfig
    from deepfake_studio.faceswap.image import read_image

    return read_image(file, FaceSwapConfig(), "image")


def _video_watermark(file: Path, checker):  # type: ignore[no-untyped-def]
    from deepfake_studio.faceswap.video import probe, read_frames

    info = probe(file)
    result, frames = checker.detect_frames(read_frames(file, info))
    if frames == 0:
        raise StudioError(f"the video {file.name} has no frames that can be decoded")
    return result, frames


@provenance_app.command("verify")
def provenance_verify(
    files: Annotated[
        list[Path],
        typer.Argument(help="Audio, image or video files, each with a .provenance.json sidecar."),
    ],
    record: Annotated[
        Path | None, typer.Option("--record", help="Record path (with a single file).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON report per file.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Check each record's signature and its file's hash: verified files on stdout, failures
    on stderr (with --json every report is a line on stdout); exit 1 if any fails."""
    from deepfake_studio.paths import default_data_dir
    from deepfake_studio.provenance import verify

    if record is not None and len(files) > 1:
        raise StudioError("--record names the record of one file: give a single file with it")
    failed = False
    for file in files:
        try:
            report = verify(file, record, data_dir=data_dir or default_data_dir())
        except StudioError as e:  # say it and go on with the other files
            typer.echo(f"{file}\terror: {e}", err=True)
            failed = True
            continue
        failed |= not report.ok
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
            typer.echo(f"{file}\t{report.summary()}", err=not report.ok)
    if failed:
        raise typer.Exit(1)


Broker = Annotated[
    str | None,
    typer.Option(
        "--broker",
        envvar="DEEPFAKE_STUDIO_BROKER",
        help="Redis URL of the Celery broker (redis://host:6379/0): run jobs on workers.",
    ),
]


@app.command()
def detect(
    files: Annotated[list[Path], typer.Argument(help="Audio files to check.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per file.")
    ] = False,
    segments: Annotated[
        bool, typer.Option("--segments", help="Add the per-window timeline.")
    ] = False,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="A detector you trained (detector train --out DIR): that DIR."
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Probability that each file is synthetic speech, its label, and the studio watermark."""
    from deepfake_studio.detector import Detector
    from deepfake_studio.detector.infer import DetectorConfig
    from deepfake_studio.service.runner import watermark_summary

    studio = _studio(data_dir)
    # The shipped model, or the user's: loaded once, before any file (a bad DIR: one line).
    detector = Detector(DetectorConfig(weights_dir=model)) if model else studio.detector
    failed = False
    for file in files:
        try:
            audio = load_audio(file)
            result = detector.detect(audio)
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
                "watermark": watermark_summary(mark),
            }
            if timeline is not None:
                summary["segments"] = timeline
            typer.echo(json.dumps(summary))
            continue
        verdict = "watermark present" if mark.present else "no watermark"
        typer.echo(
            f"{file}\t{result.label}\tp(synthetic) {result.probability:.3f}"
            f"\t{verdict} (score {mark.score:.2f}, threshold {mark.threshold:.2f})"
        )
        for s in result.segments if segments else ():
            note = "" if s.speech else "  (little speech, not counted)"
            typer.echo(f"  {s.start:7.2f}-{s.end:7.2f} s  p {s.probability:.3f}{note}")
    if failed:
        raise typer.Exit(1)


detector_app = typer.Typer(help="Build data for and train the synthetic-speech detector.")
app.add_typer(detector_app, name="detector")
eval_app = typer.Typer(
    help="Measure the studio on held-out data: clone quality, languages, emotion, the detector."
)
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


def _pairs(text: str, option: str) -> dict[str, str]:
    """`a=1,b=2` → {"a": "1", "b": "2"} (an option's comma-separated KEY=VALUE pairs)."""
    pairs = [p.strip().split("=", 1) for p in text.split(",") if p.strip()]
    if not all(len(p) == 2 for p in pairs):
        raise StudioError(f"{option} takes KEY=VALUE pairs separated by commas")
    return {k.strip(): v.strip() for k, v in pairs}


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
    crops: Annotated[
        int,
        typer.Option(
            "--crops-per-recording",
            help="Real clips cut from each recording long enough for them (default 1).",
        ),
    ] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the whole build.")] = 0,
    speech: Annotated[
        Path | None, typer.Option("--speech", help="Real-speech corpus (manifest.csv).")
    ] = None,
    codecs: Annotated[
        str | None,
        typer.Option("--codecs", help="Codecs of the augmented copies (default mp3,opus; +aac)."),
    ] = None,
    augmentations: Annotated[
        str | None,
        typer.Option(
            "--augmentations",
            help="Augmentations of the copies (default: pitch,shift,noise,codec,telephone,gain; "
            "also: resample).",
        ),
    ] = None,
    clone_speakers: Annotated[
        str | None,
        typer.Option(
            "--clone-speakers",
            help="Speakers (train/dev/test) cloned per quality for kokoro-clone-QUALITY, e.g. "
            "quick=16/4/8,standard=4/1/2 (default: those).",
        ),
    ] = None,
    spoofs_for: Annotated[
        str | None,
        typer.Option(
            "--spoofs-for",
            help="Synthetic clips of single generators, e.g. kokoro-clone-quick=90 "
            "(others: --spoofs-per-generator).",
        ),
    ] = None,
    hifigan_checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--hifigan-checkpoint",
            help="RUN/hifigan.pt that the hifigan-resynth generator vocodes real clips with.",
        ),
    ] = None,
) -> None:
    """Generate the detector's real/synthetic clips (resumable: run it again to continue)."""
    from dataclasses import replace

    from deepfake_studio.detector.data import GENERATORS, DataConfig, build

    chosen = tuple(g.strip() for g in generators.split(",")) if generators else GENERATORS
    config = DataConfig(
        generators=chosen,
        spoofs_per_generator=spoofs,
        max_bona_fide=max_real or None,
        crops_per_recording=crops,
        hifigan_checkpoint=str(hifigan_checkpoint) if hifigan_checkpoint else None,
        seed=seed,
    )
    if crops < 1:
        raise StudioError("--crops-per-recording must be at least 1")
    if codecs:
        config = replace(config, codecs=tuple(c.strip() for c in codecs.split(",")))
    if augmentations:
        kinds = tuple(a.strip() for a in augmentations.split(","))
        config = replace(config, augmentations=kinds)
    if clone_speakers:
        per_quality = dict(config.quality_clone_voices)
        for quality, counts in _pairs(clone_speakers, "--clone-speakers").items():
            numbers = counts.split("/")
            if len(numbers) != 3 or not all(n.isdigit() for n in numbers):
                raise StudioError(f"--clone-speakers {quality}={counts}: give train/dev/test")
            split_counts = zip(("train", "dev", "test"), map(int, numbers), strict=True)
            per_quality[quality] = dict(split_counts)
        config = replace(config, quality_clone_voices=per_quality)
    if spoofs_for:
        pairs = _pairs(spoofs_for, "--spoofs-for")
        if not all(v.isdigit() for v in pairs.values()):
            raise StudioError("--spoofs-for takes GENERATOR=COUNT pairs")
        config = replace(config, spoofs_by_generator={k: int(v) for k, v in pairs.items()})
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
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="JSON overriding TrainConfig fields (detector/train.py)."),
    ] = None,
    rawboost: Annotated[
        float, typer.Option("--rawboost", help="Share of training crops given RawBoost.")
    ] = 0.0,
    hold_out_real: Annotated[
        bool,
        typer.Option(
            "--hold-out-real",
            help="Keep children (speechocean762, 12 or younger) and the alphanumeric set's "
            "phone recordings out of train and dev, to measure false positives on them.",
        ),
    ] = False,
    init_onnx: Annotated[
        Path | None,
        typer.Option(
            "--init-onnx",
            help="Fine-tune: start from this detector.onnx (e.g. the shipped weights); "
            "set a lower learning_rate with --config.",
        ),
    ] = None,
) -> None:
    """Train the detector; OUT gets detector.onnx + detector.json (copy them to ship)."""
    from deepfake_studio.detector.data import held_out_real_sources
    from deepfake_studio.detector.train import TrainConfig, train
    from deepfake_studio.evaluation.speakers import data_root
    from deepfake_studio.training.common import load_config

    left_out = tuple(g.strip() for g in exclude.split(",")) if exclude else ()
    held = held_out_real_sources(data_root() / "speech" / "manifest.csv") if hold_out_real else ()
    config = load_config(
        TrainConfig,
        config_file,
        epochs=epochs,
        seed=seed,
        exclude_generators=left_out,
        rawboost=rawboost,
        exclude_real_sources=held,
        **({"init_onnx": str(init_onnx)} if init_onnx else {}),
    )
    card = train(data, out, config, resume=resume, log=lambda line: typer.echo(line, err=True))
    typer.echo(f"{out / 'detector.onnx'}  dev EER {100 * float(card['dev']['eer']):.2f} %")  # type: ignore[index]


@eval_app.command("detect")
def eval_detect(
    data: Annotated[Path, typer.Option("--data", "-d", help="Folder made by build-data.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the results (created if needed).")
    ] = Path("detector-eval"),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace results already in --out.")
    ] = False,
    runs: Annotated[
        Path, typer.Option("--runs", help="Leave-one-generator-out models (resumable).")
    ] = Path("detector-runs"),
    logo: Annotated[bool, typer.Option("--logo/--no-logo", help="Leave-one-out runs.")] = True,
    logo_epochs: Annotated[int, typer.Option("--logo-epochs", help="Epochs per run.")] = 6,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Model folder to evaluate (default: the shipped one)."),
    ] = None,
) -> None:
    """EER (seen, leave-one-generator-out; clean and augmented), FPR, DET plot → OUT."""
    from deepfake_studio.detector.evaluate import (
        REPORT_FILES,
        EvalConfig,
        evaluate,
        write_report,
    )
    from deepfake_studio.detector.infer import DetectorConfig

    existing = [out / name for name in REPORT_FILES if (out / name).exists()]
    if existing and not overwrite:  # checked first: an evaluation takes minutes to hours
        raise StudioError(
            f"{existing[0]} already exists: pass --overwrite to replace the results in {out}, "
            "or name another folder with --out"
        )
    config = EvalConfig(logo=logo, logo_epochs=logo_epochs)
    report = evaluate(
        data,
        runs,
        config,
        detector=DetectorConfig(weights_dir=model),
        log=lambda line: typer.echo(line, err=True),
    )
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
    broker: Broker = None,
    data_dir: DataDir = None,
    voice_consent: Annotated[
        bool | None,
        typer.Option(
            "--voice-consent/--no-voice-consent",
            help="Enrolling needs consent proven by the speaker's voice "
            "(default: on unless --host is loopback).",
        ),
    ] = None,
) -> None:
    """Serve the web studio (/) and REST API (/api/v1, docs at /docs) on 127.0.0.1 by default.

    With --broker, jobs run on `deepfake-studio worker` processes instead of in the server.
    """
    from deepfake_studio.service.server import serve as run_server

    run_server(
        _studio(data_dir),
        host=host,
        port=port,
        token=token,
        broker=broker or None,
        voice_consent=voice_consent,
    )


def _queue_config(broker: str | None, visibility_timeout: float | None = None) -> QueueConfig:
    if not broker:
        raise StudioError(
            "give the broker with --broker redis://HOST:6379/0 (or DEEPFAKE_STUDIO_BROKER)"
        )
    try:
        import celery  # noqa: F401 - both are imported lazily later; check them up front
        import redis  # noqa: F401

        from deepfake_studio.service.distributed import QueueConfig
    except ImportError as e:
        raise StudioError(
            f"--broker and workers need the 'queue' extra ({e.name} is missing): "
            "pip install 'deepfake-studio[queue]'"
        ) from e
    if visibility_timeout is None:
        return QueueConfig(broker=broker)
    return QueueConfig(broker=broker, visibility_timeout_s=visibility_timeout)


@app.command()
def worker(
    broker: Broker = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", help="Job processes (each loads the models).")
    ] = 1,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Worker name (default studio@HOST).")
    ] = None,
    preload: Annotated[
        str,
        typer.Option("--preload", help="Engines to load at start, comma-separated (or none)."),
    ] = "kokoro",
    visibility_timeout: Annotated[
        float,
        typer.Option(
            "--visibility-timeout",
            help="Seconds before a job of a dead worker is given to another; longer than any job.",
        ),
    ] = 3600.0,
    models_dir: ModelsDir = None,
    vocoder: Vocoder = "wavernn",
    data_dir: DataDir = None,
) -> None:
    """Run clone, enroll and detect jobs from the broker until stopped (Ctrl-C)."""
    from deepfake_studio.service.distributed import WorkerSettings, run_worker

    engines = tuple(e.strip() for e in preload.split(",") if e.strip() and e.strip() != "none")
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise StudioError(
            f"unknown engine {unknown[0]!r} in --preload (available: {', '.join(ENGINES)})"
        )
    studio = _studio(data_dir, models_dir, vocoder)
    settings = WorkerSettings(
        studio=studio.config, concurrency=concurrency, name=name, preload=engines
    )
    run_worker(_queue_config(broker, visibility_timeout), settings)


@app.command()
def batch(
    jobs: Annotated[
        Path, typer.Argument(help="CSV: text, out, voice or reference[, engine, speed, seed].")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the outputs.")],
    broker: Broker = None,
    data_dir: DataDir = None,
) -> None:
    """Run many clone jobs from a CSV file, on workers with --broker; re-run to resume."""
    from deepfake_studio.service import batch as batch_jobs

    studio = _studio(data_dir)
    rows = batch_jobs.read_jobs(jobs, out, studio)
    out.mkdir(parents=True, exist_ok=True)
    done_already = sum(batch_jobs.finished(row) for row in rows)
    from tqdm import tqdm

    bar = tqdm(
        total=len(rows),
        initial=done_already,
        desc="batch",
        unit="job",
        file=sys.stderr,
        disable=None,
    )
    failures = 0

    def on_done(row: batch_jobs.BatchRow, error: str | None) -> None:
        nonlocal failures
        failures += error is not None
        bar.update(1)
        bar.set_postfix_str(f"{failures} failed", refresh=True)

    with bar:
        if broker:
            from deepfake_studio.service.distributed import Dispatcher

            dispatcher = Dispatcher(_queue_config(broker))
            warned = False

            def on_idle(seconds: float) -> None:
                nonlocal warned
                if seconds > 30 and not warned:
                    warned = True
                    if not dispatcher.workers():
                        bar.write(
                            "no worker answers on the broker: start one with "
                            "deepfake-studio worker --broker ... (waiting)",
                            file=sys.stderr,
                        )

            from deepfake_studio.service.distributed import check_broker

            check_broker(broker)
            try:
                report = batch_jobs.run_distributed(
                    studio, rows, dispatcher, on_done, on_idle=on_idle
                )
            finally:
                dispatcher.close()
        else:
            report = batch_jobs.run_local(studio, rows, on_done)
    typer.echo(report.summary())
    for row, error in report.failed:
        typer.echo(f"failed: line {row.line} {row.out.name}: {error}", err=True)
    if report.failed:
        raise typer.Exit(1)


@eval_app.command("clone")
def eval_clone(
    out: Annotated[Path, typer.Option("--out", "-o", help="Result JSON (a .md table beside it).")],
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="manifest.csv of held-out speakers (default: shared)."),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="train, dev, test, or all (every manifest speaker).")
    ] = "test",
    speakers: Annotated[int, typer.Option("--speakers", help="How many speakers.")] = 10,
    sentences: Annotated[int, typer.Option("--sentences", help="Sentences per speaker.")] = 2,
    corpora: Annotated[
        list[str] | None, typer.Option("--corpus", help="Only this corpus (repeatable).")
    ] = None,
    fit: Annotated[
        list[str] | None,
        typer.Option(
            "--fit", help="Override a FitConfig field of the search, e.g. --fit generations=1."
        ),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            help="Also enroll with this quality: standard or best (repeatable; minutes each).",
        ),
    ] = None,
    seed: Seed = 0,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore an earlier partial run.")] = False,
) -> None:
    """Clone held-out speakers (quick enrollment, and standard/best with --method); judge
    similarity (independent d-vector), WER and speed."""
    try:
        from deepfake_studio.evaluation.clone_eval import (
            METHODS,
            QUALITY_METHODS,
            CloneEvalConfig,
            report,
            run_clone_eval,
        )
    except ImportError as e:
        raise StudioError(f"the evaluation needs the [eval] extra ({e.name} is missing)") from None

    if set(method or []) - set(QUALITY_METHODS):
        raise StudioError(f"--method takes {' or '.join(QUALITY_METHODS)}")
    config = CloneEvalConfig(
        manifest=manifest,
        split=None if split == "all" else split,
        speakers=speakers,
        sentences=sentences,
        corpora=tuple(corpora) if corpora else None,
        seed=seed,
        fit=_fit_config(FitConfig(), fit or []),
        methods=(*METHODS, *(m for m in QUALITY_METHODS if m in set(method or []))),
    )
    data = run_clone_eval(config, out, fresh=fresh, progress=lambda msg: typer.echo(msg, err=True))
    typer.echo(report(data, config.methods))


@eval_app.command("emotion")
def eval_emotion(
    out: Annotated[Path, typer.Option("--out", "-o", help="Result JSON (a .md table beside it).")],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            envvar="DEEPFAKE_STUDIO_DATA",
            help="Shared data folder with emotion/ (EmoDB) and speech/ (default: ../shared/data).",
        ),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="manifest.csv of the voices' speakers (default: shared)."),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="train, dev, test, or all (every manifest speaker).")
    ] = "test",
    speakers: Annotated[int, typer.Option("--speakers", help="How many speakers.")] = 8,
    sentences: Annotated[int, typer.Option("--sentences", help="Sentences per emotion (2-3).")] = 2,
    strength: Annotated[float, typer.Option("--strength", help="Emotion strength.")] = 1.0,
    seed: Seed = 0,
) -> None:
    """Train a speaker-relative emotion classifier on real acted speech (leave-actors-out
    accuracy), then score quick clones of held-out speakers speaking each emotion."""
    try:
        from deepfake_studio.evaluation.emotion_eval import (
            EmotionEvalConfig,
            report,
            run_emotion_eval,
        )
    except ImportError as e:
        raise StudioError(f"the evaluation needs the [eval] extra ({e.name} is missing)") from None
    config = EmotionEvalConfig(
        data=data,
        manifest=manifest,
        split=None if split == "all" else split,
        speakers=speakers,
        sentences=sentences,
        strength=strength,
        seed=seed,
    )
    result = run_emotion_eval(config, out, progress=lambda msg: typer.echo(msg, err=True))
    typer.echo(report(result))


@eval_app.command("languages")
def eval_languages(
    out: Annotated[Path, typer.Option("--out", "-o", help="Result JSON (a .md table beside it).")],
    language: Annotated[
        list[str] | None,
        typer.Option("--language", help="Measure this language (repeatable; default: all)."),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="manifest.csv of English speakers (default: shared)."),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="train, dev, test, or all (every manifest speaker).")
    ] = "test",
    speakers: Annotated[int, typer.Option("--speakers", help="How many cloned speakers.")] = 3,
    sentences: Annotated[int, typer.Option("--sentences", help="Sentences per language, 1-6.")] = 2,
    quality: Annotated[
        str, typer.Option("--quality", help="Enrollment quality of the clones.")
    ] = "quick",
    pack: Annotated[str, typer.Option("--pack", help="Bundled Kokoro pack measured.")] = "jf_alpha",
    reference_pack: Annotated[
        list[str] | None,
        typer.Option(
            "--reference-pack",
            help="Pack whose Spanish speech is enrolled to speak English (repeatable; "
            "default jm_kumo and jf_nezumi; 'none' for none).",
        ),
    ] = None,
    german_speakers: Annotated[
        int,
        typer.Option("--german-speakers", help="EmoDB actors enrolled from German (0: none)."),
    ] = 2,
    emotion_data: Annotated[
        Path | None,
        typer.Option("--emotion-data", help="EmoDB folder (default: the shared data's emotion/)."),
    ] = None,
    seed: Seed = 0,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore an earlier partial run.")] = False,
) -> None:
    """Whisper-base WER/CER per language for a bundled pack and cloned voices, and the
    independent judge's speaker similarity of each clone across languages (both directions)."""
    try:
        from deepfake_studio.evaluation.language_eval import (
            LanguageEvalConfig,
            report,
            run_language_eval,
        )
    except ImportError as e:
        raise StudioError(f"the evaluation needs the [eval] extra ({e.name} is missing)") from None
    from deepfake_studio.synthesizer.languages import LANGUAGES

    packs = tuple(reference_pack) if reference_pack else ("jm_kumo", "jf_nezumi")
    config = LanguageEvalConfig(
        manifest=manifest,
        split=None if split == "all" else split,
        speakers=speakers,
        sentences=sentences,
        languages=tuple(language) if language else tuple(LANGUAGES),
        quality=quality,
        pack=pack,
        reference_packs=() if packs == ("none",) else packs,
        emotion_data=emotion_data,
        german_speakers=german_speakers,
        seed=seed,
    )
    data = run_language_eval(config, out, fresh=fresh, progress=lambda m: typer.echo(m, err=True))
    typer.echo(report(data))


def _fit_config(base: FitConfig, assignments: list[str]) -> FitConfig:
    """`base` with NAME=VALUE overrides, typed like the field's default."""
    from dataclasses import fields, replace

    kinds = {f.name: type(getattr(base, f.name)) for f in fields(base)}
    changes: dict[str, object] = {}
    for item in assignments:
        name, _, value = item.partition("=")
        if name not in kinds or not value:
            raise StudioError(f"--fit takes NAME=VALUE with NAME a FitConfig field, got {item!r}")
        kind = kinds[name]
        try:
            if kind is bool:
                changes[name] = value.lower() in ("1", "true", "yes")
            elif kind in (int, float):
                changes[name] = kind(value)
            elif kind is type(None):
                changes[name] = float(value)
            else:
                raise StudioError(f"--fit cannot set {name}")
        except ValueError:
            raise StudioError(f"--fit {name}: {value!r} is not a number") from None
    return replace(base, **changes)  # type: ignore[arg-type]


# --- training (issue 10): prepare a corpus, train a stage ---------------------------------------

train_app = typer.Typer(help="Train a pipeline stage on a folder made by 'prepare'.")
app.add_typer(train_app, name="train")

# model name → (module, function). Each is `train(options: TrainOptions, config: Path | None)
# -> Path` and writes RUN/<stage file> (see deepfake_studio.training).
TRAINERS: dict[str, dict[str, str]] = {
    "encoder": {"ge2e": "deepfake_studio.encoder.train"},
    "synthesizer": {
        "tacotron": "deepfake_studio.synthesizer.train_tacotron",
        "transformer": "deepfake_studio.synthesizer.train_transformer",
    },
    "vocoder": {
        "wavernn": "deepfake_studio.vocoder.train_wavernn",
        "hifigan": "deepfake_studio.vocoder.train_hifigan",
    },
}

# Steps per second measured on 2 Xeon cores at the default model sizes, with the batch size
# they were measured at (benchmarks/training/results.md). A step's cost grows about linearly
# with the batch, so an estimate scales by it; a GPU is one to two orders of magnitude faster.
MEASURED_TRAINING_SPEED: dict[str, tuple[float, int]] = {
    "ge2e": (0.257, 16),
    "tacotron": (0.024, 8),
    "wavernn": (0.049, 16),
    "transformer": (0.102, 8),
    "hifigan": (0.04, 4),
}


def training_estimate(model: str, steps: int, batch_size: int) -> str:
    """One line: how long `steps` steps of `model` take on a 2-core CPU, measured, not hoped."""
    rate, measured_batch = MEASURED_TRAINING_SPEED[model]
    seconds = steps / rate * batch_size / measured_batch
    line = (
        f"training {model} for {steps} steps at batch {batch_size}: about "
        f"{_duration(seconds)} on 2 CPU cores (measured {rate} steps/s at batch "
        f"{measured_batch})"
    )
    if seconds > 3600:
        line += "; a long run: --steps N for fewer, Ctrl-C stops it, --resume goes on"
    return line


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours < 48 else f"{hours / 24:.1f} days"


DataOption = Annotated[Path, typer.Option("--data", "-d", help="Folder made by 'prepare'.")]
RunOption = Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, logs).")]
StepsOption = Annotated[int, typer.Option("--steps", help="Total optimizer steps.")]
BatchOption = Annotated[int | None, typer.Option("--batch-size", help="Batch size.")]
RateOption = Annotated[float | None, typer.Option("--lr", help="Learning rate.")]
EveryOption = Annotated[
    int, typer.Option("--checkpoint-every", help="Save a checkpoint every N steps.")
]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the run.")]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="JSON file overriding the model config.")
]


def _train(
    stage: str,
    model: str,
    data: Path,
    out: Path,
    steps: int,
    batch_size: int | None,
    lr: float | None,
    checkpoint_every: int,
    resume: bool,
    seed: int,
    config: Path | None,
) -> None:
    import importlib

    from deepfake_studio.training.common import TrainOptions

    module_name = TRAINERS[stage].get(model)
    if module_name is None:
        raise StudioError(
            f"unknown {stage} model {model!r} (available: {', '.join(TRAINERS[stage])})"
        )
    if steps < 1 or checkpoint_every < 1:
        raise StudioError("--steps and --checkpoint-every must be at least 1")
    module = importlib.import_module(module_name)
    defaults = module.DEFAULT_OPTIONS  # per-model batch size and learning rate
    if data.is_dir():  # (a missing folder is the trainer's one-line error)
        typer.echo(training_estimate(model, steps, batch_size or defaults.batch_size), err=True)
    options = TrainOptions(
        data_dir=data,
        run_dir=out,
        steps=steps,
        batch_size=batch_size or defaults.batch_size,
        learning_rate=lr or defaults.learning_rate,
        checkpoint_every=checkpoint_every,
        resume=resume,
        seed=seed,
        progress=sys.stderr.isatty(),
    )
    saved = module.train(options, config)
    typer.echo(f"{saved}")


@train_app.command("encoder")
def train_encoder(
    data: DataOption,
    out: RunOption,
    steps: StepsOption = 1000,
    batch_size: BatchOption = None,
    lr: RateOption = None,
    checkpoint_every: EveryOption = 500,
    resume: ResumeOption = False,
    seed: SeedOption = 0,
    config: ConfigOption = None,
) -> None:
    """GE2E speaker encoder (speakers × utterances batches) → RUN/encoder.pt (RTVC layout)."""
    _train(
        "encoder", "ge2e", data, out, steps, batch_size, lr, checkpoint_every, resume, seed, config
    )


@train_app.command("synthesizer")
def train_synthesizer(
    data: DataOption,
    out: RunOption,
    model: Annotated[str, typer.Option("--model", help="tacotron or transformer.")] = "tacotron",
    steps: StepsOption = 1000,
    batch_size: BatchOption = None,
    lr: RateOption = None,
    checkpoint_every: EveryOption = 500,
    resume: ResumeOption = False,
    seed: SeedOption = 0,
    config: ConfigOption = None,
) -> None:
    """Tacotron (RUN/synthesizer.pt) or transformer TTS (RUN/transformer.pt)."""
    _train(
        "synthesizer",
        model,
        data,
        out,
        steps,
        batch_size,
        lr,
        checkpoint_every,
        resume,
        seed,
        config,
    )


@train_app.command("vocoder")
def train_vocoder(
    data: DataOption,
    out: RunOption,
    model: Annotated[str, typer.Option("--model", help="hifigan or wavernn.")] = "hifigan",
    steps: StepsOption = 1000,
    batch_size: BatchOption = None,
    lr: RateOption = None,
    checkpoint_every: EveryOption = 500,
    resume: ResumeOption = False,
    seed: SeedOption = 0,
    config: ConfigOption = None,
) -> None:
    """HiFi-GAN (RUN/hifigan.pt) or WaveRNN (RUN/vocoder.pt, RTVC layout)."""
    _train(
        "vocoder", model, data, out, steps, batch_size, lr, checkpoint_every, resume, seed, config
    )


@app.command()
def prepare(
    source: Annotated[
        Path, typer.Argument(help="A manifest.csv (path, speaker, text[, emotion]) or a folder.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the prepared data.")],
    sample_rate: Annotated[
        int | None,
        typer.Option(
            "--sample-rate", help="22050 (default: transformer, HiFi-GAN) or 16000 (RTVC)."
        ),
    ] = None,
    config: ConfigOption = None,
    workers: Annotated[int, typer.Option("--workers", help="Processes (0: every core).")] = 0,
) -> None:
    """Prepare a corpus for training: audio, mels, d-vectors, a speaker split (resumable)."""
    from deepfake_studio.training.prepare import prepare as run_prepare

    summary = run_prepare(source, out, sample_rate=sample_rate, config=config, workers=workers)
    typer.echo(summary)


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
