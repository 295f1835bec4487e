"""Evaluation speakers: a fixed train/dev/test split of the shared speech data, and per speaker
a reference recording (what a user would enroll) plus a different real recording of the same
speaker (the "ground truth" a clone is compared with).

The split lives in `speaker_split.json` next to this module (speaker ids only, no audio); it
was made by `make_split` and must not change once results are reported on it. Tune on `dev`,
report on `test`; `train` is for anything that learns from data.

The audio is the read-only shared corpus (`../shared/data` from the project root, or
`$DEEPFAKE_STUDIO_DATA`); nothing here is needed at run time by the studio itself.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepfake_studio.audio import Audio, concatenate, load_audio, trim_silence
from deepfake_studio.errors import StudioError

SPLIT_FILE = Path(__file__).with_name("speaker_split.json")
RATE = 16_000
# Native English read speech: the corpora that matter most for tuning a voice cloner.
ENGLISH_NATIVE = ("vctk", "librispeech", "vcc2016", "ljspeech")

REF_MIN_S, REF_MAX_S = 5.0, 10.0  # length of the reference part
REF_USABLE_S = 3.5  # a shorter reference (after trimming) is not a fair enrollment
TRUTH_MIN_S = 2.5  # shortest usable ground-truth part
CUT_SEARCH_S = 1.0  # look this far around the target cut for the quietest moment


@dataclass(frozen=True)
class Clip:
    """One row of the manifest."""

    path: Path
    corpus: str
    speaker: str
    text: str
    duration: float


@dataclass(frozen=True)
class SpeakerCase:
    """A speaker's reference and ground-truth recordings (16 kHz, silence trimmed)."""

    speaker: str
    corpus: str
    reference: Audio
    ground_truth: Audio
    how: str  # "time-split" (one clip cut in two) or "separate clips"


def data_root(root: str | Path | None = None) -> Path:
    """The shared data folder: argument, else $DEEPFAKE_STUDIO_DATA, else ../shared/data."""
    if root is not None:
        return Path(root)
    if env := os.environ.get("DEEPFAKE_STUDIO_DATA"):
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def load_manifest(source: str | Path | None = None) -> list[Clip]:
    """All clips of a manifest, paths made absolute (relative ones are to its folder).

    `source`: a manifest .csv (columns path, corpus, speaker, text, duration_s), or a data
    folder holding `speech/manifest.csv`, or None for the shared data.
    """
    path = Path(source) if source is not None else None
    if path is None or path.suffix.lower() != ".csv":
        path = data_root(source) / "speech" / "manifest.csv"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise StudioError(f"cannot read the manifest {path}: {exc.strerror or exc}") from None
    missing = {"path", "corpus", "speaker", "text"} - set(rows[0] if rows else ())
    if missing:
        raise StudioError(f"the manifest {path} lacks the column(s) {', '.join(sorted(missing))}")
    return [
        Clip(
            path.parent / r["path"],
            r["corpus"],
            r["speaker"],
            r["text"],
            float(r.get("duration_s") or 0.0),
        )
        for r in rows
    ]


