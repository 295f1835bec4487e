"""The package's floors: lower modules never import the ones built on them (issue 22 item 4).

`paths.py` decides the data directory and names the release; `provenance/` and `studio.py`
both import it. If `provenance/` imported `studio.py` (or the package, which imports
`studio.py`) again, anywhere, even inside a function, the two would be tied in a circle.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

import deepfake_studio
from deepfake_studio import paths
from deepfake_studio.provenance import keys

PACKAGE = Path(deepfake_studio.__file__).parent
ROOT = PACKAGE.parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, at any depth (functions, TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_paths_is_the_ground_floor() -> None:
    imports = imported_modules(PACKAGE / "paths.py")
    assert not {m for m in imports if m.startswith("deepfake_studio")}, imports


@pytest.mark.parametrize(
    "path", sorted((PACKAGE / "provenance").glob("*.py")), ids=lambda p: p.name
)
def test_provenance_never_imports_what_builds_on_it(path: Path) -> None:
    above = {"deepfake_studio", "deepfake_studio.studio", "deepfake_studio.cli"}
    imports = imported_modules(path)
    offending = {m for m in imports if m in above or m.startswith("deepfake_studio.service")}
    assert not offending, f"{path.name} imports {sorted(offending)}"


def test_data_dir_is_decided_in_one_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "home"))
    assert paths.default_data_dir() == tmp_path / "home"
    assert keys.key_path() == tmp_path / "home" / "keys" / "provenance_ed25519.pem"
    assert deepfake_studio.Studio().data_dir == tmp_path / "home"
    monkeypatch.delenv(paths.DATA_DIR_ENV)
    assert paths.default_data_dir().name == "deepfake-studio"


def test_release_named_once() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert deepfake_studio.__version__ == paths.__version__ == project["version"]
