"""Spoof generators for the detector's training data, each a name, its voices and `generate`.

Two kinds:
* text-to-speech (`needs_text`): the studio's own clones (`kokoro-clone`, `piper`: Studio.speak
  with voices enrolled from real training speakers, watermarked or not), Kokoro with each
  bundled style pack (`kokoro`), Kokoro through the studio's PyTorch path with styles and
  prosody no pack has (`kokoro-varied`), Debian's espeak-ng (formant synthesis), flite and festival
  (diphone, clustergen and HTS voices);
* copy-synthesis of a real recording (`world`: WORLD analysis → resynthesis; `griffin-lim`:
  the project's SV2TTS mel → Griffin-Lim vocoder; `hifigan-resynth`: the recording's 22.05 kHz
  mel → a HiFi-GAN checkpoint of the project's own, a neural vocoder), which keeps the speaker
  and the words and changes only the waveform model, the hardest case for a detector.

Every generator returns an `Audio` at its own rate; `data.py` resamples, trims and crops.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from deepfake_studio.audio import Audio
from deepfake_studio.errors import StudioError

if TYPE_CHECKING:
    from deepfake_studio.studio import Studio
    from deepfake_studio.voices import Voice

_TIMEOUT_S = 120


class GeneratorError(StudioError):
    """A generator is missing (e.g. a Debian package) or failed on an input."""


@dataclass(frozen=True)
class Request:
    """What one spoof clip is made from; unused fields are ignored by a generator."""

    text: str
    source: Audio | None  # real 16 kHz speech, for copy-synthesis
    voice: str
    speed: float = 1.0  # relative speaking rate
    pitch: float = 0.0  # semitones, for engines that take it
    watermark: bool = False  # studio clones only


@dataclass(frozen=True)
class Generator:
    """A named way of making synthetic speech."""

    name: str
    voices: tuple[str, ...]
    needs_text: bool
    generate: Callable[[Request], Audio]


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GeneratorError(f"{what} failed: {type(exc).__name__}") from exc
    if proc.returncode != 0:
        last = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GeneratorError(f"{what} failed: {last[-1] if last else proc.returncode}")


def _read_wav(path: Path, what: str) -> Audio:
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise GeneratorError(f"{what} wrote no readable audio") from exc
    return Audio(data.mean(axis=1), rate)


def _require(binary: str, package: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise GeneratorError(f"{binary} not found: apt-get install {package}")
    return found


# -- Debian command-line synthesizers ----------------------------------------------------------
ESPEAK_VOICES = tuple(
    f"{lang}+{variant}"
    for lang in ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp")
    for variant in ("m1", "m3", "f1", "f3", "f5")
)
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")


def _command_line(
    name: str,
    binary: str,
    voices: tuple[str, ...],
    arguments: Callable[[Request, Path, Path], list[str]],
    encoding: str = "utf-8",
) -> Generator:
    """A synthesizer run as `binary ARGUMENTS`: text goes in a file, a wav file comes back."""

    def generate(request: Request) -> Audio:
        with tempfile.TemporaryDirectory() as tmp:
            text, out = Path(tmp) / "text.txt", Path(tmp) / "out.wav"
            text.write_text(request.text, encoding=encoding, errors="replace")
            _run([binary, *arguments(request, text, out)], name)
            return _read_wav(out, name)

    return Generator(name, voices, True, generate)


def espeak_ng() -> Generator:
    def arguments(request: Request, text: Path, out: Path) -> list[str]:
        wpm = round(165 * request.speed)
        pitch = round(50 + 8 * request.pitch)  # 0-99, 50 is the voice's own
        return [
            "-v",
            request.voice,
            "-s",
            str(wpm),
            "-p",
            str(pitch),
            "-f",
            str(text),
            "-w",
            str(out),
        ]

    return _command_line("espeak-ng", _require("espeak-ng", "espeak-ng"), ESPEAK_VOICES, arguments)


def flite() -> Generator:
    def arguments(request: Request, text: Path, out: Path) -> list[str]:
        stretch = f"duration_stretch={1.0 / request.speed:.3f}"
        return ["-voice", request.voice, "--setf", stretch, "-f", str(text), "-o", str(out)]

    return _command_line("flite", _require("flite", "flite"), FLITE_VOICES, arguments)


def festival() -> Generator:
    def arguments(request: Request, text: Path, out: Path) -> list[str]:
        stretch = f"(Parameter.set 'Duration_Stretch {1.0 / request.speed:.3f})"
        return ["-eval", f"(voice_{request.voice})", "-eval", stretch, str(text), "-o", str(out)]

    binary = _require("text2wave", "festival")
    # festival reads its input as Latin-1; unmappable characters become "?".
    return _command_line("festival", binary, FESTIVAL_VOICES, arguments, encoding="latin-1")


# -- the studio's engines ----------------------------------------------------------------------
def kokoro_packs(studio: Studio) -> Generator:
    """Kokoro with each bundled style pack (Japanese voices speaking English)."""
    from deepfake_studio.synthesizer.base import Conditioning

    engine = studio.engine("kokoro")
    packs: dict[str, np.ndarray] = engine.style_packs  # type: ignore[attr-defined]

    def generate(request: Request) -> Audio:
        conditioning = Conditioning(engine="kokoro", arrays={"style": packs[request.voice]})
        samples = engine.synthesize(request.text, conditioning, request.speed)
        return Audio(samples, engine.sample_rate)

    return Generator("kokoro", tuple(sorted(packs)), True, generate)


KOKORO_RECIPES_PER_SPLIT = 8  # kokoro-varied voices per split (each a seeded style + prosody)


def kokoro_recipe(voice: str, packs: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, float]]:
    """The style table and prosody edit a `kokoro-varied` voice name stands for (seeded by the
    name): a random convex mixture of 2-3 packs, moved off the packs' span along a random
    direction (scaled per dimension by how much the packs differ there), and a random edit of
    the F0 range and level, energy, declination and end rise."""
    import zlib

    rng = np.random.default_rng(zlib.crc32(voice.encode()))
    names = sorted(packs)
    stack = np.stack([packs[n] for n in names]).astype(np.float64)  # (packs, 510, 256)
    k = int(rng.integers(2, 4))
    chosen = rng.choice(len(names), size=k, replace=False)
    style = np.tensordot(rng.dirichlet(np.ones(k)), stack[chosen], axes=1)
    spread = stack.std(axis=0).mean(axis=0)  # (256,)
    style += float(rng.uniform(0.3, 1.0)) * rng.standard_normal(spread.shape) * spread
    edit = {
        "f0_scale": float(rng.uniform(0.7, 1.4)),
        "f0_shift_semitones": float(rng.uniform(-3, 3)),
        "energy_scale": float(rng.uniform(0.85, 1.15)),
        "f0_slope_semitones_per_s": float(rng.uniform(-2, 2)),
        "f0_end_rise_semitones": float(rng.uniform(0, 4)) if rng.random() < 0.3 else 0.0,
    }
    return style.astype(np.float32), edit


def kokoro_varied(studio: Studio) -> Generator:
    """Kokoro with voices no pack has, through the studio's PyTorch path (`torch_path`): each
    voice a `kokoro_recipe` (mixed, moved style; edited prosody), the request's pitch added to
    its F0 shift and its speed used as asked. What a Kokoro clone of anyone can sound like."""
    from deepfake_studio.synthesizer.base import Conditioning
    from deepfake_studio.synthesizer.kokoro.torch_path import ProsodyEdit, with_prosody_edit

    engine = studio.engine("kokoro")
    packs: dict[str, np.ndarray] = engine.style_packs  # type: ignore[attr-defined]
    recipes: dict[str, tuple[np.ndarray, dict[str, float]]] = {}

    def generate(request: Request) -> Audio:
        if request.voice not in recipes:
            recipes[request.voice] = kokoro_recipe(request.voice, packs)
        style, values = recipes[request.voice]
        values = {**values, "f0_shift_semitones": values["f0_shift_semitones"] + request.pitch}
        conditioning = with_prosody_edit(
            Conditioning(engine="kokoro", arrays={"style": style}), ProsodyEdit(**values)
        )
        samples = engine.synthesize(request.text, conditioning, request.speed)
        return Audio(samples, engine.sample_rate)

    return Generator("kokoro-varied", (), True, generate)


def studio_clones(name: str, studio: Studio, voices: dict[str, Voice]) -> Generator:
    """The studio's own output: `Studio.speak` with enrolled voices, watermarked on request."""

    def generate(request: Request) -> Audio:
        voice = voices[request.voice]
        pieces = studio.speak(request.text, voice, speed=request.speed, watermark=request.watermark)
        parts = list(pieces)
        return Audio(np.concatenate([p.samples for p in parts]), parts[0].sample_rate)

    return Generator(name, tuple(sorted(voices)), True, generate)


