"""notebooks/walkthrough.ipynb runs top to bottom (nbclient, a real kernel), so it never rots."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_walkthrough_notebook_executes() -> None:
    notebook = nbformat.read(ROOT / "notebooks" / "walkthrough.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()  # raises CellExecutionError, with the cell's traceback, if any cell fails
    text = "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "enrolled 'lj' with kokoro" in text
    assert "clone.wav" in text and "synthetic" in text and "real" in text
    assert "watermark in clone: True" in text and "watermark in the real reference: False" in text
    assert "9 clips of 3 speakers" in text
    assert "train 3 utterances / 1 speaker," in text  # "1 speaker", not "1 speakers"
    assert "at 22050 Hz from the trained run" in text
