"""Every stage's `deps:` in dvc.yaml cover all the project code its script runs.

The import graph comes from grimp (the library behind import-linter): every module a
stage script imports, directly or through others, at module level or inside a
function, plus the packages that contain them (their ``__init__`` runs too). A file is
covered when a dependency is the file or a folder above it and DVC does not ignore it
(``.dvcignore``: DVC leaves an ignored file out of a folder's hash, as if it were absent).
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest
import yaml
from dvc.fs import LocalFileSystem
from dvc.ignore import DvcIgnoreFilter

from helpers import ROOT

SRC = ROOT / "src"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def imported_by_script(script: Path) -> set[str]:
    """The ``sentinelle`` modules a script imports itself."""
    found = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == "sentinelle"
        ):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "sentinelle")
    return found


def closure(graph: grimp.ImportGraph, roots: set[str]) -> set[str]:
    modules = {m for m in roots if m in graph.modules}
    for module in list(modules):
        modules |= graph.find_upstream_modules(module)
    return modules | {m.rsplit(".", i)[0] for m in modules for i in range(1, m.count(".") + 1)}


def module_file(module: str) -> Path:
    path = SRC.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def ignored_by_dvc(root: Path = ROOT):
    ignore = DvcIgnoreFilter(LocalFileSystem(), str(root))
    return lambda path: ignore.is_ignored_file(str(path))


def uncovered(stage: dict, ignored=None) -> list[str]:
    ignored = ignored or ignored_by_dvc()
    script = ROOT / stage["cmd"].split()[1]
    graph = grimp.build_graph("sentinelle")
    deps = [ROOT / d for d in stage.get("deps", []) if not d.startswith("${")]
    files = [module_file(m) for m in sorted(closure(graph, imported_by_script(script)))] + [script]
    return [
        str(f.relative_to(ROOT))
        for f in files
        if ignored(f) or not any(f == d or d in f.parents for d in deps)
    ]


@pytest.mark.parametrize(
    "name", [n for n, s in STAGES.items() if s["cmd"].startswith("python src/")]
)
def test_stage_deps_cover_the_code_it_imports(name: str) -> None:
    assert uncovered(STAGES[name]) == [], f"dvc.yaml stage {name!r} does not depend on code it runs"


def test_the_check_finds_a_missing_dependency() -> None:
    train = dict(STAGES["train"])
    train["deps"] = [d for d in train["deps"] if d != "src"] + ["src/train.py"]
    missing = uncovered(train)
    assert "src/sentinelle/modeling/fast/counting.py" in missing
    assert "src/sentinelle/params.py" in missing
    assert "src/train.py" not in missing


def test_the_check_finds_code_dvc_ignores(tmp_path: Path) -> None:
    """A module under the `src` dependency that .dvcignore hides is not covered."""
    dvcignore = (ROOT / ".dvcignore").read_text() + "src/sentinelle/modeling/fast/\n"
    (tmp_path / ".dvcignore").write_text(dvcignore)
    moved = ignored_by_dvc(tmp_path)
    missing = uncovered(STAGES["train"], lambda f: moved(tmp_path / f.relative_to(ROOT)))
    assert "src/sentinelle/modeling/fast/counting.py" in missing
    assert "src/sentinelle/params.py" not in missing


def test_code_no_stage_runs_reruns_no_stage() -> None:
    """What .dvcignore hides from `src` is code no stage imports (the API, the CLI, ...)."""
    ignored = ignored_by_dvc()
    assert ignored(ROOT / "src/sentinelle/serving/api.py")
    assert ignored(ROOT / "src/sentinelle_tools/image.py")
    assert not ignored(ROOT / "src/sentinelle/params.py")
