"""`train style-encoder`: learn the `quick` enrollment's style encoder from fitted voices.

    python -m deepfake_studio.synthesizer.kokoro.train_style_encoder collect style-targets
    python -m deepfake_studio.synthesizer.kokoro.train_style_encoder build style-targets out.npz

Step 1 runs the `standard` style fit (`reconstruct.py`, with the corpus transcript, so no
Whisper) on one reference per train speaker of `speaker_split.json` and stores, per speaker,
the reference (16 kHz), its start pack and the fitted style's delta from that pack. Each fit
takes one to two minutes on 2 cores, so step 1 keeps what it has made and picks up where it
stopped. Step 2 fits `style_encoder.StyleEncoder` to those deltas (see that module for the
model and why it is this small).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from deepfake_studio.audio import Audio, concatenate, load_audio, trim_silence
from deepfake_studio.errors import StudioError
from deepfake_studio.evaluation.speakers import Clip, load_manifest, split_speakers
from deepfake_studio.synthesizer.kokoro.fit import median_pitch
from deepfake_studio.synthesizer.kokoro.reconstruct import MALE_BELOW_SEMITONES, StyleFitConfig
from deepfake_studio.synthesizer.kokoro.style_encoder import StyleEncoder, StyleEncoderConfig

if TYPE_CHECKING:
    from deepfake_studio.encoder import SpeakerEncoder

log = logging.getLogger(__name__)

RATE = 16_000
# Corpora whose transcripts fit Kokoro's English front end; speechocean762 is English read by
# Mandarin speakers (accented, short clips), which the studio's users also enroll.
TARGET_CORPORA = ("librispeech", "vctk", "vcc2016", "ljspeech", "speechocean762")


@dataclass(frozen=True)
class TargetOptions:
    """Where and how step 1 fits the train speakers' styles."""

    out_dir: Path
    data: Path | None = None  # the shared data folder (None: ../shared/data)
    max_speakers: int = 0  # 0 = every train speaker of TARGET_CORPORA
    reference_seconds: float = 10.0  # clips of a speaker are joined up to about this long
    min_reference_seconds: float = 3.0
    steps: int = 30  # style-fit steps (the `standard` default)
    threads: int = 1
    shard: tuple[int, int] = (0, 1)  # (i, n): fit only every n-th speaker from the i-th


def training_reference(clips: list[Clip], seconds: float) -> tuple[Audio, str]:
    """A speaker's clips (path order, silence trimmed) joined up to about `seconds`, with the
    text they speak. A single clip longer than that is kept whole: its transcript covers it."""
    parts: list[Audio] = []
    texts: list[str] = []
    for clip in sorted(clips, key=lambda c: str(c.path)):
        audio = trim_silence(load_audio(clip.path, RATE))
        if parts and sum(p.duration for p in parts) + audio.duration > seconds:
            break
        parts.append(audio)
        texts.append(clip.text.strip())
    return concatenate(parts, 0.2), " ".join(texts)


