"""Build the detector's data set: real clips and spoofs by generator, plus augmented copies.

    OUT/config.json       the DataConfig the set was built with (a resume must match it)
    OUT/manifest.jsonl    one row per clip: id, path, split, label, generator, voice, augment, …
    OUT/clips/SPLIT/GENERATOR/NAME.flac   16 kHz mono, `clip_seconds` long
    OUT/studio/           the Studio data dir holding the clone voices enrolled for the set

Real speech ("bonafide") comes from the shared corpus, split by speaker with the project's
split (`evaluation/speaker_split.json`): a spoof in the test split is made from test speakers
only (their transcripts, their recordings for copy-synthesis, their voices for clones), so no
speaker or sentence crosses from training to test.

The job list is a pure function of the config and the corpus, and every clip draws from its own
seeded random generator, so a rebuild makes the same set. Clips are written one at a time and
their manifest row appended after the audio is on disk: an interrupted build resumes where it
stopped (rows already present are skipped).

Every clip, real or not, is treated the same way: resampled to 16 kHz, silence trimmed at both
ends (else "has leading silence" would be a shortcut), loudness normalised, then cut (or, if
short, tiled) to `clip_seconds` at a random offset.
"""

from __future__ import annotations

import csv
import json
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deepfake_studio import audio as audio_io
from deepfake_studio.audio import Audio
from deepfake_studio.detector.augment import (
    DEFAULT_AUGMENTATIONS,
    DEFAULT_CODECS,
    augment,
    check_choices,
)
from deepfake_studio.detector.features import SAMPLE_RATE
from deepfake_studio.detector.generators import (
    ESPEAK_VOICES,
    FESTIVAL_VOICES,
    FLITE_VOICES,
    KOKORO_RECIPES_PER_SPLIT,
    Generator,
    GeneratorError,
    Request,
)
from deepfake_studio.errors import StudioError
from deepfake_studio.studio import enrollment_quality
from deepfake_studio.synthesizer.kokoro.engine import QUALITIES

SPLITS = ("train", "dev", "test")
SPLIT_SHARES = {"train": 0.70, "dev": 0.15, "test": 0.15}
BONA_FIDE = "bonafide"
GENERATORS = (
    "kokoro-clone",
    "piper",
    "kokoro",
    "espeak-ng",
    "flite",
    "festival",
    "world",
    "griffin-lim",
)
# Built only when asked (`--generators`): not in the shipped model's data.
# `kokoro-clone-QUALITY`: studio clones enrolled at that quality, of their own (more) speakers
# (`DataConfig.quality_clone_voices`), so a build holds the clones of today's studio at every
# quality a user picks, whatever `clone_quality` the older `kokoro-clone` was made with.
# `hifigan-resynth`: real clips resynthesised by a HiFi-GAN checkpoint the build names
# (`DataConfig.hifigan_checkpoint`), so a build records which vocoder made them.
CLONE_PREFIX = "kokoro-clone-"
HIFIGAN = "hifigan-resynth"
OPTIONAL_GENERATORS = ("kokoro-varied", *(CLONE_PREFIX + q for q in QUALITIES), HIFIGAN)
CLIP_LUFS = -23.0
MAX_TEXT_WORDS = 13  # about 4-5 s of speech: enough to cut a 4 s clip from
MIN_TEXT_WORDS = 8  # shorter transcripts are joined with the next one
CHILD_MAX_AGE = 12  # speechocean762 speakers this old or younger are "children"