# -- copy-synthesis of real speech -------------------------------------------------------------
def world_vocoder() -> Generator:
    """WORLD (Morise et al., 2016): DIO+StoneMask F0, CheapTrick envelope, D4C aperiodicity."""
    try:
        with warnings.catch_warnings():  # pyworld imports the deprecated pkg_resources
            warnings.simplefilter("ignore")
            import pyworld
    except ImportError as exc:
        raise GeneratorError(
            "pyworld is not installed: pip install 'deepfake-studio[detector]'"
        ) from exc

    def generate(request: Request) -> Audio:
        assert request.source is not None
        x = request.source.samples.astype(np.float64)
        rate = request.source.sample_rate
        f0, times = pyworld.dio(x, rate)
        f0 = pyworld.stonemask(x, f0, times, rate)
        envelope = pyworld.cheaptrick(x, f0, times, rate)
        aperiodicity = pyworld.d4c(x, f0, times, rate)
        y = pyworld.synthesize(f0, envelope, aperiodicity, rate)
        return Audio(y.astype(np.float32), rate)

    return Generator("world", ("world",), False, generate)


def griffin_lim_vocoder() -> Generator:
    """The project's SV2TTS mel (80 bands, 16 kHz) inverted by Griffin-Lim (vocoder/)."""
    from deepfake_studio.vocoder.audio import melspectrogram
    from deepfake_studio.vocoder.griffin_lim import GriffinLimConfig, griffin_lim

    config = GriffinLimConfig(iterations=32)  # fast GL with momentum has converged by then

    def generate(request: Request) -> Audio:
        assert request.source is not None
        mel = melspectrogram(request.source.samples)
        return Audio(griffin_lim(mel, config=config), request.source.sample_rate)

    return Generator("griffin-lim", ("griffin-lim",), False, generate)