def collect_targets(options: TargetOptions) -> int:
    """Fit and store the styles of the train speakers not yet in `out_dir`; returns how many
    targets the folder holds afterwards."""
    from deepfake_studio.synthesizer.kokoro.engine import KokoroConfig, KokoroEngine

    torch.set_num_threads(options.threads)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    clips = load_manifest(options.data)
    by_speaker: dict[str, list[Clip]] = {}
    for clip in clips:
        by_speaker.setdefault(clip.speaker, []).append(clip)
    speakers = [s for _, s in split_speakers("train", TARGET_CORPORA) if s in by_speaker]
    if options.max_speakers:
        speakers = speakers[: options.max_speakers]
    index, count = options.shard
    speakers = speakers[index::count]  # parallel collectors each take their own speakers
    engine = KokoroEngine(
        KokoroConfig(threads=options.threads, style_fit=StyleFitConfig(steps=options.steps))
    )
    for speaker in speakers:
        target = options.out_dir / f"{speaker}.npz"
        if target.exists():
            continue
        reference, text = training_reference(by_speaker[speaker], options.reference_seconds)
        if reference.duration < options.min_reference_seconds or not text:
            log.info("%s: too little audio (%.1f s), skipped", speaker, reference.duration)
            continue
        started = time.monotonic()
        try:
            result = engine.fit_style([(reference, text)])
        except StudioError as exc:  # e.g. a transcript Kokoro cannot read
            log.warning("%s: not fitted (%s)", speaker, exc)
            continue
        partial = target.with_suffix(".part.npz")  # a stopped run leaves no half target
        np.savez(
            partial,
            reference=reference.samples.astype(np.float16),
            start_pack=np.array(result.start_pack),
            start_row=result.start_row.astype(np.float32),
            delta=(result.style - result.start_row).astype(np.float32),
            losses=np.asarray(result.losses, np.float32),
            info=np.array(json.dumps({"speaker": speaker, "text": text})),
        )
        partial.replace(target)
        log.info(
            "%s: fitted in %.0f s (%s, %.1f s of reference)",
            speaker,
            time.monotonic() - started,
            result.start_pack,
            reference.duration,
        )
    return len(target_files(options.out_dir))


def target_files(targets_dir: Path) -> list[Path]:
    """The finished targets of a folder (a stopped fit leaves only a `.part.npz`)."""
    return sorted(p for p in targets_dir.glob("*.npz") if not p.name.endswith(".part.npz"))


def build_encoder(
    targets_dir: Path,
    encoder: SpeakerEncoder,
    packs: dict[str, np.ndarray],
    config: StyleEncoderConfig | None = None,
) -> StyleEncoder:
    """The style encoder of the fitted voices in `targets_dir` (step 2; seconds)."""
    speakers, embeddings, male, styles, rows = [], [], [], [], []
    for path in target_files(targets_dir):
        with np.load(path) as data:
            reference = data["reference"].astype(np.float32)
            start_row = data["start_row"]
            pack = packs[str(data["start_pack"])]
            style = start_row + data["delta"]
        pitch = median_pitch(reference, RATE)
        speakers.append(path.stem)
        embeddings.append(encoder.embed(reference, RATE))
        male.append(pitch is not None and pitch < MALE_BELOW_SEMITONES)
        styles.append(style)
        rows.append(int(np.argmin(np.abs(pack - start_row[None]).sum(1))))  # the row it was fit at
    if not speakers:
        raise StudioError(f"no fitted voices in {targets_dir}: run the target collection first")
    return StyleEncoder(
        speakers=np.array(speakers),
        embeddings=np.array(embeddings, np.float32),
        male=np.array(male),
        styles=np.array(styles, np.float32),
        rows=np.array(rows),
        config=config or StyleEncoderConfig(),
    )


def main(argv: list[str]) -> None:
    """`collect OUT_DIR [MAX_SPEAKERS] [I/N]` (step 1; I/N: this collector's share when N run
    side by side) or `build TARGETS_DIR OUT.npz` (step 2)."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if len(argv) >= 2 and argv[0] == "collect":
        limit = int(argv[2]) if len(argv) > 2 else 0
        index, _, collectors = (argv[3] if len(argv) > 3 else "0/1").partition("/")
        options = TargetOptions(
            out_dir=Path(argv[1]), max_speakers=limit, shard=(int(index), int(collectors))
        )
        count = collect_targets(options)
        print(f"{count} fitted train voices in {argv[1]}")
    elif len(argv) == 3 and argv[0] == "build":
        from deepfake_studio.encoder import get_speaker_encoder
        from deepfake_studio.synthesizer.kokoro.engine import load_style_packs

        encoder = build_encoder(Path(argv[1]), get_speaker_encoder(), load_style_packs())
        encoder.save(Path(argv[2]))
        print(f"{argv[2]}: {len(encoder.speakers)} voices ({int(encoder.male.sum())} male)")
    else:
        sys.exit(
            "usage: train_style_encoder collect OUT_DIR [MAX_SPEAKERS] [I/N] | build DIR OUT.npz"
        )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
