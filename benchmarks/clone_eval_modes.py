"""Every enrollment mode in one table (issue 19 item 6), from `eval clone` runs on the same
speakers.

`eval clone` measures one fitted mode per run beside the fixed voices (quick, the search and
the packs are in every run). This script reads several such result files of the same split
and speakers and writes one table: each mode's normalised similarity is computed within the
run that measured it (that run's Piper baseline and same-speaker score), so no number is
moved between runs; modes measured in more than one run (quick, the packs) are shown per run,
which also shows the run-to-run spread.

    .venv/bin/python benchmarks/clone_eval_modes.py benchmarks/clone_eval_test_s15.json \
        benchmarks/clone_eval_test_s15_best.json --out benchmarks/clone_eval_test_modes.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _output import add_overwrite_flag, refuse_to_overwrite

# Row order and what each mode is; the keys are `eval clone`'s method names.
MODES = {
    "fixed_pack": "Kokoro's default pack (no conditioning)",
    "best_pack": "closest bundled pack by GE2E, rate-matched (the old directions' screen)",
    "search": "the black-box style search (quick before session 15)",
    "clone": "`quick`: the style encoder",
    "standard": "`standard` (default): gradient style fit seeded by the style encoder",
    "best": "`best`: standard + low-rank decoder adaptation (PyTorch path)",
}


def norm(row: dict, mode: str) -> float:
    return (row[mode]["sim"] - row["stranger"]) / max(1e-6, row["same"] - row["stranger"])


def table(runs: list[tuple[str, dict]]) -> str:
    speakers = list(runs[0][1]["speakers"])
    for name, data in runs[1:]:
        if list(data["speakers"]) != speakers:
            raise SystemExit(f"{name} has other speakers than {runs[0][0]}")
    lines = [
        f"# Clone evaluation: every mode, {runs[0][1]['settings']['split']} speakers "
        f"({len(speakers)})",
        "",
        "Made by `benchmarks/clone_eval_modes.py` from: "
        + "; ".join(
            f"`{name}` (load average {d.get('load_average', '?')} at its last write)"
            for name, d in runs
        )
        + ". Normalised similarity: the independent judge, 0 = the Piper voice, 1 = another "
        "recording of the speaker, within each run. WER: Whisper-base on 2 sentences per "
        "speaker. RTF: `Studio.clone` wall time per second of audio; enrollment seconds "
        "as measured in that run (shared cores inflate both: see results.md for idle "
        "figures).",
        "",
        "| mode | run | norm. similarity | min over speakers | WER | RTF | enroll s | what |",
        "|---|---|---|---|---|---|---|---|",
    ]
    columns: list[tuple[str, str, dict]] = []
    for mode, about in MODES.items():
        for name, data in runs:
            rows = data["speakers"]
            if not all(mode in r for r in rows.values()):
                continue
            columns.append((mode, name, rows))
            norms = [norm(r, mode) for r in rows.values()]
            wer = statistics.fmean(r[mode]["wer"] for r in rows.values())
            rtf = statistics.fmean(r[mode]["rtf"] for r in rows.values())
            enroll = [r[mode]["enroll_s"] for r in rows.values() if "enroll_s" in r[mode]]
            lines.append(
                f"| {mode} | {Path(name).stem} | {statistics.fmean(norms):.3f} | "
                f"{min(norms):.3f} | {100 * wer:.1f} % | {rtf:.2f} | "
                + (f"{statistics.median(enroll):.0f} (median)" if enroll else "–")
                + f" | {about} |"
            )
    lines += [
        "",
        "Per speaker (normalised similarity; run in brackets where a mode was in several):",
        "",
        "| speaker | corpus | "
        + " | ".join(
            mode + (f" ({Path(name).stem})" if sum(m == mode for m, _, _ in columns) > 1 else "")
            for mode, name, _ in columns
        )
        + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for speaker in speakers:
        corpus = runs[0][1]["speakers"][speaker]["corpus"]
        cells = [f"{norm(rows[speaker], mode):.3f}" for mode, _, rows in columns]
        lines.append(f"| {speaker} | {corpus} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="eval clone result files (.json)")
    parser.add_argument("--out", type=Path, required=True, help="the markdown table to write")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    refuse_to_overwrite([args.out], args.overwrite)
    runs = [(str(p), json.loads(p.read_text())) for p in args.runs]
    args.out.write_text(table(runs))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