def make_split(
    clips: list[Clip], ratios: tuple[float, float, float] = (0.70, 0.15, 0.15)
) -> dict[str, dict[str, list[str]]]:
    """Disjoint train/dev/test speakers, stratified by corpus, ordered by a hash of the id.

    Hashing (not a random generator) keeps the assignment stable if speakers are added.
    Corpora with fewer than 3 speakers go to train whole.
    """
    by_corpus: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        by_corpus[clip.corpus].add(clip.speaker)
    splits: dict[str, dict[str, list[str]]] = {"train": {}, "dev": {}, "test": {}}
    for corpus, speakers in sorted(by_corpus.items()):
        order = sorted(speakers, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
        n = len(order)
        n_dev = max(1, round(ratios[1] * n)) if n >= 3 else 0
        n_test = max(1, round(ratios[2] * n)) if n >= 3 else 0
        n_train = n - n_dev - n_test
        parts = {
            "train": order[:n_train],
            "dev": order[n_train : n_train + n_dev],
            "test": order[n_train + n_dev :],
        }
        for name, members in parts.items():
            splits[name][corpus] = sorted(members)
    return splits


def write_split(root: str | Path | None = None, path: Path = SPLIT_FILE) -> None:
    """(Re)create the split file from the manifest. Only for a new data set."""
    split = {
        "about": "Speaker ids of ../shared/data/speech/manifest.csv, disjoint per split, "
        "stratified by corpus (70/15/15, sha256 order; corpora under 3 speakers: train).",
        "splits": make_split(load_manifest(root)),
    }
    path.write_text(json.dumps(split, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def split_speakers(split: str, corpora: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """(corpus, speaker) of a split, English-native corpora first, corpora interleaved.

    Interleaving means the first N speakers cover every corpus, so a quick run with a small
    N still sees varied voices.
    """
    table = json.loads(SPLIT_FILE.read_text(encoding="utf-8"))["splits"][split]
    wanted = corpora or (*ENGLISH_NATIVE, *sorted(set(table) - set(ENGLISH_NATIVE)))
    queues = [[(c, s) for s in table.get(c, [])] for c in wanted]
    out: list[tuple[str, str]] = []
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


def speaker_case(speaker: str, clips: list[Clip]) -> SpeakerCase | None:
    """Reference (5–10 s) and ground truth for one speaker; None if there is too little audio.

    One clip: cut it at the quietest moment near the target length, first part the
    reference, the rest ground truth. Several clips: the first clips (by path) make the
    reference, the others the ground truth.
    """
    own = sorted((c for c in clips if c.speaker == speaker), key=lambda c: str(c.path))
    if not own:
        raise KeyError(f"unknown speaker {speaker!r}")
    if len(own) == 1:
        audio = trim_silence(load_audio(own[0].path, RATE))
        cut = _quiet_cut(audio, _reference_length(audio.duration))
        if cut is None:
            return None
        ref = trim_silence(audio.with_samples(audio.samples[:cut]))
        truth = trim_silence(audio.with_samples(audio.samples[cut:]))
        return _checked(SpeakerCase(speaker, own[0].corpus, ref, truth, "time-split"))
    pieces = [trim_silence(load_audio(c.path, RATE)) for c in own]
    ref_parts: list[Audio] = []
    while pieces and (not ref_parts or _total(ref_parts) < REF_MIN_S):
        if ref_parts and _total(ref_parts) + pieces[0].duration > REF_MAX_S:
            break
        ref_parts.append(pieces.pop(0))
    truth_parts: list[Audio] = []
    while pieces and _total(truth_parts) < REF_MIN_S:
        truth_parts.append(pieces.pop(0))
    if not truth_parts:
        return None
    ref, truth = concatenate(ref_parts, 0.2), concatenate(truth_parts, 0.2)
    return _checked(SpeakerCase(speaker, own[0].corpus, ref, truth, "separate clips"))


def _checked(case: SpeakerCase) -> SpeakerCase | None:
    """The case, unless trimming left too little audio on either side."""
    if case.reference.duration < REF_USABLE_S or case.ground_truth.duration < TRUTH_MIN_S:
        return None
    return case


def _total(parts: list[Audio]) -> float:
    return sum(p.duration for p in parts)


def _reference_length(duration: float) -> float:
    """Target reference length for a time-split clip: about 55 %, within 5–10 s when possible."""
    return min(REF_MAX_S, max(REF_MIN_S, 0.55 * duration), duration - TRUTH_MIN_S)


def _quiet_cut(audio: Audio, target_s: float) -> int | None:
    """Sample index of the quietest 30 ms frame within ±1 s of `target_s` (a word gap)."""
    if target_s < 3.0:
        return None
    frame = int(0.03 * audio.sample_rate)
    lo = max(int((target_s - CUT_SEARCH_S) * audio.sample_rate), 3 * audio.sample_rate)
    hi = min(
        int((target_s + CUT_SEARCH_S) * audio.sample_rate),
        len(audio.samples) - int(TRUTH_MIN_S * audio.sample_rate),
    )
    if hi - lo < frame:
        return None
    starts = np.arange(lo, hi - frame, frame // 2)
    energy = [float(np.mean(audio.samples[s : s + frame] ** 2)) for s in starts]
    return int(starts[int(np.argmin(energy))] + frame // 2)
