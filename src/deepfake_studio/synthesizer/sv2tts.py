"""The classic SV2TTS engine: Real-Time-Voice-Cloning's published checkpoints on current PyTorch.

    engine = load_sv2tts_engine(Path("models/rtvc"))     # encoder.pt, synthesizer.pt, vocoder.pt
    voice = engine.condition(reference, encoder)         # the reference's 256-d d-vector
    samples = engine.synthesize("Hello there.", voice)   # float32, 16 kHz

Three stages (Jia et al., 2018): the GE2E encoder turns the reference into a d-vector; the
Tacotron synthesizer reads the cleaned text with that d-vector appended to every character
and writes a mel spectrogram; WaveRNN (or Griffin-Lim when there is no `vocoder.pt`) turns
the mel into a waveform. Nothing is downloaded: the user puts the three files in a folder.

Checkpoints are read with `torch.load(weights_only=True)`: a checkpoint is data and may not run
code while it is unpickled. Every problem with the folder is a one-line `SV2TTSModelError`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias

from deepfake_studio.configs import ConfigError, config_from_dict
from deepfake_studio.errors import EngineError, TextError
from deepfake_studio.synthesizer.base import Conditioning, ProgressCallback
from deepfake_studio.synthesizer.sv2tts_text import EOS_ID, english_cleaners, symbols_to_ids
from deepfake_studio.synthesizer.tacotron import Tacotron, TacotronConfig
from deepfake_studio.vocoder.griffin_lim import GriffinLimConfig, GriffinLimVocoder
from deepfake_studio.vocoder.wavernn import WaveRNN, WaveRNNConfig, WaveRNNVocoder

if TYPE_CHECKING:
    from deepfake_studio.audio import Audio
    from deepfake_studio.encoder import SpeakerEncoder

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
EMBEDDING_SIZE = 256
ENCODER_FILE, SYNTHESIZER_FILE, VOCODER_FILE = "encoder.pt", "synthesizer.pt", "vocoder.pt"
VocoderName = Literal["wavernn", "griffinlim"]
_LFS_MAGIC = b"version https://git-lfs"
ConfigT = TypeVar("ConfigT")


# --- one-line errors ---------------------------------------------------------------------------


class SV2TTSModelError(EngineError):
    """The SV2TTS models folder or one of its checkpoints cannot be used."""


class ModelFileMissingError(SV2TTSModelError):
    """The models folder, or a checkpoint that must be in it, does not exist."""


class LFSPointerError(SV2TTSModelError):
    """A checkpoint is a Git LFS pointer (a clone without `git lfs pull`), not the weights."""


class CheckpointMismatchError(SV2TTSModelError):
    """A checkpoint that is unreadable, or whose keys or shapes do not fit the network."""


# --- reading RTVC checkpoints ------------------------------------------------------------------


def check_model_file(path: Path, what: str) -> Path:
    """Raise ModelFileMissingError / LFSPointerError unless `path` looks like real weights."""
    if not path.is_file():
        raise ModelFileMissingError(f"SV2TTS {what} checkpoint not found: {path}")
    if path.stat().st_size < 1024:
        with path.open("rb") as handle:
            if handle.read(len(_LFS_MAGIC)) == _LFS_MAGIC:
                raise LFSPointerError(
                    f"SV2TTS {what} checkpoint {path} is a Git LFS pointer, not the weights; "
                    "run 'git lfs pull' or download the real file"
                )
    return path


def read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """The model state of an RTVC checkpoint (`{"model_state": ...}`) or of a bare state dict."""
    check_model_file(path, what)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for damaged files
        message = str(exc)
        if "not an allowed global" in message:  # weights_only refused a pickled object/code
            raise CheckpointMismatchError(
                f"SV2TTS {what} checkpoint {path} holds Python objects other than tensors; "
                "refusing to load it"
            ) from exc
        # weights_only wraps the real reason in a paragraph of advice; keep just the reason.
        message = message.partition("WeightsUnpickler error:")[2] or message
        reason = next((line.strip() for line in message.splitlines() if line.strip()), "")
        raise CheckpointMismatchError(
            f"cannot read SV2TTS {what} checkpoint {path} (truncated or not a torch file?): "
            f"{reason[:160] or type(exc).__name__}"
        ) from exc
    if isinstance(checkpoint, Mapping) and "model_state" in checkpoint:
        checkpoint = checkpoint["model_state"]
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(
            f"SV2TTS {what} checkpoint {path}: expected a state dict, "
            f"got {type(checkpoint).__name__}"
        )
    return dict(checkpoint)


def load_weights(model: torch.nn.Module, state: Mapping[str, object], source: str) -> None:
    """load_state_dict(strict=True), after naming the first missing, extra or mis-shaped key."""
    expected = model.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for key, tensor in expected.items():
        value = state.get(key)
        if value is None:
            raise CheckpointMismatchError(f"{source}: missing key '{key}'")
        if not isinstance(value, torch.Tensor):
            raise CheckpointMismatchError(
                f"{source}: '{key}' is a {type(value).__name__}, not a tensor"
            )
        if value.shape != tensor.shape:
            raise CheckpointMismatchError(
                f"{source}: '{key}' has shape {tuple(value.shape)}, expected {tuple(tensor.shape)}"
            )
        tensors[key] = value.to(tensor.dtype)  # e.g. a half-precision export
    extra = [key for key in state if key not in expected]
    if extra:
        raise CheckpointMismatchError(f"{source}: unexpected key '{extra[0]}'")
    model.load_state_dict(tensors, strict=True)


def saved_config(path: Path, cls: type[ConfigT], default: ConfigT | None) -> ConfigT | None:
    """The network config a checkpoint made by `deepfake-studio train` carries, else `default`.

    RTVC's own checkpoints have no `config` and use the published sizes. A trained one knows its
    sizes better than any caller, so its config wins.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # read_state_dict has already reported damaged files
        return default
    saved = checkpoint.get("config") if isinstance(checkpoint, Mapping) else None
    if not isinstance(saved, Mapping):
        return default
    try:
        return config_from_dict(cls, saved, str(path))
    except ConfigError as exc:
        raise CheckpointMismatchError(str(exc)) from exc


