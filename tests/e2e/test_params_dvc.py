"""params.yaml and settings.yaml mean one thing: the stages read every key as DVC does.

`dvc exp run -S` writes each override (Hydra's grammar, then ruamel.yaml); the stages read
the files back with ``sentinelle.params`` (ruamel.yaml, YAML 1.2, as DVC reads them). For
every key, the value a stage gets equals what `dvc params diff` and `dvc exp show` report,
after overrides of every type: bool, int, float (``1e-5`` too), null, a string that YAML 1.1
would read as a bool (``yes``, ``on``), a list, a mapping.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from helpers import sh
from sentinelle.params import load

pytestmark = pytest.mark.e2e

# Each round is one `dvc exp run` of the check_params stage (it validates both files with the
# stages' own loader): (override, key, the value both must hold).
ROUNDS = [
    [
        (
            "settings.yaml:ingest.spam_labels=[yes,on,spam]",
            "ingest.spam_labels",
            ["yes", "on", "spam"],
        ),
        ("settings.yaml:ingest.ham_labels=[no,off,ham]", "ingest.ham_labels", ["no", "off", "ham"]),
        ("settings.yaml:ingest.text_column=on", "ingest.text_column", "on"),
        ("settings.yaml:ingest.header=true", "ingest.header", True),
        ("train.sublinear_tf=false", "train.sublinear_tf", False),
        ("train.min_df=3", "train.min_df", 3),
        ("train.alpha=1e-5", "train.alpha", 1e-05),
        ("train.C=0.5", "train.C", 0.5),
        ("train.max_features=null", "train.max_features", None),
        ("train.word_ngrams=[1,3]", "train.word_ngrams", [1, 3]),
        (
            "train.operating_points={strict:0.0002,lenient:0.02}",
            "train.operating_points",
            {"strict": 0.0002, "lenient": 0.02},
        ),
    ],
    [
        ("settings.yaml:ingest.spam_labels=[yes]", "ingest.spam_labels", ["yes"]),
        ("settings.yaml:ingest.sheet=2", "ingest.sheet", 2),
        ("settings.yaml:ingest.delimiter=';'", "ingest.delimiter", ";"),
        ("train.class_weight=balanced", "train.class_weight", "balanced"),
        ("ingest.feedback=feedback/feedback.jsonl", "ingest.feedback", "feedback/feedback.jsonl"),
    ],
]


def flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``a.b.c`` keys, as DVC flattens params (lists stay values)."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def as_stages_read(repo: Path) -> dict[str, Any]:
    """Every key as the stages get it (JSON types: tuples are lists)."""
    params = load(repo / "params.yaml")
    return flat(json.loads(json.dumps(dataclasses.asdict(params))))


def as_dvc_reports(repo: Path) -> dict[str, Any]:
    """Every key of both files as `dvc params diff --all` reports the workspace (it writes a
    list as Python's repr of it: ``"['yes', 'on']"``)."""
    out = sh(
        "dvc", "params", "diff", "--all", "--json", "--targets", "params.yaml", "settings.yaml",
        cwd=repo,
    ).stdout  # fmt: skip
    diff = json.loads(out)
    return {key: change["new"] for file in diff.values() for key, change in file.items()}


def typed(values: dict[str, Any], lists_as_repr: bool = False) -> dict[str, str]:
    """Values with their types: True is not 1 nor "true", "1e-05" is not 1e-05; a number is
    a number (the schema reads 30 as 30.0 where it wants a float)."""

    def one(v: Any) -> Any:
        if isinstance(v, list):
            return repr(v) if lists_as_repr else [one(x) for x in v]
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        return v

    return {k: json.dumps(one(v), sort_keys=True) for k, v in values.items()}


@pytest.mark.parametrize("overrides", ROUNDS, ids=["types", "labels"])
def test_every_key_means_what_dvc_says(fresh: Path, overrides: list[tuple[str, str, Any]]) -> None:
    sets = [x for override, _, _ in overrides for x in ("-S", override)]
    sh("dvc", "exp", "run", *sets, "check_params", cwd=fresh)
    stages, dvc = as_stages_read(fresh), as_dvc_reports(fresh)
    wanted = flat({key: value for _, key, value in overrides})
    assert {k: stages[k] for k in wanted} == wanted
    assert typed(stages, lists_as_repr=True) == typed(dvc)
    # `dvc exp show` reports the same for params.yaml's keys.
    rows = json.loads(sh("dvc", "exp", "show", "--json", cwd=fresh).stdout)
    [exp] = [e["revs"][0] for row in rows for e in (row.get("experiments") or [])]
    shown = flat(exp["data"]["params"]["params.yaml"]["data"])
    assert typed(shown) == typed({k: stages[k] for k in shown})
