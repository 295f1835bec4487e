"""`deepfake-studio prepare`: a speech corpus → the prepared folder every trainer reads.

    prepare(Path("corpus/manifest.csv"), Path("data-22k"))          # 22.05 kHz, HiFi-GAN mels
    prepare(Path("corpus/"), Path("data-16k"), sample_rate=16_000)   # RTVC's format

The corpus is a manifest (CSV with `path, speaker, text` and optionally `emotion`; other
columns are ignored; relative paths are relative to the manifest) or a folder
`SRC/SPEAKER/UTTERANCE.wav` (any readable audio type) with the transcript in
`UTTERANCE.txt` or `UTTERANCE.lab` beside it.

Each utterance is loaded as mono, checked for speech, trimmed, loudness-normalised,
resampled, and turned into a mel (`AudioConfig`) and a GE2E d-vector; the speakers are split
into train / val / test so that no speaker is in two splits. The layout written is described
in `deepfake_studio.training`. Work is spread over processes (one encoder each) and is
resumable: an utterance whose three arrays exist is not redone, and every file is written
atomically, so an interrupted run leaves no half files. Files that cannot be used are listed
in `skipped.csv` with the reason.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from deepfake_studio.configs import config_dict, config_from_dict
from deepfake_studio.errors import AudioError
from deepfake_studio.synthesizer.tacotron import AudioConfig, audio_preset
from deepfake_studio.text import plural
from deepfake_studio.training.common import TrainingError, load_config
from deepfake_studio.training.dataset import EMOTIONS, METADATA_COLUMNS, SPLITS

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".webm")
TRANSCRIPT_SUFFIXES = (".txt", ".lab")


@dataclass(frozen=True)
class PrepareConfig:
    """How a corpus is prepared. `audio=None` takes the preset of `sample_rate`."""

    sample_rate: int = 22_050
    audio: AudioConfig | None = None
    loudness_lufs: float = -20.0
    trim_keep_ms: int = 100  # silence kept around the speech
    min_seconds: float = 0.5  # after trimming
    max_seconds: float = 20.0
    min_speech_fraction: float = 0.1  # less detected speech than this: "silence or noise"
    val_fraction: float = 0.1  # of the speakers
    test_fraction: float = 0.1
    seed: int = 0  # the speaker split
    encoder: str | None = None  # an encoder.pt (e.g. from `train encoder`); None: bundled GE2E
    max_speakers: int | None = None
    max_per_speaker: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.audio, dict):  # from a JSON config file
            object.__setattr__(self, "audio", config_from_dict(AudioConfig, self.audio))

    @property
    def mel(self) -> AudioConfig:
        return self.audio or audio_preset(self.sample_rate)


@dataclass(frozen=True)
class Item:
    """One utterance of the source corpus."""

    source: str
    speaker: str
    text: str
    emotion: str
    id: str = ""


@dataclass
class Outcome:
    item: Item
    row: list[object] | None = None  # METADATA_COLUMNS values when used
    reason: str = ""  # why it was skipped
    reused: bool = False  # found complete on disk (resume)
    seconds: float = 0.0


@dataclass
class Summary:
    out: Path
    rows: dict[str, list[list[object]]]
    skipped: Counter[str] = field(default_factory=Counter)
    reused: int = 0
    hours: float = 0.0

    def __str__(self) -> str:
        parts = []
        for split in SPLITS:
            speakers = len({row[1] for row in self.rows[split]})
            utterances = plural(len(self.rows[split]), "utterance")
            parts.append(f"{split} {utterances} / {plural(speakers, 'speaker')}")
        skipped = sum(self.skipped.values())
        why = "; ".join(f"{reason}: {n}" for reason, n in self.skipped.most_common())
        return (
            f"{self.out}: {', '.join(parts)}; {self.hours:.2f} h of speech; "
            f"{self.reused} already prepared; skipped {skipped}" + (f" ({why})" if why else "")
        )


def prepare(
    source: Path,
    out: Path,
    *,
    sample_rate: int | None = None,
    config: Path | PrepareConfig | None = None,
    workers: int = 0,
    progress: bool | None = None,
) -> Summary:
    """Prepare `source` (manifest or folder) into `out`; see the module docstring."""
    given = isinstance(config, PrepareConfig)
    settings = config if given else load_config(PrepareConfig, config)  # type: ignore[arg-type]
    if sample_rate is not None:
        settings = replace(settings, sample_rate=sample_rate)
    if not 8_000 <= settings.sample_rate <= 48_000:
        raise TrainingError(f"--sample-rate {settings.sample_rate}: use 8000-48000 Hz")
    items, early_skips = read_corpus(Path(source))
    items = limit(items, settings)
    if not items:
        raise TrainingError(f"{source}: no usable utterances (skipped {len(early_skips)})")
    out = Path(out)
    check_previous(out, settings)
    for sub in ("audio", "mels", "embeds"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    outcomes = [Outcome(item=i, reason=reason) for i, reason in early_skips]
    outcomes += run_all(items, out, settings, workers, progress)
    return finish(out, outcomes, settings)


def check_previous(out: Path, settings: PrepareConfig) -> None:
    """Resuming into a folder prepared with another mel format would mix two formats."""
    info_path = out / "prepare.json"
    if not info_path.is_file():
        return
    previous = json.loads(info_path.read_text()).get("audio")
    if previous != config_dict(settings.mel):
        raise TrainingError(
            f"{out} was prepared with another mel format (sample rate "
            f"{(previous or {}).get('sample_rate')}); use a new --out"
        )


# --- reading the corpus ----------------------------------------------------------------------


def read_corpus(source: Path) -> tuple[list[Item], list[tuple[Item, str]]]:
    """(usable items with unique ids, items skipped before loading with the reason)."""
    if not source.exists():
        raise TrainingError(f"corpus not found: {source}")
    raw = read_folder(source) if source.is_dir() else read_manifest(source)
    items, skipped, seen = [], [], Counter[str]()
    for item in raw:
        if not item.text.strip():
            skipped.append((item, "no transcript or empty text"))
            continue
        if item.emotion not in EMOTIONS:
            skipped.append((item, f"unknown emotion {item.emotion!r}"))
            continue
        base = safe_id(f"{item.speaker}_{Path(item.source).stem}")
        seen[base] += 1
        uid = base if seen[base] == 1 else f"{base}_{seen[base]}"
        items.append(replace(item, id=uid))
    return items, skipped


def read_manifest(path: Path) -> list[Item]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"path", "speaker", "text"} - set(reader.fieldnames or ())
            if missing:
                raise TrainingError(
                    f"manifest {path} lacks the column(s) {', '.join(sorted(missing))} "
                    "(needs path, speaker, text; optional emotion)"
                )
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TrainingError(f"cannot read manifest {path}: {exc}") from exc
    base = path.parent
    return [
        Item(
            source=str(base / row["path"]),
            speaker=(row["speaker"] or "").strip(),
            text=(row["text"] or "").strip(),
            emotion=(row.get("emotion") or "neutral").strip().lower(),
        )
        for row in rows
    ]


def read_folder(root: Path) -> list[Item]:
    """SRC/SPEAKER/UTT.<audio> with UTT.txt or UTT.lab beside it."""
    items = []
    for speaker_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for audio in sorted(speaker_dir.iterdir()):
            if audio.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            text = ""
            for suffix in TRANSCRIPT_SUFFIXES:
                transcript = audio.with_suffix(suffix)
                if transcript.is_file():
                    text = transcript.read_text(encoding="utf-8", errors="replace").strip()
                    break
            items.append(Item(str(audio), speaker_dir.name, text, "neutral"))
    if not items:
        raise TrainingError(f"{root}: no SPEAKER/UTTERANCE audio files found")
    return items


def limit(items: list[Item], settings: PrepareConfig) -> list[Item]:
    """At most max_speakers speakers (first by name) and max_per_speaker utterances each."""
    by_speaker: dict[str, list[Item]] = {}
    for item in items:
        by_speaker.setdefault(item.speaker, []).append(item)
    speakers = sorted(by_speaker)[: settings.max_speakers]
    return [i for s in speakers for i in by_speaker[s][: settings.max_per_speaker]]


def safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "utt"


# --- processing ------------------------------------------------------------------------------


def run_all(
    items: list[Item], out: Path, settings: PrepareConfig, workers: int, progress: bool | None
) -> list[Outcome]:
    from tqdm import tqdm

    workers = workers or len(os.sched_getaffinity(0))
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=len(items), desc="prepare", file=sys.stderr, disable=not show)
    outcomes = []
    with bar:
        if workers == 1:
            import torch

            threads = torch.get_num_threads()
            try:
                worker = Worker(out, settings)  # sets 1 thread: restored below
                for item in items:
                    outcomes.append(worker(item))
                    bar.update()
            finally:
                torch.set_num_threads(threads)
        else:
            import multiprocessing

            context = multiprocessing.get_context("spawn")  # no torch state forked into children
            with context.Pool(workers, initializer=_init_worker, initargs=(out, settings)) as pool:
                for outcome in pool.imap_unordered(_work, items, chunksize=4):
                    outcomes.append(outcome)
                    bar.update()
    return outcomes


class Worker:
    """Prepares one utterance at a time; holds the encoder (loaded once per process)."""

    def __init__(self, out: Path, settings: PrepareConfig) -> None:
        import torch

        from deepfake_studio.encoder import EncoderWeightsError, SpeakerEncoder

        torch.set_num_threads(1)  # processes, not threads, use the cores
        self.out, self.settings = out, settings
        try:
            self.encoder = SpeakerEncoder(Path(settings.encoder) if settings.encoder else None)
        except EncoderWeightsError as exc:
            raise TrainingError(str(exc)) from exc

    def __call__(self, item: Item) -> Outcome:
        paths = [self.out / sub / f"{item.id}.npy" for sub in ("audio", "mels", "embeds")]
        if all(p.exists() for p in paths):
            wav = np.load(paths[0], mmap_mode="r")
            mel = np.load(paths[1], mmap_mode="r")
            row = [item.id, item.speaker, item.text, item.emotion, len(wav), mel.shape[1]]
            return Outcome(item, row, reused=True, seconds=len(wav) / self.settings.sample_rate)
        try:
            wav, embedding = self.load(item)
        except AudioError as exc:
            return Outcome(item, reason=f"unreadable audio ({_short(exc)})")
        except UnusableError as skip:
            return Outcome(item, reason=str(skip))
        mel = melspectrogram_of(wav, self.settings.mel)
        for path, array in zip(paths, (wav, mel, embedding), strict=True):
            _save_atomic(path, array)  # the d-vector last: its presence marks the item done
        row = [item.id, item.speaker, item.text, item.emotion, len(wav), mel.shape[1]]
        return Outcome(item, row, seconds=len(wav) / self.settings.sample_rate)

    def load(self, item: Item) -> tuple[np.ndarray, np.ndarray]:
        from deepfake_studio.audio import (
            load_audio,
            normalize_loudness,
            resample,
            speech_seconds,
            trim_silence,
        )

        s = self.settings
        audio = load_audio(item.source)
        # A DC offset (one LibriSpeech file here has -0.26) hides the speech from the VAD.
        audio = audio.with_samples(audio.samples - np.mean(audio.samples))
        if (
            speech_seconds(audio) < s.min_speech_fraction * audio.duration
            or not audio.samples.any()
        ):
            raise UnusableError("silence or noise (no speech detected)")
        audio = normalize_loudness(trim_silence(audio, s.trim_keep_ms), s.loudness_lufs)
        if audio.duration < s.min_seconds:
            raise UnusableError(f"too short (< {s.min_seconds:g} s of speech)")
        if audio.duration > s.max_seconds:
            raise UnusableError(f"too long (> {s.max_seconds:g} s)")
        embedding = self.encoder.embed(audio.samples, audio.sample_rate).astype(np.float32)
        wav = resample(audio, s.sample_rate).samples.astype(np.float32)
        return wav, embedding


def melspectrogram_of(wav: np.ndarray, audio: AudioConfig) -> np.ndarray:
    from deepfake_studio.vocoder.audio import melspectrogram

    return melspectrogram(wav, audio).astype(np.float32)


class UnusableError(Exception):
    """An utterance that is readable but unusable (the message is the reason)."""


_WORKER: list[Worker] = []  # the one Worker of a pool process (set by _init_worker)


def _init_worker(out: Path, settings: PrepareConfig) -> None:
    _WORKER.append(Worker(out, settings))


def _work(item: Item) -> Outcome:
    return _WORKER[0](item)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(": ", 1)[-1][:120]


# --- the split and the metadata --------------------------------------------------------------


def split_speakers(speakers: list[str], settings: PrepareConfig) -> dict[str, str]:
    """Speaker → split. Seeded; val and test get at least one speaker each when there are 3+."""
    if len(speakers) < 3:
        raise TrainingError(
            f"the corpus has {len(speakers)} usable speaker(s); splitting train/val/test by "
            "speaker needs at least 3"
        )
    order = sorted(speakers)
    np.random.default_rng(settings.seed).shuffle(order)
    n = len(order)
    n_val = max(1, round(n * settings.val_fraction))
    n_test = max(1, round(n * settings.test_fraction))
    if n_val + n_test >= n:
        n_val = n_test = 1
    split = {s: "val" for s in order[:n_val]}
    split |= {s: "test" for s in order[n_val : n_val + n_test]}
    return split | {s: "train" for s in order[n_val + n_test :]}


def finish(out: Path, outcomes: list[Outcome], settings: PrepareConfig) -> Summary:
    used = sorted((o for o in outcomes if o.row), key=lambda o: o.item.id)
    split_of = split_speakers(sorted({o.item.speaker for o in used}), settings)
    rows: dict[str, list[list[object]]] = {split: [] for split in SPLITS}
    for outcome in used:
        rows[split_of[outcome.item.speaker]].append(outcome.row)  # type: ignore[arg-type]
    for split in SPLITS:
        _write_csv(out / f"{split}.csv", METADATA_COLUMNS, rows[split])
    skipped = sorted((o for o in outcomes if not o.row), key=lambda o: o.item.source)
    _write_csv(
        out / "skipped.csv", ("source", "reason"), [[o.item.source, o.reason] for o in skipped]
    )

    summary = Summary(
        out=out,
        rows=rows,
        skipped=Counter(o.reason.split(" (")[0] for o in skipped),
        reused=sum(o.reused for o in used),
        hours=sum(o.seconds for o in used) / 3600,
    )
    info = {
        "config": config_dict(settings),
        "audio": config_dict(settings.mel),
        "encoder": settings.encoder or "bundled (resemblyzer pretrained GE2E)",
        "splits": {split: sorted({str(r[1]) for r in rows[split]}) for split in SPLITS},
        "utterances": {split: len(rows[split]) for split in SPLITS},
        "hours": round(summary.hours, 4),
        "skipped": dict(summary.skipped),
    }
    tmp = out / ".prepare.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, out / "prepare.json")
    return summary


def _write_csv(path: Path, header: tuple[str, ...], rows: list[list[object]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)
