"""Streamed vs whole-sentence audio by `StreamConfig` (issue 24 item 1): what the windows cost.

Each sentence is rendered whole on the PyTorch path and streamed window by window with each
setting; Whisper-base transcribes both (WER against the text, pooled over words) and the
log-mel L1 between them is taken. Eight sentences (the one-sentence text and the long text of
`bench_streaming.py`, and two more) × two bundled packs (jf_alpha, jm_kumo). No timing here:
a setting's cost in first audio is its first window's frames plus context.

    .venv/bin/python benchmarks/streaming_fidelity.py [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
    "shipped (first 0.4 s, 0.3 s context)": SHIPPED,
    "first window 0.6 s": replace(SHIPPED, first_window_frames=24),
    "context 0.4 s": replace(SHIPPED, context_frames=16),
    "context 0.5 s": replace(SHIPPED, context_frames=20),
    "context 0.6 s": replace(SHIPPED, context_frames=24),
    "probes (25 % of the rest)": replace(SHIPPED, probe_fraction=0.25),
}


def sentences() -> list[str]:
    long_parts = [s.strip().rstrip(".") + "." for s in LONG_TEXT.split(". ") if s.strip()]
    extra = [
        "Ships passed safely through the narrow channel all winter long, and nobody knew his name.",
        "Please call me back after lunch.",
    ]
    return [ONE_SENTENCE, *extra, *long_parts[:5]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_overwrite_flag(parser)
    args = parser.parse_args()
    out = HERE / "streaming_fidelity"
    refuse_to_overwrite([out.with_suffix(".md"), out.with_suffix(".json")], args.overwrite)

    engine = KokoroEngine()
    torch_kokoro = engine.torch_path
    transcriber = Transcriber()
    texts = sentences()
    words = 0
    whole_errors = 0.0
    rows = {name: {"errors": 0.0, "log_mel": [], "misheard": []} for name in SETTINGS}
    for pack in PACKS:
        for text in texts:
            ids = token_ids(" ".join(engine.phonemes(text)), engine._vocab)
            row = engine.style_packs[pack][len(ids) - 1].reshape(1, STYLE_DIM)
            whole = torch_kokoro.render(ids, row, 1.0, {})
            n = len(text.split())
            words += n
            heard_whole = transcriber.transcribe(whole, 24_000)
            whole_errors += word_error_rate(text, heard_whole) * n
            for name, config in SETTINGS.items():
                pieces = list(render_stream(torch_kokoro, ids, row, 1.0, {}, config=config))
                streamed = np.concatenate(pieces)
                heard = transcriber.transcribe(streamed, 24_000)
                wer = word_error_rate(text, heard)
                rows[name]["errors"] += wer * n
                rows[name]["log_mel"].append(log_mel_l1(streamed, whole))
                if wer > word_error_rate(text, heard_whole):
                    rows[name]["misheard"].append(
                        {"pack": pack, "whole": heard_whole, "streamed": heard}
                    )
            print(pack, text[:40], flush=True)
    data = {
        "cpu": cpu_model(),
        "load_end": os.getloadavg(),
        "clips": len(PACKS) * len(texts),
        "words": words,
        "wer_whole": whole_errors / words,
        "settings": {
            name: {
                "first_window_frames": SETTINGS[name].first_window_frames,
                "context_frames": SETTINGS[name].context_frames,
                "probe_fraction": SETTINGS[name].probe_fraction,
                "wer": r["errors"] / words,
                "log_mel_median": statistics.median(r["log_mel"]),
                "log_mel_max": max(r["log_mel"]),
                "misheard": r["misheard"],
            }
            for name, r in rows.items()
        },
    }
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    lines = [
        "# Streamed vs whole-sentence audio by stream setting (issue 24)",
        "",
        f"`benchmarks/streaming_fidelity.py`. {data['clips']} clips ({len(texts)} sentences × "
        f"{', '.join(PACKS)}; {words} words), PyTorch path, decoder and text stage as shipped on "
        f"this CPU ({data['cpu']}). Whole-sentence Whisper-base WER "
        f"**{data['wer_whole'] * 100:.1f} %**. First-window decode: its frames plus one "
        "context on the right (it starts at the sentence's start); every later window pays "
        "a context on both sides. Clips whose streamed transcript has more errors than the "
        "whole one are in the JSON.",
        "",
        "| setting | first window decoded (frames) | WER streamed "
        "| log-mel L1 to whole (median / max) | clips misheard more |",
        "|---|---|---|---|---|",
    ]
    for name, r in data["settings"].items():
        first = r["first_window_frames"] + r["context_frames"]
        probes = " + probes" if r["probe_fraction"] > 0 else ""
        lines.append(
            f"| {name} | {first}{probes} | {r['wer'] * 100:.1f} % | "
            f"{r['log_mel_median']:.3f} / {r['log_mel_max']:.3f} | {len(r['misheard'])} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
