"""The engine's PyTorch path: what a voice or a request may ask that the int8 ONNX cannot do.

Two things live in a `Conditioning` and send synthesis through the PyTorch model:

- decoder weight deltas (speaker adaptation, `adapt.py`), added to the bundled decoder weights
  for this voice only (the shared model is never modified), stored either whole —
  `decoder_delta.<parameter>`, e.g. `decoder_delta.decoder.generator.conv_post.weight` — or
  as low-rank factors, `decoder_lowrank.<parameter>.up` [out, r] and `.down` [r, rest], whose
  product reshaped to the weight is the delta (what `best` enrollment stores: a few MB);
- a prosody edit: `ProsodyEdit` values in `info` (`prosody.f0_scale`, …) that reshape the
  predicted F0 and energy curves before the decoder.

Everything else (a plain style table) stays on the faster ONNX path.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from deepfake_studio.errors import EngineError
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro.model import KokoroModel, Prosody

DECODER_DELTA_PREFIX = "decoder_delta."
LOWRANK_PREFIX = "decoder_lowrank."
_EDIT_KEYS = (
    "f0_scale",
    "f0_shift_semitones",
    "energy_scale",
    "energy_shift",
    "f0_slope_semitones_per_s",
    "f0_end_rise_semitones",
)
F0_STEP_S = 300 / 24_000  # one F0/energy value per half decoder frame (300 samples at 24 kHz)
END_RISE_S = 0.3  # an end rise climbs over the last 0.3 s of voiced speech


@dataclass(frozen=True)
class ProsodyEdit:
    """A transform of the predicted curves: F0 × scale × 2^(shift/12) Hz, energy × scale + shift;
    the contour tilted by a slope (semitones per second, about the utterance's middle) and
    raised towards its end (0 → `f0_end_rise_semitones` over the last voiced 0.3 s)."""

    f0_scale: float = 1.0  # widens (>1) or flattens (<1) the intonation around its mean
    f0_shift_semitones: float = 0.0
    energy_scale: float = 1.0
    energy_shift: float = 0.0
    f0_slope_semitones_per_s: float = 0.0  # > 0: less declination (or a rise)
    f0_end_rise_semitones: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self == ProsodyEdit()

    def apply(self, prosody: Prosody) -> Prosody:
        f0 = prosody.f0
        voiced = f0 > 10.0  # leave unvoiced frames unvoiced
        if voiced.any():
            mean = f0[voiced].mean()
            edited = (mean + (f0 - mean) * self.f0_scale) * 2 ** (self.f0_shift_semitones / 12)
            edited = edited * 2 ** (self._contour_semitones(voiced) / 12)
            f0 = torch.where(voiced, edited.clamp(min=10.5), f0)
        energy = prosody.energy * self.energy_scale + self.energy_shift
        return replace(prosody, f0=f0, energy=energy)

    def _contour_semitones(self, voiced: torch.Tensor) -> torch.Tensor:
        """Semitones added at each F0 step by the slope and the end rise ([1, steps])."""
        steps = voiced.shape[-1]
        t = torch.arange(steps, dtype=torch.float32) * F0_STEP_S
        where = torch.nonzero(voiced.reshape(-1)).reshape(-1)
        first, last = t[where[0]], t[where[-1]]
        contour = self.f0_slope_semitones_per_s * (t - (first + last) / 2)
        ramp = ((t - (last - END_RISE_S)) / END_RISE_S).clamp(0.0, 1.0)
        contour = contour + self.f0_end_rise_semitones * ramp
        return contour.reshape(voiced.shape)

    def to_info(self) -> dict[str, float]:
        return {f"prosody.{k}": float(getattr(self, k)) for k in _EDIT_KEYS}

    @classmethod
    def from_info(cls, info: dict[str, float | str | int]) -> ProsodyEdit:
        values = {}
        for key in _EDIT_KEYS:
            raw = info.get(f"prosody.{key}")
            if raw is None:
                continue
            try:
                values[key] = float(raw)
            except (TypeError, ValueError):
                raise EngineError(f"prosody.{key} must be a number, got {raw!r}") from None
            if not math.isfinite(values[key]):
                raise EngineError(f"prosody.{key} must be finite, got {raw!r}")
        return cls(**values)


def with_prosody_edit(conditioning: Conditioning, edit: ProsodyEdit) -> Conditioning:
    """A copy of `conditioning` whose synthesis applies `edit` (the voice is not changed)."""
    return replace(conditioning, info={**conditioning.info, **edit.to_info()})


def with_decoder_deltas(
    conditioning: Conditioning, deltas: dict[str, np.ndarray | torch.Tensor]
) -> Conditioning:
    """A copy of `conditioning` carrying decoder weight deltas (parameter name → delta)."""
    arrays = dict(conditioning.arrays)
    for name, delta in deltas.items():
        value = delta.detach().cpu().numpy() if isinstance(delta, torch.Tensor) else delta
        arrays[DECODER_DELTA_PREFIX + name] = np.asarray(value, np.float32)
    return replace(conditioning, arrays=arrays)


def decoder_deltas(conditioning: Conditioning) -> dict[str, np.ndarray]:
    n = len(DECODER_DELTA_PREFIX)
    return {k[n:]: v for k, v in conditioning.arrays.items() if k.startswith(DECODER_DELTA_PREFIX)}


def lowrank_arrays(conditioning: Conditioning) -> dict[str, np.ndarray]:
    return {k: v for k, v in conditioning.arrays.items() if k.startswith(LOWRANK_PREFIX)}


def lowrank_deltas(
    arrays: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]
) -> dict[str, np.ndarray]:
    """Whole deltas (parameter name → array) from stored low-rank factors.

    `shapes` gives each parameter's shape; a lone half of a pair, a factor for an unknown
    parameter or factors that do not fit the shape raise EngineError (a damaged voice)."""
    halves: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        name, _, half = key.removeprefix(LOWRANK_PREFIX).rpartition(".")
        halves.setdefault(name, {})[half] = value
    deltas: dict[str, np.ndarray] = {}
    for name, pair in halves.items():
        if set(pair) != {"up", "down"}:
            raise EngineError(f"this voice's low-rank delta for {name!r} is incomplete")
        if name not in shapes:
            raise EngineError(f"this voice adapts {name!r}, which is not a decoder weight")
        up, down, shape = pair["up"], pair["down"], shapes[name]
        rest = int(np.prod(shape[1:]))
        if (
            up.ndim != 2
            or down.ndim != 2
            or up.shape[1] != down.shape[0]
            or ((up.shape[0], down.shape[1]) != (shape[0], rest))
        ):
            raise EngineError(f"this voice's low-rank delta for {name} does not fit {shape}")
        deltas[name] = (up.astype(np.float32) @ down.astype(np.float32)).reshape(shape)
    return deltas


def needs_torch(conditioning: Conditioning) -> bool:
    """True when the ONNX cannot render this conditioning faithfully."""
    return (
        bool(decoder_deltas(conditioning))
        or bool(lowrank_arrays(conditioning))
        or not ProsodyEdit.from_info(conditioning.info).is_identity
    )


def cpu_has_bfloat16() -> bool:
    """True on x86 CPUs with native bfloat16 arithmetic (AVX-512 BF16 or AMX)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in cpuinfo or "amx_bf16" in cpuinfo


class TorchKokoro:
    """The float model, loaded once on first use, run one utterance at a time.

    Every stage runs under bfloat16 autocast where the CPU has native bfloat16: the decoder
    (most of the compute) measured 17-37 % faster on a 2-core Xeon with AMX, with the same
    log-mel distance to the ONNX (benchmarks/kokoro_torch.md); the text stage (`text_stage`)
    109 vs 176 ms for a 76-token sentence on 2 idle AMD EPYC cores, time a stream waits before
    its first audio: 0.28 vs 0.32 s (benchmarks/streaming_bf16_text.md).
    """

    def __init__(
        self,
        cache_dir: Path | None = None,
        model: KokoroModel | None = None,
        bfloat16: bool | None = None,  # None = when the CPU has it
        text_bfloat16: bool | None = None,  # the text stage; None = as the decoder
    ) -> None:
        self._cache_dir = cache_dir
        self._model = model  # given: share an already loaded model
        self.bfloat16 = cpu_has_bfloat16() if bfloat16 is None else bfloat16
        self.text_bfloat16 = self.bfloat16 if text_bfloat16 is None else text_bfloat16
        self._lock = threading.Lock()
        # The last adapted voice's decoder parameters, by a digest of its deltas: expanding
        # the factors and adding them to 53 M weights costs more than a short sentence.
        # One voice only: each copy of the decoder is ~200 MB.
        self._adapted: tuple[str, dict[str, torch.Tensor]] | None = None
        self._adapted_lock = threading.Lock()

    @property
    def model(self) -> KokoroModel:
        with self._lock:
            if self._model is None:
                from deepfake_studio.synthesizer.kokoro.weights import load_kokoro_model

                self._model, _ = load_kokoro_model(cache_dir=self._cache_dir)
            return self._model

    def voice_deltas(self, conditioning: Conditioning) -> dict[str, np.ndarray]:
        """The voice's decoder deltas, whole and from low-rank factors (`decoder.<name>` keys)."""
        shapes = {f"decoder.{n}": tuple(p.shape) for n, p in self.model.decoder.named_parameters()}
        deltas = decoder_deltas(conditioning)
        for name, delta in lowrank_deltas(lowrank_arrays(conditioning), shapes).items():
            deltas[name] = deltas[name] + delta if name in deltas else delta
        return deltas

    def _decoder_params(self, deltas: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """The decoder's parameters with this voice's deltas added (names without `decoder.`)."""
        params = dict(self.model.decoder.named_parameters())
        adapted: dict[str, torch.Tensor] = {}
        for name, delta in deltas.items():
            local = name.removeprefix("decoder.")
            if not name.startswith("decoder.") or local not in params:
                raise EngineError(f"this voice adapts {name!r}, which is not a decoder weight")
            if tuple(delta.shape) != tuple(params[local].shape):
                raise EngineError(
                    f"this voice's delta for {name} is {tuple(delta.shape)}, "
                    f"the weight is {tuple(params[local].shape)}"
                )
            adapted[local] = params[local] + torch.from_numpy(np.asarray(delta, np.float32))
        return adapted

    def adapted_params(self, conditioning: Conditioning) -> dict[str, torch.Tensor]:
        """The voice's adapted decoder parameters ({} for a voice without deltas), reused
        while the same voice keeps speaking."""
        key = _deltas_digest(conditioning)
        if key is None:
            return {}
        with self._adapted_lock:
            if self._adapted is not None and self._adapted[0] == key:
                return self._adapted[1]
            with torch.no_grad():  # a cached copy must not hold an autograd graph
                adapted = self._decoder_params(self.voice_deltas(conditioning))
            self._adapted = (key, adapted)
            return adapted

    def synthesize_ids(
        self, ids: list[int], style_row: np.ndarray, speed: float, conditioning: Conditioning
    ) -> np.ndarray:
        adapted = self.adapted_params(conditioning)
        return self.render(ids, style_row, speed, adapted, ProsodyEdit.from_info(conditioning.info))

    def render(
        self,
        ids: list[int],
        style_row: np.ndarray,
        speed: float,
        decoder_params: dict[str, torch.Tensor],
        edit: ProsodyEdit | None = None,
    ) -> np.ndarray:
        """One utterance; `decoder_params` replace the decoder's own (names without `decoder.`)."""
        model = self.model
        with self._lock, torch.inference_mode():  # one run at a time: it uses every core
            text = text_stage(model, ids, style_row, speed, edit, self.text_bfloat16)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16):
                audio = torch.func.functional_call(
                    model.decoder,
                    decoder_params,
                    (text.aligned, text.prosody.f0, text.prosody.energy, text.decoder_style),
                    strict=False,
                )
        return audio[0].float().numpy()


@dataclass(frozen=True)
class TextStage:
    """What the decoder needs from one utterance's text: stages 1-2 and the alignment."""

    aligned: torch.Tensor  # [1, 512, frames] float32
    prosody: Prosody  # durations, F0 and energy (float32), after the edit
    decoder_style: torch.Tensor  # [1, 128]


def text_stage(
    model: KokoroModel,
    ids: list[int],
    style_row: np.ndarray,
    speed: float,
    edit: ProsodyEdit | None,
    bfloat16: bool,
) -> TextStage:
    """Text encoding, prosody (with `edit`) and alignment, under bfloat16 autocast if asked.

    Against float32, bfloat16 moved 47 of 3,570 token durations by one frame and F0 by a
    median 0.03 semitones; Whisper-base WER 6.5 vs 6.2 % (50 clips, every bundled pack;
    benchmarks/streaming_bf16_text.md). Its outputs are float32: the harmonic source sums F0
    into a phase, which bfloat16 would not hold."""
    tokens = torch.tensor([[0, *ids, 0]])
    style = torch.from_numpy(np.asarray(style_row, np.float32)).reshape(1, -1)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
        features = model.encode_text(tokens)
        predicted = model.predict_prosody(features, style, speed)
        aligned = model.align(features, predicted.durations)
    predicted = Prosody(predicted.durations, predicted.f0.float(), predicted.energy.float())
    prosody = (edit or ProsodyEdit()).apply(predicted)
    decoder_style, _ = model.split_style(style)
    return TextStage(aligned.float(), prosody, decoder_style)


def _deltas_digest(conditioning: Conditioning) -> str | None:
    """A digest of the conditioning's decoder deltas and factors; None when it has none."""
    keys = sorted(
        k
        for k in conditioning.arrays
        if k.startswith(DECODER_DELTA_PREFIX) or k.startswith(LOWRANK_PREFIX)
    )
    if not keys:
        return None
    digest = hashlib.blake2b(digest_size=16)
    for key in keys:
        value = np.ascontiguousarray(conditioning.arrays[key])
        digest.update(f"{key}{value.dtype}{value.shape}".encode())
        digest.update(value.data)
    return digest.hexdigest()