@dataclass(frozen=True)
class DataConfig:
    """What `build` makes. The defaults built the shipped model's data (see the model card)."""

    generators: tuple[str, ...] = GENERATORS
    spoofs_per_generator: int = 43  # split 70/15/15 over train/dev/test
    crops_per_recording: int = 1  # real clips cut from one recording (if it is long enough)
    max_bona_fide: int | None = 519  # cap on real clips (None: every recording of the split)
    clip_seconds: float = 4.0
    augmented_copies: int = 1  # per clean clip, each with its own random augmentation chain
    # What the augmented copies (of real and synthetic clips alike) draw from (augment.py);
    # e.g. codecs ("mp3", "opus", "aac") and augmentations + ("resample",) for more channels.
    augmentations: tuple[str, ...] = DEFAULT_AUGMENTATIONS
    codecs: tuple[str, ...] = DEFAULT_CODECS
    clone_voices: dict[str, int] = field(
        default_factory=lambda: {"train": 2, "dev": 1, "test": 1}
    )  # real speakers per split enrolled as studio voices (kokoro-clone and piper)
    # The kokoro-clone voices' enrollment quality: stated, so that a change of the studio's
    # default does not silently change what a rebuild makes (builds before this field was
    # recorded used the default of their day: the search, `quick`, until session 11).
    clone_quality: str = "standard"
    # Speakers per split enrolled for each `kokoro-clone-QUALITY` generator. More than
    # `clone_voices`: the detector must learn fitted voices in general, not four of them
    # (quick enrolls in ~10 s, so many; standard costs minutes per speaker, so a few).
    quality_clone_voices: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            "quick": {"train": 16, "dev": 4, "test": 8},
            "standard": {"train": 4, "dev": 1, "test": 2},
            "best": {"train": 2, "dev": 1, "test": 1},
        }
    )
    # Synthetic clips per generator where it differs from `spoofs_per_generator` (e.g. more
    # clips of the studio's own clones, whose test catch rate is the first thing a user checks).
    spoofs_by_generator: dict[str, int] = field(default_factory=dict)
    watermark_fraction: float = 0.5  # share of studio-clone clips that carry the watermark
    # RUN/hifigan.pt (`train vocoder --model hifigan`) that `hifigan-resynth` vocodes with;
    # needed only by that generator. Stored as given: a rebuild elsewhere names its own copy.
    hifigan_checkpoint: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class Job:
    """One clean clip to make (its augmented copies come with it)."""

    id: str
    split: str
    generator: str  # BONA_FIDE for real speech
    voice: str
    source: str  # manifest path of the real recording used (text, audio or speaker)
    text: str
    seed: int

    @property
    def label(self) -> str:
        return "bonafide" if self.generator == BONA_FIDE else "spoof"


