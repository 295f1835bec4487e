"""Shared by the evaluation harness tests: small manifests cut from the shared corpus."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

SubsetManifest = Callable[[Callable[[dict[str, str]], bool], int], Path]


@pytest.fixture
def subset_manifest(speech_dir: Path, tmp_path: Path) -> SubsetManifest:
    """`subset_manifest(keep, count)`: a manifest of the first `count` rows of the shared
    corpus that `keep` accepts, with absolute paths (fails when fewer exist)."""

    def write(keep: Callable[[dict[str, str]], bool], count: int) -> Path:
        with open(speech_dir / "manifest.csv", newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if keep(r)][:count]
        assert len(rows) == count, f"the shared data has {len(rows)} such clips, not {count}"
        for row in rows:
            row["path"] = str(speech_dir / row["path"])
        out = tmp_path / "manifest.csv"
        with open(out, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return out

    return write
