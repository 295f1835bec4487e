"""One table of the shipped detector and several candidates, from detector_candidate.py JSONs.

    .venv/bin/python benchmarks/detector_clones_table.py NAME=FILE.json [NAME=FILE.json ...]

Every JSON must come from the same data (`--data`) and held-out set, so that the shipped
model's column (the baseline of the first file) is the same for all; printed as markdown.
Rows: the studio's clones caught at each model's own threshold and their EER (test speakers),
every other generator's test EER, real test speech flagged and the EmoDB held-out figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def table(columns: list[tuple[str, dict]]) -> str:
    first = columns[0][1]
    for name, res in columns[1:]:
        if res["data"] != first["data"]:  # a different clip set: columns would not compare
            raise SystemExit(f"{name} scored {res['data']}, not {first['data']}")
    models = [("shipped", first["models"]["baseline"])]
    models += [(name, res["models"]["candidate"]) for name, res in columns]
    counts = first["test_clips"]

    def caught(m: dict, key: str, g: str) -> str:
        n = counts[key][g]
        return f"{round((1 - m[key]['per_generator_miss_at_threshold'][g]) * n)} of {n}"

    def eers(m: dict, g: str | None) -> str:
        if g is None:
            return f"{pct(m['test_clean']['eer'])} / {pct(m['test_augmented']['eer'])}"
        per = (m["test_clean"]["per_generator_eer"][g], m["test_augmented"]["per_generator_eer"][g])
        return f"{pct(per[0])} / {pct(per[1])}"

    rows: list[tuple[str, list[str]]] = [
        ("threshold", [f"{m['threshold']:.3f}" for _, m in models])
    ]
    clones = [g for g in sorted(counts["test_clean"]) if g.startswith("kokoro-clone")]
    for g in clones:
        for key, what in (("test_clean", "clean"), ("test_augmented", "augmented")):
            rows.append((f"{g}: test clips caught, {what}", [caught(m, key, g) for _, m in models]))
        rows.append((f"{g}: test EER clean / augmented", [eers(m, g) for _, m in models]))
    for g in sorted(counts["test_clean"]):
        if g != "bonafide" and g not in clones:
            rows.append((f"{g}: test EER clean / augmented", [eers(m, g) for _, m in models]))
    rows.append(("all generators pooled: test EER", [eers(m, None) for _, m in models]))
    for key, what in (("test_clean", "clean"), ("test_augmented", "augmented")):
        n = first["models"]["baseline"][key]["real"]
        rows.append(
            (
                f"real test speech flagged, {what} ({n} clips)",
                [
                    f"{pct(m[key]['fpr_at_threshold'])} ({round(m[key]['fpr_at_threshold'] * n)})"
                    for _, m in models
                ],
            )
        )
    if all("emodb_heldout" in m for _, m in models):
        for what in ("clean", "augmented"):
            n = first["models"]["baseline"]["emodb_heldout"][what]["real"]
            rows.append(
                (
                    f"EmoDB real flagged, {what} ({n} clips)",
                    [pct(m["emodb_heldout"][what]["fpr_at_threshold"]) for _, m in models],
                )
            )
        rows.append(
            (
                "EmoDB EER clean / augmented",
                [
                    f"{pct(m['emodb_heldout']['clean']['eer'])} / "
                    f"{pct(m['emodb_heldout']['augmented']['eer'])}"
                    for _, m in models
                ],
            )
        )
    lines = ["| | " + " | ".join(name for name, _ in models) + " |"]
    lines.append("|---" * (len(models) + 1) + "|")
    lines += [f"| {label} | " + " | ".join(values) + " |" for label, values in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or not all("=" in a for a in argv):
        raise SystemExit(__doc__)
    columns = []
    for arg in argv:
        name, path = arg.split("=", 1)
        columns.append((name, json.loads(Path(path).read_text(encoding="utf-8"))))
    print(table(columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