def load_tacotron(path: Path, config: TacotronConfig | None = None) -> Tacotron:
    """RTVC `synthesizer.pt` (or one trained here, with its `config`) → Tacotron in eval mode."""
    state = read_state_dict(path, "synthesizer")
    model = Tacotron(saved_config(path, TacotronConfig, config))
    load_weights(model, state, f"SV2TTS synthesizer {path}")
    if not 1 <= model.r <= model.config.max_r:
        raise CheckpointMismatchError(
            f"SV2TTS synthesizer {path}: 'decoder.r' is {model.r}, expected 1..{model.config.max_r}"
        )
    return model.eval()


def load_wavernn(path: Path, config: WaveRNNConfig | None = None) -> WaveRNN:
    """RTVC `vocoder.pt` (a `model_state` checkpoint or a bare state dict) → WaveRNN in eval."""
    state = read_state_dict(path, "vocoder")
    model = WaveRNN(saved_config(path, WaveRNNConfig, config))
    load_weights(model, state, f"SV2TTS vocoder {path}")
    return model.eval()


# --- the engine --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SV2TTSConfig:
    """Settings of the SV2TTS engine."""

    seed: int = 0  # prenet dropout and WaveRNN sampling are random; fixed so output repeats
    # Torch threads while decoding. The decoders run thousands of tiny sequential steps;
    # measured on 2 busy cores: Tacotron 19 ms/step with 1 thread, 46 ms/step with 2.
    threads: int = 1
    max_frames: int = 2000  # RTVC's decoder cap (25 s of speech per chunk)
    # A chunk may take at most this many frames per input symbol (speech is ~5), so a failed
    # alignment stops early instead of babbling until max_frames.
    max_frames_per_symbol: float = 16.0
    max_chunk_chars: int = 200  # longer text is split at clause punctuation, then spaces
    chunk_gap_s: float = 0.1  # silence between chunks of one sentence
    tacotron: TacotronConfig = field(default_factory=TacotronConfig)
    wavernn: WaveRNNConfig = field(default_factory=WaveRNNConfig)
    griffin_lim: GriffinLimConfig = field(default_factory=GriffinLimConfig)


