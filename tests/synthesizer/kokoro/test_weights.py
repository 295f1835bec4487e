"""Converting the bundled int8 ONNX into the PyTorch state dict, and its cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from deepfake_studio.errors import EngineError
from deepfake_studio.synthesizer.kokoro.int8_emulation import Int8Conv1d, Int8Linear, Int8LSTM
from deepfake_studio.synthesizer.kokoro.model import KokoroModel, KokoroModelConfig
from deepfake_studio.synthesizer.kokoro.weights import (
    bundled_onnx_path,
    load_state_dict,
    module_path,
)


def test_node_names_map_to_module_paths() -> None:
    assert module_path("/encoder/F0.1/conv1/Conv_quant") == "predictor.F0.1.conv1"
    assert module_path("/encoder/text_encoder/cnn.0/cnn.0.0/Conv_quant") == "text_encoder.cnn.0.0"
    assert (
        module_path("/decoder/decoder/generator/ups.0/ConvTranspose") == "decoder.generator.ups.0"
    )
    layer = "/encoder/bert/encoder/albert_layer_groups.0/albert_layers.0"
    assert module_path(f"{layer}/attention/query_3/MatMul_quant") == "bert.layer.attention.query"


def test_the_layers_that_emulate_int8_are_those_the_onnx_quantises() -> None:
    """Int8Conv1d / Int8Linear / Int8LSTM sit exactly where the graph has ConvInteger,
    MatMulInteger and DynamicQuantizeLSTM (and the config switches all of them)."""
    graph = onnx.load(str(bundled_onnx_path())).graph
    quantised = {
        module_path(n.name)
        for n in graph.node
        if n.op_type in ("ConvInteger", "MatMulInteger", "DynamicQuantizeLSTM")
    }
    model = KokoroModel(KokoroModelConfig(emulate_onnx_int8=True))
    emulating = {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, Int8Conv1d | Int8Linear | Int8LSTM)
    }
    assert set(emulating) == quantised
    assert len(quantised) == 87 + 82 + 6
    assert all(m.emulate_onnx_int8 for m in emulating.values()) and model.emulates_onnx_int8
    model.set_onnx_int8_emulation(False)
    assert not any(m.emulate_onnx_int8 for m in emulating.values())


def test_conversion_is_complete_cached_and_reused(
    tmp_path: Path, kokoro_torch: KokoroModel
) -> None:
    model = KokoroModel()
    state, first = load_state_dict(model, bundled_onnx_path(), cache_dir=tmp_path)
    assert first.converted and first.cache_file.is_file()
    assert set(state) == set(model.state_dict())
    assert all(np.isfinite(v.numpy()).all() for v in state.values())
    assert list(tmp_path.iterdir()) == [first.cache_file]  # no temp file left behind
    again, second = load_state_dict(model, bundled_onnx_path(), cache_dir=tmp_path)
    assert not second.converted and second.cache_file == first.cache_file
    assert second.seconds < first.seconds
    # the session model (from the user cache) holds the very same weights
    reference = kokoro_torch.state_dict()
    for key in ("decoder.generator.conv_post.weight", "bert.layer.ffn.weight"):
        assert np.array_equal(again[key].numpy(), reference[key].numpy())
    # a damaged cache is rebuilt, not trusted
    first.cache_file.write_bytes(b"not a torch file")
    _, third = load_state_dict(model, bundled_onnx_path(), cache_dir=tmp_path)
    assert third.converted


def test_a_corrupt_onnx_fails_with_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(bundled_onnx_path().read_bytes()[:5_000_000])
    with pytest.raises(EngineError) as err:
        load_state_dict(KokoroModel(), broken, cache_dir=tmp_path / "cache")
    assert "\n" not in str(err.value) and "broken.onnx" in str(err.value)


def test_an_onnx_of_another_shape_fails_with_one_line(tmp_path: Path) -> None:
    graph = onnx.load(str(bundled_onnx_path()))
    for init in graph.graph.initializer:
        if init.name == "decoder.decoder.generator.conv_post.bias":
            init.CopyFrom(numpy_helper.from_array(np.zeros(11, np.float32), init.name))
    other = tmp_path / "other.onnx"
    onnx.save(graph, str(other))
    with pytest.raises(EngineError) as err:
        load_state_dict(KokoroModel(), other, cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert "\n" not in message and "conv_post.bias" in message and "(11,)" in message
