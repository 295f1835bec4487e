"""SV2TTS training smoke test: a tiny synthesizer trained here on two real clips.

The published RTVC weights are not available offline, so this checks the other direction:
that the networks *learn* the SV2TTS mel format from real speech (teacher-forced loss falls),
and that what they learned round-trips through RTVC's checkpoint layout
(`{"model_state", "optimizer_state", "step"}`) and the engine's strict loaders.

Sizes are shrunk (the config allows it) so that 20 Adam steps take seconds on a CPU. (A tiny
WaveRNN was tried too: its cross-entropy barely moves in a few dozen steps — the marginal
mu-law entropy of speech is already 5.9 of ln 512 = 6.2 nats — so it is not tested here.)
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_studio.audio import Audio, load_audio
from deepfake_studio.encoder import SpeakerEncoder
from deepfake_studio.synthesizer import train_tacotron
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.sv2tts import (
    SV2TTSConfig,
    SV2TTSEngine,
    limit_torch_threads,
    load_tacotron,
)
from deepfake_studio.synthesizer.sv2tts_text import text_to_sequence
from deepfake_studio.synthesizer.tacotron import Tacotron, TacotronConfig
from deepfake_studio.vocoder.audio import melspectrogram
from deepfake_studio.vocoder.griffin_lim import GriffinLimConfig
from tests.conftest import skip_or_fail_in_ci

TINY_TACOTRON = TacotronConfig(
    embed_dims=64,
    encoder_dims=32,
    decoder_dims=32,
    postnet_dims=64,
    encoder_k=3,
    postnet_k=3,
    lstm_dims=128,
    num_highways=1,
    r=5,  # 5 frames per decoder step: fewer sequential steps to backpropagate through
)  # speaker_embedding_size stays 256: the GE2E encoder's output
TRAIN_STEPS = 20


def _short_reference_clips(speech_dir: Path, count: int = 2) -> list[dict[str, str]]:
    """The shortest clips with a reference transcript (LJSpeech's are ~2 s)."""
    with (speech_dir / "manifest.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["text_source"] == "reference"]
    lj = [r for r in rows if r["corpus"] == "ljspeech"] or rows
    lj.sort(key=lambda r: float(r["duration_s"]))
    chosen = [r for r in lj if (speech_dir / r["path"]).exists()][:count]
    if len(chosen) < count:
        skip_or_fail_in_ci("not enough transcribed clips in the shared speech data")
    return chosen


@pytest.fixture(scope="module")
def clips(speech_dir: Path) -> dict[str, object]:
    return make_batch(speech_dir)


def make_batch(speech_dir: Path) -> dict[str, object]:
    """Padded batch of 2 real clips: text ids, target mels, stop targets, GE2E embeddings."""
    rows = _short_reference_clips(speech_dir)
    encoder = SpeakerEncoder()  # the project's GE2E encoder (resemblyzer's weights)
    audio = TacotronConfig().audio
    wavs = [load_audio(speech_dir / r["path"], audio.sample_rate).samples for r in rows]
    ids = [text_to_sequence(r["text"]) for r in rows]
    mels = [melspectrogram(w, audio) for w in wavs]
    embeddings = np.stack([encoder.embed(w, audio.sample_rate) for w in wavs])

    n, frames = max(map(len, ids)), max(m.shape[1] for m in mels)
    frames += -frames % TINY_TACOTRON.r  # whole decoder steps
    text = torch.zeros(len(ids), n, dtype=torch.long)  # padding id 0
    target = torch.full((len(mels), audio.n_mels, frames), -audio.max_abs_value)  # silence
    stop = torch.ones(len(mels), frames)
    for i, (seq, mel) in enumerate(zip(ids, mels, strict=True)):
        text[i, : len(seq)] = torch.tensor(seq)
        target[i, :, : mel.shape[1]] = torch.from_numpy(mel)
        stop[i, : mel.shape[1] - 1] = 0.0  # 1 from the last real frame on, as RTVC labels it
    return {"rows": rows, "wavs": wavs, "encoder": encoder, "text": text, "mels": target,
            "stop": stop, "embeddings": torch.from_numpy(embeddings)}  # fmt: skip


def tacotron_loss(model: Tacotron, batch: dict[str, object], seed: int) -> torch.Tensor:
    """RTVC's synthesizer loss, exactly as `train synthesizer --model tacotron` computes it."""
    generator = torch.Generator().manual_seed(seed)  # prenet dropout is always on
    return train_tacotron.tacotron_loss(model, batch, generator)[0]  # type: ignore[arg-type]


def test_tiny_tacotron_learns_real_clips_and_loads_strictly(
    clips: dict[str, object], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = Tacotron(TINY_TACOTRON).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    with limit_torch_threads(1):
        for step in range(TRAIN_STEPS):
            loss = tacotron_loss(model, clips, seed=step)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
            model.step += 1
    assert all(np.isfinite(losses))
    first, last = losses[0], float(np.mean(losses[-3:]))
    assert last < 0.7 * first, f"loss did not fall enough: {first:.3f} → {last:.3f}"

    # RTVC's synthesizer checkpoint layout, read back by the engine's strict loader.
    path = tmp_path / "synthesizer.pt"
    torch.save({"model_state": model.state_dict(), "optimizer_state": optimizer.state_dict(),
                "step": int(model.step)}, path)  # fmt: skip
    loaded = load_tacotron(path, TINY_TACOTRON)
    assert not loaded.training and int(loaded.step) == TRAIN_STEPS
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with torch.no_grad(), limit_torch_threads(1):
        eval_loss = float(tacotron_loss(loaded, clips, seed=123))
    assert eval_loss < 0.8 * first  # batch-norm statistics came along too

    # The whole engine on the trained checkpoint: the same GE2E weights as encoder.pt, so the
    # engine's own conditioning gives the embeddings the synthesizer was trained on.
    encoder: SpeakerEncoder = clips["encoder"]  # type: ignore[assignment]
    torch.save({"model_state": encoder.model.state_dict(), "optimizer_state": None, "step": 1},
               tmp_path / "encoder.pt")  # fmt: skip
    config = SV2TTSConfig(tacotron=TINY_TACOTRON, max_frames=60,
                          griffin_lim=replace(GriffinLimConfig(), iterations=4))  # fmt: skip
    engine = SV2TTSEngine(tmp_path, vocoder="griffinlim", config=config)
    wav = clips["wavs"][0]  # type: ignore[index]
    voice = engine.condition(Audio(wav, 16000), encoder=None)  # type: ignore[arg-type]
    assert isinstance(voice, Conditioning)
    assert np.allclose(voice.arrays["embedding"], clips["embeddings"][0].numpy(), atol=1e-5)  # type: ignore[index]
    samples = engine.synthesize(clips["rows"][0]["text"], voice)  # type: ignore[index]
    assert samples.dtype == np.float32 and len(samples) >= 200 and np.isfinite(samples).all()