def _seed(*parts: object) -> int:
    """A stable 32-bit seed from any parts (Python's hash() changes between processes)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def _words(text: str) -> list[str]:
    words = text.split()
    if words and text.isupper():  # some corpora transcribe in capitals; TTS reads them as letters
        words = [w.lower() for w in words]
    return words


def plan(config: DataConfig, clips: list, split_of: dict[str, str]) -> list[Job]:
    """Every job of a build, generators interleaved in proportion (so a partly built set is
    already a fair sample of the whole, e.g. for a first training run).

    `clips` are `evaluation.speakers.Clip` rows; `split_of` maps speaker → split.
    """
    by_split = {s: [c for c in clips if split_of.get(c.speaker) == s] for s in SPLITS}
    jobs: list[Job] = []
    for split in SPLITS:
        real: list[Job] = []
        for clip in by_split[split]:
            crops = min(
                config.crops_per_recording, max(1, int(clip.duration // config.clip_seconds))
            )
            stem = Path(clip.path).stem
            for k in range(crops):
                real.append(
                    Job(
                        f"{split}/{BONA_FIDE}/{clip.speaker}_{stem}_{k}",
                        split,
                        BONA_FIDE,
                        clip.speaker,
                        _rel(clip.path),
                        "",
                        _seed(config.seed, BONA_FIDE, _rel(clip.path), k),
                    )
                )
        # A seeded shuffle, so that the first N real clips of a split (`max_bona_fide`, or a
        # partly built set) are a fair sample of its corpora and speakers.
        order = np.random.default_rng(_seed(config.seed, "order", split)).permutation(len(real))
        real = [real[i] for i in order]
        if config.max_bona_fide is not None:
            real = real[: max(1, round(config.max_bona_fide * SPLIT_SHARES[split]))]
        jobs += real
    for generator in config.generators:
        for split in SPLITS:
            pool = by_split[split]
            if not pool:
                continue
            voices = _voices(generator, config, split, clips)
            rng = np.random.default_rng(_seed(config.seed, generator, split))
            total = config.spoofs_by_generator.get(generator, config.spoofs_per_generator)
            count = max(1, round(total * SPLIT_SHARES[split]))
            for i in range(count):
                clip = pool[int(rng.integers(len(pool)))]
                words = _words(clip.text)
                while len(words) < MIN_TEXT_WORDS:  # join more transcripts of the same split
                    words += _words(pool[int(rng.integers(len(pool)))].text)
                jobs.append(
                    Job(
                        f"{split}/{generator}/{i:05d}",
                        split,
                        generator,
                        voices[i % len(voices)],
                        _rel(clip.path),
                        " ".join(words[:MAX_TEXT_WORDS]),
                        _seed(config.seed, generator, split, i),
                    )
                )
    # Each (generator, split) advances at the same pace, and in plan order: a partly built
    # set holds, for every generator and split, the first jobs of its plan, which are exactly
    # the jobs a build with a smaller `spoofs_per_generator` makes (same ids, same seeds).
    groups: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.generator, job.split), []).append(job)
    position = {j.id: k / len(g) for g in groups.values() for k, j in enumerate(g)}
    return sorted(jobs, key=lambda j: position[j.id])  # stable: ties keep plan order


def held_out_real_sources(speech_manifest: Path) -> tuple[str, ...]:
    """Manifest `source` prefixes of the real speech kept out of training: every alphanumeric
    recording and every speechocean762 speaker aged CHILD_MAX_AGE or less.

    Recording conditions no other corpus has (phone microphones with Indian-accented English;
    children's voices), so a model trained without them (`TrainConfig.exclude_real_sources`,
    `detector train --hold-out-real`) can be measured on real speech of conditions it never
    saw."""
    children = set()
    with open(speech_manifest, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["corpus"] != "speechocean762":
                continue
            info = dict(kv.split("=", 1) for kv in row["info"].split(";") if "=" in kv)
            if int(info.get("age", 99)) <= CHILD_MAX_AGE:
                children.add(f"speechocean762/{row['speaker']}/")
    return ("alphanumeric/", *sorted(children))


def _rel(path: Path) -> str:
    """A manifest path relative to the speech folder (portable between machines)."""
    parts = Path(path).parts
    return "/".join(parts[parts.index("speech") + 1 :]) if "speech" in parts else str(path)


def clone_speakers(
    config: DataConfig, split: str, quality: str | None = None, clips: list | None = None
) -> list[str]:
    """The real speakers whose voices are enrolled as studio clones for a split (with a
    quality: those of the `kokoro-clone-QUALITY` generator, skipping speakers with too little
    audio for a reference, as the clone evaluation does; `clips`: the corpus manifest)."""
    from deepfake_studio.evaluation.speakers import ENGLISH_NATIVE, split_speakers

    order = [s for _, s in split_speakers(split, ENGLISH_NATIVE)]
    if quality is None:
        return order[: config.clone_voices.get(split, 0)]
    wanted = config.quality_clone_voices.get(quality, {}).get(split, 0)
    chosen: list[str] = []
    for speaker in order:
        if len(chosen) == wanted:
            break
        if _cloneable(speaker, clips):
            chosen.append(speaker)
    return chosen


_CLONEABLE: dict[str, bool] = {}  # speaker → has a usable reference (reading audio is slow)


def _cloneable(speaker: str, clips: list | None) -> bool:
    from deepfake_studio.evaluation.speakers import load_manifest, speaker_case

    if speaker not in _CLONEABLE:
        _CLONEABLE[speaker] = speaker_case(speaker, clips or load_manifest()) is not None
    return _CLONEABLE[speaker]


def clone_quality_of(generator: str) -> str | None:
    """The enrollment quality a `kokoro-clone-QUALITY` generator stands for (else None)."""
    if generator.startswith(CLONE_PREFIX) and generator[len(CLONE_PREFIX) :] in QUALITIES:
        return generator[len(CLONE_PREFIX) :]
    return None


def _voices(
    generator: str, config: DataConfig, split: str, clips: list | None = None
) -> tuple[str, ...]:
    static = {
        "espeak-ng": ESPEAK_VOICES,
        "flite": FLITE_VOICES,
        "festival": FESTIVAL_VOICES,
        "world": ("world",),
        "griffin-lim": ("griffin-lim",),
        HIFIGAN: (HIFIGAN,),
    }
    if generator in static:
        return static[generator]
    if generator == "kokoro":
        from deepfake_studio.synthesizer.kokoro import load_style_packs

        return tuple(sorted(load_style_packs()))
    if generator == "kokoro-varied":  # recipes differ between splits (seeded by the name)
        return tuple(f"{split}-mix{k}" for k in range(KOKORO_RECIPES_PER_SPLIT))
    if generator in ("kokoro-clone", "piper") or clone_quality_of(generator):
        speakers = clone_speakers(config, split, clone_quality_of(generator), clips)
        if not speakers:
            raise StudioError(f"no clone voices configured for the {split} split")
        return tuple(speakers)
    known = ", ".join((*GENERATORS, *OPTIONAL_GENERATORS))
    raise StudioError(f"unknown generator {generator!r} (known: {known})")


# -- turning audio into a clip -----------------------------------------------------------------
def to_clip(audio: Audio, seconds: float, rng: np.random.Generator) -> Audio:
    """16 kHz, trimmed, loudness-normalised, cut at a random offset (or tiled) to `seconds`."""
    clip = audio_io.trim_silence(audio_io.resample(audio, SAMPLE_RATE))
    if clip.samples.size == 0 or not np.abs(clip.samples).max() > 1e-4:
        raise GeneratorError("the generated audio is silent")
    clip = audio_io.normalize_loudness(clip, CLIP_LUFS)
    n = int(seconds * SAMPLE_RATE)
    x = clip.samples
    if len(x) < n:  # short utterances are repeated rather than padded with silence
        x = np.tile(x, -(-n // len(x)))
    start = int(rng.integers(0, len(x) - n + 1))
    return Audio(x[start : start + n], SAMPLE_RATE)


# -- the build ---------------------------------------------------------------------------------
class Builder:
    """Makes the clips of a plan, loading each generator (and its models) once, on first use."""

    def __init__(self, out: Path, config: DataConfig, speech_dir: Path) -> None:
        self.out, self.config, self.speech_dir = out, config, speech_dir
        self._generators: dict[str, Generator] = {}
        self._studio = None

    def studio(self):  # type: ignore[no-untyped-def]
        if self._studio is None:
            from deepfake_studio.studio import Studio, StudioConfig

            # Shipped engine settings: clone voices are enrolled at `DataConfig.clone_quality`.
            self._studio = Studio(StudioConfig(data_dir=self.out / "studio"))
        return self._studio

    def generator(self, name: str) -> Generator:
        if name not in self._generators:
            from deepfake_studio.detector import generators as g

            if name in ("kokoro-clone", "piper"):
                engine = "kokoro" if name == "kokoro-clone" else "piper"
                self._generators[name] = g.studio_clones(name, self.studio(), self._enroll(engine))
            elif quality := clone_quality_of(name):
                voices = self._enroll("kokoro", quality)
                self._generators[name] = g.studio_clones(name, self.studio(), voices)
            else:
                factories: dict[str, Callable[[], Generator]] = {
                    "kokoro": lambda: g.kokoro_packs(self.studio()),
                    "kokoro-varied": lambda: g.kokoro_varied(self.studio()),
                    "espeak-ng": g.espeak_ng,
                    "flite": g.flite,
                    "festival": g.festival,
                    "world": g.world_vocoder,
                    "griffin-lim": g.griffin_lim_vocoder,
                    HIFIGAN: lambda: g.hifigan_resynth(Path(str(self.config.hifigan_checkpoint))),
                }
                self._generators[name] = factories[name]()
        return self._generators[name]

    def _enroll(self, engine: str, fixed_quality: str | None = None):  # type: ignore[no-untyped-def]
        """Clone voices of every split's chosen speakers, enrolled once and kept in OUT/studio.

        `fixed_quality`: the voices of `kokoro-clone-QUALITY` (named kokoro-QUALITY-SPEAKER);
        None: those of `kokoro-clone` (at `clone_quality`) and `piper`."""
        from deepfake_studio.evaluation.speakers import load_manifest, speaker_case
        from deepfake_studio.voices import voice_id

        studio = self.studio()
        clips = load_manifest(self.speech_dir.parent)
        voices = {}
        wanted = fixed_quality or (self.config.clone_quality if engine == "kokoro" else None)
        for split in SPLITS:
            for speaker in clone_speakers(self.config, split, fixed_quality, clips):
                prefix = f"{engine}-{fixed_quality}" if fixed_quality else engine
                name = f"{prefix}-{speaker}".lower()
                if voice_id(name) not in studio.library.names():
                    case = speaker_case(speaker, clips)
                    if case is None:
                        raise StudioError(f"speaker {speaker} has too little audio to clone")
                    consent = (
                        f"Public-corpus speaker {speaker}, used only to make detector "
                        "training data; never published."
                    )
                    studio.enroll(
                        case.reference, name, consent, engine=engine, seed=0, quality=wanted
                    )
                voices[speaker] = studio.voice(name)
                made = enrollment_quality(voices[speaker])
                if engine == "kokoro" and made != wanted:
                    # A build resumed from before clone_quality was recorded (config.json
                    # then claims today's default) must not mix two kinds of clones.
                    raise StudioError(
                        f"{self.out} holds the voice {name!r} enrolled at {made}, not at "
                        f"{wanted}: use a new --out folder"
                    )
        return voices

    def make(self, job: Job) -> list[dict[str, object]]:
        """Write a job's clean clip and its augmented copies; their manifest rows."""
        rng = np.random.default_rng(job.seed)
        source = audio_io.load_audio(self.speech_dir / job.source)
        if job.generator == BONA_FIDE:
            raw, watermark = source, False
        else:
            generator = self.generator(job.generator)
            watermark = job.generator in ("kokoro-clone", "piper") and bool(
                rng.random() < self.config.watermark_fraction
            )
            request = Request(
                text=job.text,
                source=None if generator.needs_text else _real_excerpt(source, rng, self.config),
                voice=job.voice,
                speed=float(rng.uniform(0.85, 1.15)),
                pitch=float(rng.uniform(-2, 2)),
                watermark=watermark,
            )
            raw = generator.generate(request)
        clip = to_clip(raw, self.config.clip_seconds, rng)
        base = {
            "split": job.split,
            "label": job.label,
            "generator": job.generator,
            "voice": job.voice,
            "source": job.source,
            "text": job.text,
            "watermark": watermark,
            "seed": job.seed,
        }
        rows = [{"id": job.id, **base, "augment": "none", "path": self._save(job.id, clip)}]
        for k in range(self.config.augmented_copies):
            augmented, what = augment(
                clip, rng, kinds=self.config.augmentations, codecs=self.config.codecs
            )
            aug_id = f"{job.id}~aug{k}"
            rows.append(
                {"id": aug_id, **base, "augment": what, "path": self._save(aug_id, augmented)}
            )
        return rows

    def _save(self, clip_id: str, clip: Audio) -> str:
        rel = f"clips/{clip_id.replace('~', '_')}.flac"
        audio_io.save_audio(clip.with_samples(np.clip(clip.samples, -1, 1)), self.out / rel)
        return rel