class SV2TTSEngine:
    """Text → 16 kHz speech with RTVC's encoder, Tacotron synthesizer and WaveRNN/Griffin-Lim."""

    name = "sv2tts"
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        models_dir: Path,
        vocoder: VocoderName = "wavernn",
        config: SV2TTSConfig | None = None,
    ) -> None:
        """Load the checkpoints in `models_dir` (slow: ~0.5 GB of weights; keep the engine).

        vocoder="wavernn" uses `vocoder.pt` and falls back to Griffin-Lim, with a warning,
        when the file is absent; "griffinlim" never reads it.
        """
        from deepfake_studio.encoder import EncoderWeightsError, SpeakerEncoder

        if vocoder not in ("wavernn", "griffinlim"):
            raise EngineError(f"unknown SV2TTS vocoder {vocoder!r} (use 'wavernn' or 'griffinlim')")
        self.config = config or SV2TTSConfig()
        self.models_dir = Path(models_dir)
        if not self.models_dir.is_dir():
            raise ModelFileMissingError(
                f"SV2TTS models folder not found: {self.models_dir} (it needs {ENCODER_FILE}, "
                f"{SYNTHESIZER_FILE} and optionally {VOCODER_FILE})"
            )
        encoder_path = check_model_file(self.models_dir / ENCODER_FILE, "encoder")
        check_model_file(self.models_dir / SYNTHESIZER_FILE, "synthesizer")  # fail before loading
        # The synthesizer was trained on d-vectors of *this* encoder, so it embeds references
        # itself instead of using the studio's encoder.
        try:
            self.encoder = SpeakerEncoder(encoder_path)
        except EncoderWeightsError as exc:  # same error family as the other two checkpoints
            raise CheckpointMismatchError(f"SV2TTS {exc}") from exc
        self.tacotron = load_tacotron(self.models_dir / SYNTHESIZER_FILE, self.config.tacotron)

        vocoder_path = self.models_dir / VOCODER_FILE
        if vocoder == "wavernn" and not vocoder_path.exists():
            log.warning("no %s in %s: using the Griffin-Lim vocoder", VOCODER_FILE, models_dir)
            vocoder = "griffinlim"
        self.vocoder: WaveRNNVocoder | GriffinLimVocoder
        if vocoder == "wavernn":
            model = load_wavernn(vocoder_path, self.config.wavernn)
            self.vocoder = WaveRNNVocoder(model, seed=self.config.seed)
        else:
            self.vocoder = GriffinLimVocoder(self.tacotron.config.audio, self.config.griffin_lim)
        self._lock = threading.Lock()  # one synthesis at a time: each one uses every core

    @property
    def vocoder_name(self) -> str:
        """The vocoder actually in use: "wavernn" or "griffinlim"."""
        return self.vocoder.name

    # -- conditioning ---------------------------------------------------------------------
    def default_conditioning(self) -> Conditioning:
        raise EngineError("the sv2tts engine has no built-in voice; enroll a reference first")

    def condition(
        self,
        reference: Audio,
        encoder: SpeakerEncoder,
        *,
        seed: int = 0,
        progress: ProgressCallback | None = None,
    ) -> Conditioning:
        """The reference's d-vector from RTVC's `encoder.pt` (the `encoder` argument is unused:
        the synthesizer only understands embeddings of the encoder it was trained with)."""
        embedding = self.encoder.embed(reference.samples, reference.sample_rate)
        if progress:
            progress(1.0, "embedded the reference with the SV2TTS encoder")
        return Conditioning(
            engine=self.name,
            arrays={"embedding": np.asarray(embedding, np.float32)},
            info={"encoder": ENCODER_FILE},
        )

    # -- synthesis ------------------------------------------------------------------------
    def synthesize(self, text: str, conditioning: Conditioning, speed: float = 1.0) -> np.ndarray:
        embedding = conditioning.arrays.get("embedding")
        if embedding is None or np.asarray(embedding).shape != (EMBEDDING_SIZE,):
            raise EngineError(
                "this voice has no SV2TTS speaker embedding; enroll it with --engine sv2tts"
            )
        chunks = self.chunks(text)
        if not chunks:
            raise TextError("the text has nothing to speak (no letters or digits)")
        with self._lock, limit_torch_threads(self.config.threads):
            mel = self.text_to_mel(chunks, np.asarray(embedding, np.float32))
            mel = stretch_time(mel, speed * conditioning.speed)
            wav = self.vocoder(mel)
        peak = float(np.abs(wav).max(initial=0.0))
        if peak > 0.99:  # WaveRNN/Griffin-Lim are not level-calibrated; never clip
            wav = wav * (0.99 / peak)
        return np.asarray(wav, np.float32)

    def chunks(self, text: str) -> list[str]:
        """Cleaned text split into pieces the attention handles (≤ max_chunk_chars each)."""
        cleaned = english_cleaners(text)
        pieces = split_text(cleaned, self.config.max_chunk_chars)
        return [p for p in pieces if re.search(r"[a-z]", p)]

    def text_to_mel(self, chunks: list[str], embedding: np.ndarray) -> np.ndarray:
        """Cleaned chunks → one (80, T) mel, chunks joined by short silences."""
        c = self.config
        generator = torch.Generator().manual_seed(c.seed)
        speaker = torch.from_numpy(embedding)
        silence_value = -c.tacotron.audio.max_abs_value
        gap_frames = round(
            c.chunk_gap_s * c.tacotron.audio.sample_rate / c.tacotron.audio.hop_length
        )
        mels: list[np.ndarray] = []
        for chunk in chunks:
            ids = [*symbols_to_ids(chunk), EOS_ID]
            limit = min(c.max_frames, int(c.max_frames_per_symbol * len(ids)) + 40)
            mel = self.tacotron.generate(ids, speaker, max_frames=limit, generator=generator)
            if mels:
                mels.append(np.full((mel.shape[0], gap_frames), silence_value, np.float32))
            mels.append(mel.numpy())
        return np.concatenate(mels, axis=1)


