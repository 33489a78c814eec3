"""The package's house rules: each subpackage lists its modules in ``__all__``, no module
name is used twice, and one module names the project's files."""

from __future__ import annotations

import ast
import collections
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "src" / "sentinelle"


def _all(init: Path) -> list[str]:
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    return []


def test_every_subpackage_lists_its_modules_in_all() -> None:
    """A subpackage's ``__all__`` names its modules; a package behind one door (the fast
    engine) names the public functions its ``__init__`` defines, and only those."""
    inits = [p for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE]
    assert len(inits) >= 10
    doors = []
    for init in inits:
        folder = init.parent
        defined = [
            node.name
            for node in ast.parse(init.read_text()).body
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
        ]
        if defined:
            doors.append(init.relative_to(PACKAGE).parent.as_posix())
            assert sorted(_all(init)) == sorted(defined), init.relative_to(ROOT)
            continue
        modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
        modules |= {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
        assert sorted(_all(init)) == sorted(modules), init.relative_to(ROOT)
    assert doors == ["modeling/fast"]


def test_no_module_name_is_used_twice() -> None:
    names = collections.Counter(
        p.name for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")
    )
    assert [n for n, count in names.items() if count > 1] == []


def test_the_package_spells_no_project_file_outside_paths() -> None:
    """A literal such as "models/model.skops" in package code belongs in sentinelle/paths.py."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "paths.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith(("models/", "data/", "dvclive/"))
                and "\n" not in node.value
                and " " not in node.value
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value}")
    assert found == []
