"""The table of benchmarks/detector_training_compare.md, rebuilt from the files each detector
shipped with (no scores are typed in by hand).

    .venv/bin/python benchmarks/detector_training_compare.py

Each row reads, at the commit that shipped that model, `benchmarks/detector_eval.json`
(`deepfake-studio eval detect` on the test speakers) and the model's `detector.json`
(features, dev EER, threshold). The last row reads the working tree. Needs the git history.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = "benchmarks/detector_eval.json"
CARD = "src/deepfake_studio/detector/weights/detector.json"
# (label, commit; None = the working tree)
MODELS: tuple[tuple[str, str | None], ...] = (
    ("session 4: 3,660 clips, online augmentation, 80 LFCC / 25 ms", "b1f1648"),
    ("session 5 (shipped): the same + 160 LFCC of 256 bands / 50 ms", None),
)


def load(path: str, commit: str | None) -> dict:
    if commit is None:
        return json.loads((ROOT / path).read_text(encoding="utf-8"))
    shown = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:{path}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(shown.stdout)


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def row(label: str, commit: str | None) -> str:
    report, card = load(EVAL, commit), load(CARD, commit)
    clean, augmented = report["seen"]["clean"], report["seen"]["augmented"]
    features = card["features"]
    window_ms = 1000 * features["win_length"] / features["sample_rate"]
    cells = [
        label,
        commit or "working tree",
        f"{features['n_lfcc']} LFCC of {features['n_filters']}, {window_ms:.0f} ms",
        f"{clean['real']} / {clean['spoof']}",
        pct(card["dev"]["eer"]),
        pct(clean["eer"]),
        pct(augmented["eer"]),
        pct(clean["per_generator_eer"]["world"]),
        f"{card['threshold']:.3f}",
        f"{pct(clean['fpr_at_threshold'])} / {pct(augmented['fpr_at_threshold'])}",
        f"{pct(clean['miss_at_threshold'])} / {pct(augmented['miss_at_threshold'])}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    print(
        "| model | files at | features | test real / synthetic clips | dev EER | "
        "test EER clean | test EER augmented | WORLD EER clean | threshold | "
        "FPR clean / augmented | miss clean / augmented |"
    )
    print("|" + "---|" * 11)
    for label, commit in MODELS:
        print(row(label, commit))


if __name__ == "__main__":
    main()