def hifigan_resynth(checkpoint: Path) -> Generator:
    """A real recording's 22.05 kHz mel (HIFIGAN_AUDIO) → the project's HiFi-GAN from
    `checkpoint` (RUN/hifigan.pt of `train vocoder --model hifigan`). Modern TTS systems end
    in a neural vocoder like this one, so its fingerprints (upsampling artefacts, periodic
    structure learnt rather than modelled) are what an unseen neural generator shares with it;
    even a briefly trained checkpoint leaves them."""
    from deepfake_studio.audio import resample
    from deepfake_studio.synthesizer.sv2tts import SV2TTSModelError
    from deepfake_studio.vocoder.audio import melspectrogram
    from deepfake_studio.vocoder.hifigan import load_hifigan_vocoder

    try:
        vocoder = load_hifigan_vocoder(Path(checkpoint))
    except SV2TTSModelError as exc:
        raise GeneratorError(f"hifigan-resynth: {exc}") from exc
    audio = vocoder.generator.config.audio

    def generate(request: Request) -> Audio:
        assert request.source is not None
        wav = resample(request.source, audio.sample_rate).samples
        return Audio(vocoder(melspectrogram(wav, audio)), audio.sample_rate)

    return Generator("hifigan-resynth", ("hifigan-resynth",), False, generate)
