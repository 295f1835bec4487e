"""Streamed vs whole-sentence audio by `StreamConfig` (issue 24 item 1): what the windows cost.

Each sentence is rendered whole on the PyTorch path and streamed window by window with each
setting; Whisper-base transcribes both (WER against the text, pooled over words) and the
log-mel L1 between them is taken. Eight sentences (the one-sentence text and the long text of
`bench_streaming.py`, and two more) × two bundled packs (jf_alpha, jm_kumo). No timing here:
a setting's cost in first audio is its first window's frames plus context.

With `--corpus-sentences N`, N more sentences: distinct reference transcripts (6-30 words) of
the shared corpus's VCTK and LJ Speech recordings, in a seeded order (benchmark only: the
project does not need the data). Per setting, clips whose streamed transcript has more / fewer
word errors than the whole one are counted, with a two-sided sign test on the two counts:
whether streaming loses words at all, beyond Whisper's own scatter.

    .venv/bin/python benchmarks/streaming_fidelity.py [--overwrite]
    .venv/bin/python benchmarks/streaming_fidelity.py --corpus-sentences 32 \
        --packs jf_alpha jm_kumo jf_nezumi --settings shipped "context 0.6 s" \
        --out benchmarks/streaming_fidelity_large
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from _output import add_overwrite_flag, refuse_to_overwrite
from bench_streaming import LONG_TEXT, ONE_SENTENCE

from deepfake_studio.evaluation.asr import Transcriber, word_error_rate
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.synthesizer.kokoro.engine import STYLE_DIM, KokoroEngine, token_ids
from deepfake_studio.synthesizer.kokoro.parity import log_mel_l1
from deepfake_studio.synthesizer.kokoro.streaming import StreamConfig, render_stream

HERE = Path(__file__).resolve().parent
PACKS = ("jf_alpha", "jm_kumo")
SHIPPED = StreamConfig()
SETTINGS = {
    "shipped": SHIPPED,  # first window 0.4 s, context 0.3 s
    "frame-rate blocks per window (before session 18)": replace(
        SHIPPED, whole_sentence_frame_rate=False
    ),
    "generator statistics pooled over the windows so far": replace(
        SHIPPED, generator_running_stats=True
    ),
    "first window 0.6 s": replace(SHIPPED, first_window_frames=24),
    "context 0.4 s": replace(SHIPPED, context_frames=16),
    "context 0.5 s": replace(SHIPPED, context_frames=20),
    "context 0.6 s": replace(SHIPPED, context_frames=24),
    "probes (25 % of the rest)": replace(SHIPPED, probe_fraction=0.25),
    "the whole lead-in streamed (before session 20)": replace(SHIPPED, lead_in_frames=None),
    "lead-in with the full left context": replace(SHIPPED, lead_in_context_frames=12),
}


def sentences() -> list[str]:
    long_parts = [s.strip().rstrip(".") + "." for s in LONG_TEXT.split(". ") if s.strip()]
    extra = [
        "Ships passed safely through the narrow channel all winter long, and nobody knew his name.",
        "Please call me back after lunch.",
    ]
    return [ONE_SENTENCE, *extra, *long_parts[:5]]


def corpus_sentences(count: int, seed: int = 24) -> list[str]:
    """Distinct reference transcripts of 6-30 words from the shared corpus (VCTK, LJ Speech)."""
    import csv
    import random

    from deepfake_studio.evaluation.speakers import data_root

    with open(data_root() / "speech" / "manifest.csv", newline="", encoding="utf-8") as f:
        texts = sorted(
            {
                r["text"].strip()
                for r in csv.DictReader(f)
                if r["text_source"] == "reference"
                and r["corpus"] in ("vctk", "ljspeech")
                and 6 <= len(r["text"].split()) <= 30
            }
        )
    random.Random(seed).shuffle(texts)
    if len(texts) < count:
        raise SystemExit(f"only {len(texts)} corpus sentences, asked for {count}")
    return texts[:count]


def sign_test(more: int, fewer: int) -> float:
    """Two-sided binomial p-value of `more` vs `fewer` under p = 1/2 (ties left out)."""
    n = more + fewer
    if n == 0:
        return 1.0
    k = min(more, fewer)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus-sentences", type=int, default=0)
    parser.add_argument("--packs", nargs="+", default=list(PACKS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=HERE / "streaming_fidelity")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out = args.out
    refuse_to_overwrite([out.with_suffix(".md"), out.with_suffix(".json")], args.overwrite)
    settings = {name: SETTINGS[name] for name in args.settings}

    engine = KokoroEngine()
    torch_kokoro = engine.torch_path
    transcriber = Transcriber()
    texts = sentences() + corpus_sentences(args.corpus_sentences)
    words = 0
    whole_errors = 0.0
    rows = {name: {"errors": 0.0, "log_mel": [], "misheard": [], "better": 0} for name in settings}
    for pack in args.packs:
        for text in texts:
            ids = token_ids(" ".join(engine.phonemes(text)), engine._vocab)
            row = engine.style_packs[pack][len(ids) - 1].reshape(1, STYLE_DIM)
            whole = torch_kokoro.render(ids, row, 1.0, {})
            n = len(text.split())
            words += n
            heard_whole = transcriber.transcribe(whole, 24_000)
            whole_errors += word_error_rate(text, heard_whole) * n
            for name, config in settings.items():
                pieces = list(render_stream(torch_kokoro, ids, row, 1.0, {}, config=config))
                streamed = np.concatenate(pieces)
                heard = transcriber.transcribe(streamed, 24_000)
                wer = word_error_rate(text, heard)
                rows[name]["errors"] += wer * n
                # A stream's first sentence starts 0.1 s before its speech
                # (`StreamConfig.lead_in_frames`): compare with the same stretch of the whole.
                rows[name]["log_mel"].append(
                    log_mel_l1(streamed, whole[len(whole) - len(streamed) :])
                )
                if wer > word_error_rate(text, heard_whole):
                    rows[name]["misheard"].append(
                        {"pack": pack, "whole": heard_whole, "streamed": heard}
                    )
                elif wer < word_error_rate(text, heard_whole):
                    rows[name]["better"] += 1
            print(pack, text[:40], flush=True)
    data = {
        "cpu": cpu_model(),
        "load_end": os.getloadavg(),
        "clips": len(args.packs) * len(texts),
        "packs": args.packs,
        "corpus_sentences": args.corpus_sentences,
        "words": words,
        "wer_whole": whole_errors / words,
        "settings": {
            name: {
                "first_window_frames": settings[name].first_window_frames,
                "context_frames": settings[name].context_frames,
                # Left context of a first window that starts after a lead-in (0: none).
                "lead_in_context_frames": (
                    settings[name].lead_in_context_frames
                    if settings[name].lead_in_frames is not None
                    else 0
                ),
                "probe_fraction": settings[name].probe_fraction,
                "wer": r["errors"] / words,
                "log_mel_median": statistics.median(r["log_mel"]),
                "log_mel_max": max(r["log_mel"]),
                "misheard": r["misheard"],
                "heard_better": r["better"],
                "sign_test_p": sign_test(len(r["misheard"]), r["better"]),
            }
            for name, r in rows.items()
        },
    }
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    lines = [
        "# Streamed vs whole-sentence audio by stream setting (issue 24)",
        "",
        f"Command: `{' '.join(['streaming_fidelity.py', *sys.argv[1:]])}`; load average at the "
        f"end {data['load_end'][0]:.1f} (no timing here, so load does not matter).",
        "",
        f"`benchmarks/streaming_fidelity.py`. {data['clips']} clips ({len(texts)} sentences"
        + (f", {args.corpus_sentences} of them corpus transcripts" if args.corpus_sentences else "")
        + f" × {', '.join(args.packs)}; {words} words), PyTorch path, decoder and text stage "
        f"as shipped on this CPU ({data['cpu']}). Whole-sentence Whisper-base WER "
        f"**{data['wer_whole'] * 100:.1f} %**. First-window decode: its frames plus one "
        "context on the right, and a few frames of the silence on its left when the stream "
        "starts just before the speech (lead-in); every later window pays "
        "a context on both sides. Clips whose streamed transcript has more errors than the "
        "whole one are in the JSON.",
        "",
        "| setting | first window decoded (frames) | WER streamed "
        "| log-mel L1 to whole (median / max) | clips misheard more | fewer | sign test p |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in data["settings"].items():
        first = r["first_window_frames"] + r["context_frames"] + r.get("lead_in_context_frames", 0)
        probes = " + probes" if r["probe_fraction"] > 0 else ""
        lines.append(
            f"| {name} | {first}{probes} | {r['wer'] * 100:.1f} % | "
            f"{r['log_mel_median']:.3f} / {r['log_mel_max']:.3f} | {len(r['misheard'])} | "
            f"{r['heard_better']} | {r['sign_test_p']:.2f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
