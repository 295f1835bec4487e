"""Where does streamed audio lose words? A diagnosis of issue 24's streamed-vs-whole gap.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/streaming_norm_oracle.py 40 jf_alpha,jm_kumo
    (~35 min on 2 shared AMD EPYC cores; prints the table)

Every AdaIN layer of Kokoro's decoder normalises over the frames it sees, so a window's
statistics differ from the whole sentence's. Here the whole sentence is decoded once, each
layer's statistics recorded (in call order), and the stream's windows are decoded again with
those "oracle" statistics substituted for some layers: the frame-rate blocks (the decoder's
encode block and four decode blocks: 10 norms) or the generator's (the rest), or all.
Whisper-base WER against the text and log-mel L1 against the whole decode, per variant; clips
heard worse / better than the whole one. Sentences as `streaming_fidelity.py` (its 8, then
corpus transcripts). Not a shippable stream: the oracle needs the whole decode first.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable

import numpy as np
import torch
from streaming_fidelity import corpus_sentences, sentences

from deepfake_studio.evaluation.asr import Transcriber, word_error_rate
from deepfake_studio.synthesizer.kokoro import streaming as st
from deepfake_studio.synthesizer.kokoro.engine import (
    STYLE_DIM,
    KokoroEngine,
    token_ids,
)
from deepfake_studio.synthesizer.kokoro.model import AdaIN1d
from deepfake_studio.synthesizer.kokoro.parity import log_mel_l1

FRAME_RATE_NORMS = 2 + 2 * 4  # the encode block and four decode blocks, two norms each
Stats = list[tuple[torch.Tensor, torch.Tensor]]


def _normalise(norm: AdaIN1d, x: torch.Tensor, style: torch.Tensor, mean, var) -> torch.Tensor:  # type: ignore[no-untyped-def]
    gamma, beta = norm.fc(style).unsqueeze(-1).chunk(2, dim=1)
    return (1 + gamma) * (x.float() - mean) / torch.sqrt(var + 1e-5) + beta


class Recorder(st.Norms):
    """The model's statistics, recorded per call (call order = layer order)."""

    def __init__(self) -> None:
        self.stats: Stats = []

    def __call__(self, norm: AdaIN1d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        self.stats.append((x32.mean(-1, keepdim=True), x32.var(-1, unbiased=False, keepdim=True)))
        return _normalise(norm, x, style, *self.stats[-1])


class Oracle(st.Norms):
    """The recorded whole-sentence statistics for the calls `use` picks, the window's own
    for the rest."""

    def __init__(self, stats: Stats, use: Callable[[int], bool]) -> None:
        self.stats, self.use, self.calls = stats, use, 0

    def __call__(self, norm: AdaIN1d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        i, self.calls = self.calls, self.calls + 1
        return _normalise(norm, x, style, *self.stats[i]) if self.use(i) else norm(x, style)


VARIANTS: dict[str, Callable[[int], bool] | None] = {
    "shipped": None,
    "oracle frame-rate blocks": lambda i: i < FRAME_RATE_NORMS,
    "oracle generator": lambda i: i >= FRAME_RATE_NORMS,
    "oracle all": lambda i: True,
}


def main() -> None:
    count, packs = int(sys.argv[1]), sys.argv[2].split(",")
    engine = KokoroEngine()
    torch_kokoro = engine.torch_path
    model = torch_kokoro.model
    asr = Transcriber()
    texts = (sentences() + corpus_sentences(32))[:count]
    results = {k: {"errors": 0.0, "log_mel": [], "worse": 0, "better": 0} for k in VARIANTS}
    words, whole_errors = 0, 0.0
    config = st.StreamConfig()
    for pack in packs:
        for text in texts:
            ids = token_ids(" ".join(engine.phonemes(text)), engine._vocab)
            row = engine.style_packs[pack][len(ids) - 1].reshape(1, STYLE_DIM)
            plan = st.plan_sentence(model, ids, row, 1.0, None, torch_kokoro.text_bfloat16)
            recorder = Recorder()
            segments = [(0, plan.frames)]
            whole = st.decode_segments(model, plan, segments, {}, recorder, torch_kokoro.bfloat16)
            n = len(text.split())
            words += n
            whole_wer = word_error_rate(text, asr.transcribe(whole, 24_000))
            whole_errors += whole_wer * n
            for name, use in VARIANTS.items():

                def decode(lo: int, hi: int, plan=plan, stats=recorder.stats, use=use):  # type: ignore[no-untyped-def]
                    norms = st.Norms() if use is None else Oracle(stats, use)
                    return st.decode_segments(
                        model, plan, [(lo, hi)], {}, norms, torch_kokoro.bfloat16
                    )

                audio = np.concatenate(list(st.stream_windows(decode, plan.frames, config)))
                wer = word_error_rate(text, asr.transcribe(audio, 24_000))
                r = results[name]
                r["errors"] += wer * n
                r["log_mel"].append(log_mel_l1(audio, whole))
                r["worse"] += wer > whole_wer
                r["better"] += wer < whole_wer
            print(pack, text[:30], flush=True)
    print(f"clips {len(packs) * len(texts)} words {words} whole WER {whole_errors / words:.1%}")
    for name, r in results.items():
        print(
            f"{name:28s} WER {r['errors'] / words:6.1%}  log-mel median "
            f"{statistics.median(r['log_mel']):.3f}  worse {r['worse']} better {r['better']}"
        )


if __name__ == "__main__":
    main()