def _real_excerpt(source: Audio, rng: np.random.Generator, config: DataConfig) -> Audio:
    """A 16 kHz trimmed stretch of a real recording (a little longer than a clip) to vocode."""
    clip = audio_io.trim_silence(audio_io.resample(source, SAMPLE_RATE))
    n = int((config.clip_seconds + 0.5) * SAMPLE_RATE)
    if len(clip.samples) <= n:
        return clip
    start = int(rng.integers(0, len(clip.samples) - n))
    return clip.with_samples(clip.samples[start : start + n])


def read_manifest(out: Path) -> list[dict[str, object]]:
    """Rows of OUT/manifest.jsonl (a torn last line from a killed build is ignored)."""
    path = Path(out) / "manifest.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _drop_torn_tail(manifest: Path) -> None:
    """Cut a half-written last line (a build killed mid-write) so appended rows start clean."""
    if not manifest.exists():
        return
    data = manifest.read_bytes()
    if data and not data.endswith(b"\n"):
        manifest.write_bytes(data[: data.rfind(b"\n") + 1])


def build(
    out: Path,
    config: DataConfig | None = None,
    *,
    speech_dir: Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, int]:
    """Make (or finish making) the data set in `out`; returns clips written per generator."""
    from deepfake_studio.evaluation.speakers import SPLIT_FILE, data_root, load_manifest

    config = config or DataConfig()
    check_choices(config.augmentations, config.codecs)
    if config.clone_quality not in QUALITIES:
        raise StudioError(
            f"unknown clone quality {config.clone_quality!r} ({', '.join(QUALITIES)})"
        )
    if HIFIGAN in config.generators:
        # Checked before anything is built: a build must not run for an hour and then stop.
        if not config.hifigan_checkpoint:
            raise StudioError(f"{HIFIGAN} needs a HiFi-GAN checkpoint (--hifigan-checkpoint)")
        if not Path(config.hifigan_checkpoint).is_file():
            raise StudioError(f"HiFi-GAN checkpoint not found: {config.hifigan_checkpoint}")
    speech = Path(speech_dir) if speech_dir else data_root() / "speech"
    if not (speech / "manifest.csv").exists():
        raise StudioError(f"no real speech corpus at {speech} (manifest.csv missing)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = json.loads(json.dumps(asdict(config)))
    config_file = out / "config.json"
    if config_file.exists() and _with_defaults(json.loads(config_file.read_text())) != settings:
        raise StudioError(f"{out} was built with other settings; use a new --out folder")
    config_file.write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")

    splits = json.loads(SPLIT_FILE.read_text(encoding="utf-8"))["splits"]
    split_of = {
        spk: s for s, corpora in splits.items() for spks in corpora.values() for spk in spks
    }
    jobs = plan(config, load_manifest(speech.parent), split_of)
    return run_jobs(out, jobs, Builder(out, config, speech), progress)


def _with_defaults(stored: dict[str, object]) -> dict[str, object]:
    """A stored config.json with the fields added since it was written at their defaults
    (which are what it was built with), so older builds still resume."""
    return {**json.loads(json.dumps(asdict(DataConfig()))), **stored}


def run_jobs(
    out: Path,
    jobs: list[Job],
    builder: Builder,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, int]:
    """Make every job not yet in `out`'s manifest (resumable); returns clips per generator."""
    _drop_torn_tail(out / "manifest.jsonl")
    done = {str(r["id"]) for r in read_manifest(out)}
    written: dict[str, int] = {}
    with open(out / "manifest.jsonl", "a", encoding="utf-8") as manifest:
        for i, job in enumerate(jobs):
            if job.id in done:
                continue
            try:
                rows = builder.make(job)
            except (GeneratorError, StudioError) as exc:
                # One bad input (a transcript a synthesizer chokes on) must not stop the build;
                # the failure is recorded so a resume does not retry it forever.
                rows = [{"id": job.id, "split": job.split, "generator": job.generator,
                         "label": job.label, "error": str(exc)}]  # fmt: skip
            for row in rows:
                manifest.write(json.dumps(row) + "\n")
            manifest.flush()
            written[job.generator] = written.get(job.generator, 0) + 1
            if progress:
                progress(i + 1, len(jobs), job.generator)
    return written


def shrink(out: Path, spoofs_per_generator: int, max_bona_fide: int | None) -> DataConfig:
    """Turn a partly built set into the complete set of a smaller config, without generating.

    Thanks to the build order (every generator and split advances through its own plan) and to
    per-clip seeds, the jobs of a config with fewer spoofs or real clips are a subset of the
    larger one's; this checks they are all built, keeps only their rows and rewrites
    config.json, so the result is exactly what `build-data` with the smaller numbers makes.
    """
    from dataclasses import replace

    from deepfake_studio.evaluation.speakers import SPLIT_FILE, data_root, load_manifest

    out = Path(out)
    built = json.loads((out / "config.json").read_text(encoding="utf-8"))
    built = _with_defaults(built)
    built["clone_voices"] = dict(built["clone_voices"])
    built["generators"] = tuple(built["generators"])
    for name in ("augmentations", "codecs"):
        if name in built:
            built[name] = tuple(built[name])
    config = replace(
        DataConfig(**built), spoofs_per_generator=spoofs_per_generator, max_bona_fide=max_bona_fide
    )
    splits = json.loads(SPLIT_FILE.read_text(encoding="utf-8"))["splits"]
    split_of = {
        spk: s for s, corpora in splits.items() for spks in corpora.values() for spk in spks
    }
    wanted = {j.id for j in plan(config, load_manifest(data_root()), split_of)}
    rows = read_manifest(out)
    present = {str(r["id"]).split("~")[0] for r in rows}
    if missing := wanted - present:
        raise StudioError(f"{len(missing)} clips of the smaller set are not built yet")
    kept = [r for r in rows if str(r["id"]).split("~")[0] in wanted]
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    (out / "config.json").write_text(
        json.dumps(json.loads(json.dumps(asdict(config))), indent=1) + "\n"
    )
    return config
