"""The PyTorch path's text stage: bfloat16 (faster before a stream's first audio) must keep the
durations and F0 of float32 up to rounding, and hand float32 curves to the decoder."""

from __future__ import annotations

import numpy as np
import torch

from deepfake_studio.synthesizer.kokoro.engine import KokoroEngine, token_ids
from deepfake_studio.synthesizer.kokoro.torch_path import ProsodyEdit, text_stage

SENTENCES = (
    "The weather is lovely today, so we walked down to the river to watch the boats.",
    "Would you like a cup of tea, or would you rather have something stronger?",
)


def test_the_bfloat16_text_stage_keeps_durations_and_pitch(kokoro_engine: KokoroEngine) -> None:
    model = kokoro_engine.torch_path.model
    for sentence in SENTENCES:
        ids = token_ids(" ".join(kokoro_engine.phonemes(sentence)), kokoro_engine._vocab)
        row = kokoro_engine.style_packs["jm_kumo"][len(ids) - 1]
        with torch.inference_mode():
            plain = text_stage(model, ids, row, 1.0, None, bfloat16=False)
            half = text_stage(model, ids, row, 1.0, None, bfloat16=True)
        for stage in (plain, half):
            assert stage.aligned.dtype == torch.float32
            assert stage.prosody.f0.dtype == torch.float32  # the source's phase sums it
            assert stage.aligned.shape[-1] == int(stage.prosody.durations.sum())
        d32, d16 = plain.prosody.durations.numpy(), half.prosody.durations.numpy()
        changed = int((d32 != d16).sum())
        assert changed <= 0.05 * len(d32), f"{changed} of {len(d32)} durations moved"
        assert np.abs(d32 - d16).max() <= 1
        assert abs(int(d16.sum()) - int(d32.sum())) <= 3
        if d16.sum() == d32.sum():
            a, b = plain.prosody.f0.numpy()[0], half.prosody.f0.numpy()[0]
            voiced = (a > 50) & (b > 50)
            semitones = np.abs(12 * np.log2(b[voiced] / a[voiced]))
            assert np.median(semitones) < 0.2, np.median(semitones)


def test_the_edit_applies_after_the_text_stage(kokoro_engine: KokoroEngine) -> None:
    model = kokoro_engine.torch_path.model
    ids = token_ids(" ".join(kokoro_engine.phonemes(SENTENCES[0])), kokoro_engine._vocab)
    row = kokoro_engine.style_packs["jf_alpha"][len(ids) - 1]
    with torch.inference_mode():
        plain = text_stage(model, ids, row, 1.0, None, bfloat16=True)
        raised = text_stage(model, ids, row, 1.0, ProsodyEdit(f0_shift_semitones=12.0), True)
    voiced = plain.prosody.f0 > 10.0
    ratio = (raised.prosody.f0[voiced] / plain.prosody.f0[voiced]).median().item()
    assert abs(ratio - 2.0) < 0.01, ratio
    assert torch.equal(raised.prosody.durations, plain.prosody.durations)
