"""Does emulating the int8 ONNX's run-time activation quantisation make the PyTorch Kokoro
render like the ONNX? (`KokoroModel.set_onnx_int8_emulation`, `model.py`.)

Parity (cheap): one held-out sentence per bundled pack, the ONNX run with its durations, F0
and energy exposed (`parity.OnnxWithIntermediates`); the PyTorch model, plain float and
emulating the ONNX's uint8 activations, is compared with it three ways:

- `decoder`: the PyTorch decoder fed the ONNX's durations, F0 and energy (the generator only);
- `forced`: the whole PyTorch model with the ONNX's durations (its own F0 and energy);
- `free`: the whole PyTorch model, its own durations (as `TorchKokoro` speaks).

Each: waveform correlation with the ONNX (not for `free`), log-mel L1 (0-12 kHz, 80 mels),
RMS ratio and the level per band of `path_similarity.py --bands` (PyTorch minus ONNX, dB).
Also the seconds per decoder forward+backward on a 2 s crop (the standard fit's step).

    nice -n 10 .venv/bin/python benchmarks/onnx_int8_emulation.py parity jf_alpha jm_kumo jf_nezumi
    nice -n 10 .venv/bin/python benchmarks/onnx_int8_emulation.py step-time
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from path_similarity import BAND_EDGES_HZ, band_levels
from style_fit_dev import HELD_OUT

from deepfake_studio.synthesizer.kokoro import parity
from deepfake_studio.synthesizer.kokoro.engine import KokoroEngine, load_vocab, token_ids
from deepfake_studio.synthesizer.kokoro.model import KokoroModel
from deepfake_studio.synthesizer.kokoro.weights import bundled_onnx_path

OUT = Path(__file__).resolve().parent / "onnx_int8_emulation.json"


def render(
    model: KokoroModel, tokens: torch.Tensor, style: torch.Tensor, run: parity.OnnxRun, how: str
) -> np.ndarray:
    with torch.inference_mode():
        features = model.encode_text(tokens)
        forced = None if how == "free" else torch.from_numpy(run.durations)
        prosody = model.predict_prosody(features, style, durations=forced)
        f0, energy = prosody.f0, prosody.energy
        if how == "decoder":
            f0 = torch.from_numpy(run.f0)[None]
            energy = torch.from_numpy(run.energy)[None]
        aligned = model.align(features, prosody.durations)
        return model.decode(aligned, f0, energy, style)[0].numpy()


def compare(audio: np.ndarray, onnx: np.ndarray, how: str) -> dict[str, object]:
    n = min(len(audio), len(onnx))
    bands = [t - o for t, o in zip(band_levels(audio[:n]), band_levels(onnx[:n]), strict=True)]
    row: dict[str, object] = {
        "log_mel_l1": round(parity.log_mel_l1(audio, onnx), 4),
        "rms_ratio": round(float(np.sqrt(np.mean(audio**2)) / np.sqrt(np.mean(onnx**2))), 3),
        "band_db": dict(zip(BAND_EDGES_HZ[1:], [round(b, 2) for b in bands], strict=True)),
        "band_max_abs_db": round(max(abs(b) for b in bands), 2),
    }
    if how != "free":
        row["correlation"] = round(parity.correlation(audio, onnx), 4)
    else:
        row["aligned_log_mel_l1"] = round(parity.aligned_log_mel_l1(audio, onnx), 4)
        row["samples_torch_vs_onnx"] = [len(audio), len(onnx)]
    return row


def parity_run(packs: list[str]) -> dict[str, object]:
    kokoro = KokoroEngine()
    model = kokoro.torch_path.model
    onnx_runner = parity.OnnxWithIntermediates(bundled_onnx_path())
    ids = token_ids(kokoro.phonemes(HELD_OUT[0])[0], load_vocab())
    tokens = torch.tensor([[0, *ids, 0]])
    results: dict[str, object] = {}
    for pack in packs:
        row_np = kokoro.style_packs[pack][len(ids) - 1]
        run = onnx_runner.run(tokens.numpy(), row_np)
        style = torch.from_numpy(row_np)[None]
        per_pack: dict[str, object] = {}
        for emulate in (False, True):
            model.set_onnx_int8_emulation(emulate)
            for how in ("decoder", "forced", "free"):
                audio = render(model, tokens, style, run, how)
                key = f"{'emulated' if emulate else 'plain'} {how}"
                per_pack[key] = compare(audio, run.audio, how)
                if how == "free":
                    with torch.inference_mode():
                        feats = model.encode_text(tokens)
                        own = model.predict_prosody(feats, style).durations.numpy()
                    per_pack[key]["durations_equal"] = round(
                        float((own == run.durations).mean()), 3
                    )
                print(pack, key, per_pack[key], flush=True)
        model.set_onnx_int8_emulation(False)
        results[pack] = per_pack
    return results


def step_time(repeats: int = 5) -> dict[str, object]:
    """Seconds per decoder forward + backward to the style on a 2 s crop (fp32, as the fit),
    and per prosody forward + backward (LSTMs) on a 10 s utterance's frames."""
    kokoro = KokoroEngine()
    model = kokoro.torch_path.model
    for p in model.parameters():
        p.requires_grad_(False)
    frames = 80  # 2 s
    aligned = torch.randn(1, 512, frames) * 0.3
    f0 = torch.full((1, 2 * frames), 180.0)
    energy = torch.zeros(1, 2 * frames)
    ids = token_ids(kokoro.phonemes(" ".join(HELD_OUT))[0], load_vocab())
    tokens = torch.tensor([[0, *ids, 0]])
    out: dict[str, object] = {"threads": torch.get_num_threads()}
    for emulate in (False, True):
        model.set_onnx_int8_emulation(emulate)
        for part in ("decoder 2 s crop", "prosody"):
            times = []
            for _ in range(repeats):
                style = torch.tensor(kokoro.style_packs["jf_alpha"][len(ids) - 1][None])
                style.requires_grad_(True)
                start = time.perf_counter()
                if part == "prosody":
                    feats = model.encode_text(tokens)
                    d = model.predictor.duration_features(feats.prosody, style[:, 128:])
                    durations = model.predictor.durations(d, 1.0)[0]
                    rounded = torch.round(durations).clamp(min=1).long().detach()
                    f0p = model.predict_prosody(feats, style, durations=rounded).f0
                    loss = durations.sum() + f0p.mean()
                else:
                    loss = model.decode(aligned, f0, energy, style).abs().mean()
                loss.backward()
                times.append(time.perf_counter() - start)
            key = f"{'emulated' if emulate else 'plain'} {part}"
            out[key] = {"median_s": round(statistics.median(times), 3), "all_s": times}
            print(key, out[key], flush=True)
    model.set_onnx_int8_emulation(False)
    return out


def save(section: str, value: object) -> None:
    data = json.loads(OUT.read_text()) if OUT.is_file() else {}
    data[section] = value
    OUT.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "parity":
        save("parity", parity_run(sys.argv[2:]))
    elif sys.argv[1] == "step-time":
        save("step_time", step_time())