@contextlib.contextmanager
def limit_torch_threads(threads: int) -> Iterator[None]:
    """Use at most `threads` torch threads inside the block (process-wide while it runs)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, before)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def split_text(text: str, limit: int) -> list[str]:
    """Split at clause punctuation (then spaces) so that each piece has ≤ `limit` characters."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = max(rest.rfind(p, 0, limit) for p in ",;:.!?")  # keep the mark with its clause
        if cut < limit // 3:  # no clause break in a useful place: break between words
            cut = rest.rfind(" ", 0, limit + 1)
        if cut < 1:  # one enormous word
            cut = limit - 1
        pieces.append(rest[: cut + 1].strip())
        rest = rest[cut + 1 :].strip()
    return [*pieces, rest] if rest else pieces


def stretch_time(mel: np.ndarray, speed: float) -> np.ndarray:
    """Resample the mel's time axis by 1/speed: faster or slower speech at the same pitch
    (the vocoder re-synthesises the waveform, so no pitch shift is involved)."""
    if abs(speed - 1.0) < 1e-3:
        return mel
    speed = float(np.clip(speed, 0.5, 2.0))
    frames = max(2, round(mel.shape[1] / speed))
    resized = F.interpolate(
        torch.from_numpy(mel)[None], size=frames, mode="linear", align_corners=True
    )
    return resized[0].numpy()


def load_sv2tts_engine(models_dir: Path, vocoder: VocoderName = "wavernn") -> SV2TTSEngine:
    """An SV2TTSEngine for the RTVC checkpoints in `models_dir` (see `SV2TTSEngine`)."""
    return SV2TTSEngine(Path(models_dir), vocoder=vocoder)
