"""Each stage script runs alone (`python src/<stage>.py`), without DVC."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, sh, write_params
from sentinelle.params import read

STAGES = ["check_params", "bundled_data", "ingest", "preprocess", "train", "evaluate"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with src/ and params.yaml in which all stage scripts have run in order."""
    work = tmp_path_factory.mktemp("stages")
    shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = read(ROOT / "params.yaml")
    params["train"].update(classifier="logreg", features="word")  # fast
    write_params(work / "custom.yaml", params)
    for stage in STAGES:
        sh(sys.executable, f"src/{stage}.py", "--params", "custom.yaml", cwd=work)
    return work


def test_stages_run_in_order_without_dvc(workdir: Path) -> None:
    meta = json.loads((workdir / "models/model.json").read_text())
    assert meta["params"]["train"]["classifier"] == "logreg"
    assert meta["model_version"] == "sentinelle-" + meta["model_sha256"][:12]
    headline = json.loads((workdir / "dvclive/evaluate/metrics.json").read_text())
    metrics = json.loads((workdir / "dvclive/evaluate/details.json").read_text())
    assert {k: metrics[k] for k in headline if k != "obfuscated"} == {
        k: v for k, v in headline.items() if k != "obfuscated"
    }
    assert headline["obfuscated"]["recall"] == metrics["obfuscated"]["recall"]
    assert metrics["accuracy"] > 0.95
    assert (
        metrics["tp"] + metrics["fn"] + metrics["tn"] + metrics["fp"]
        == json.loads((workdir / "data/report.json").read_text())["splits"]["test"]["rows"]
    )


def test_the_robustness_check_scores_the_test_messages_obfuscated(
    workdir: Path, monkeypatch
) -> None:
    # Unobfuscated (rate 0), the robustness check gives evaluate's scores of the test split;
    # at the stage's rate, other scores.
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir / "src"))
    import evaluate
    from sentinelle import io
    from sentinelle.modeling.inference import spam_scores
    from sentinelle.modeling.persistence import load_with_metadata

    model, meta = load_with_metadata()
    test = io.read_table(workdir / "data/processed/test.parquet")
    clean = spam_scores(model, test["text"])
    args = (model, test["message"].tolist(), meta["params"]["preprocess"], 42)
    np.testing.assert_array_equal(evaluate.obfuscated_scores(*args, 0.0), clean)
    assert not np.array_equal(evaluate.obfuscated_scores(*args, 0.3), clean)


def test_outputs_hold_no_absolute_paths(workdir: Path) -> None:
    for path in [
        *workdir.glob("data/**/*.json"),
        *workdir.glob("models/*.json"),
        *workdir.glob("dvclive/**/*.*"),
    ]:
        assert str(workdir) not in path.read_text(errors="replace"), path


@pytest.mark.parametrize("stage", STAGES)
def test_bad_params_fail_with_one_line_before_touching_outputs(workdir: Path, stage: str) -> None:
    before = {
        p: p.read_bytes() for p in workdir.glob("**/*") if p.is_file() and "src" not in p.parts
    }
    params = read(workdir / "custom.yaml")
    params["train"]["n_estimators"] = 0
    write_params(workdir / "bad.yaml", params)
    proc = sh(sys.executable, f"src/{stage}.py", "--params", "bad.yaml", cwd=workdir, check=False)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"{stage}: error: bad.yaml: train.n_estimators = 0 is invalid: "
        "must be an integer >= 1 and <= 5000\n"
    )
    (workdir / "bad.yaml").unlink()
    after = {
        p: p.read_bytes() for p in workdir.glob("**/*") if p.is_file() and "src" not in p.parts
    }
    assert after == before


def test_missing_input_is_one_line(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(ROOT / "settings.yaml", tmp_path / "settings.yaml")
    proc = sh(sys.executable, "src/evaluate.py", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "evaluate: error: models/model.json: model metadata not found "
        "(run `dvc repro` or `dvc pull`)"
    ]


def test_stages_run_with_imports_frozen_and_the_cyclic_collector_slowed() -> None:
    code = (
        "import gc\nfrom sentinelle.stage import run\nfrom sentinelle.collector import THRESHOLD\n"
        "run(lambda p: print(gc.isenabled(), gc.get_freeze_count() > 10_000, "
        "gc.get_threshold() == THRESHOLD), 'x', '')"
    )
    assert sh(sys.executable, "-c", code, cwd=ROOT).stdout.split() == ["True", "True", "True"]


def test_check_params_and_bundled_data_import_no_table_cloud_or_dask_library() -> None:
    # io, sources and compute import pandas, pyarrow, botocore and Dask where they use them:
    # at the top, they would make these two stages several times slower (docs/performance.md).
    code = (
        "import sys\nsys.path.insert(0, 'src')\nimport check_params, bundled_data\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pandas', 'pyarrow', 'botocore', 'dask', 'distributed'}))"
    )
    assert sh(sys.executable, "-c", code, cwd=ROOT).stdout.strip() == "[]"
