"""The params schema: every kind of bad value is one clear line naming key, value, allowed."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, write_params
from sentinelle import params as schema
from sentinelle.errors import UserError
from sentinelle.params import load, output_settings, parse, read

GOOD = read(ROOT / "params.yaml")


def with_change(section: str, key: str, value: object) -> dict:
    data = copy.deepcopy(GOOD)
    data[section][key] = value
    return data


def error_of(data: object) -> str:
    with pytest.raises(UserError) as exc:
        parse(data)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_the_shipped_params_file_is_valid() -> None:
    params = load(ROOT / "params.yaml")
    assert params.train.word_ngrams == tuple(GOOD["train"]["word_ngrams"])
    assert params.base.seed == GOOD["base"]["seed"]


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "C", -1, "params.yaml: train.C = -1 is invalid: must be a number > 0"),
        (
            "train",
            "operating_points",
            {"default": 0.01},
            "train.operating_points = {'default': 0.01} is invalid: must be a mapping of "
            "(a string a lower-case name, not 'default') to (a number >= 0 and < 1)",
        ),
        ("train", "operating_points", {"Strict": 0.01}, "train.operating_points = {'Strict'"),
        ("train", "operating_points", {"strict": 1.0}, "train.operating_points = {'strict': 1.0}"),
        ("train", "operating_points", [0.01], "train.operating_points = [0.01] is invalid"),
        ("train", "C", "big", "params.yaml: train.C = 'big' is invalid: must be a number > 0"),
        ("train", "C", float("nan"), "train.C = nan is invalid"),
        (
            "train",
            "classifier",
            "svm",
            "train.classifier = 'svm' is invalid: must be one of 'linear_svm', 'logreg'",
        ),
        ("train", "min_df", 0, "train.min_df = 0 is invalid: must be an integer >= 1"),
        ("train", "min_df", 1.5, "train.min_df = 1.5 is invalid: must be an integer >= 1"),
        ("train", "min_df", True, "train.min_df = True is invalid"),
        (
            "train",
            "sublinear_tf",
            "yes",
            "train.sublinear_tf = 'yes' is invalid: must be true/false",
        ),
        (
            "train",
            "word_ngrams",
            [2, 1],
            "train.word_ngrams = [2, 1] is invalid: "
            "must be a list of 2 integers [low, high] >= 1 and <= 10",
        ),
        ("train", "word_ngrams", [1], "train.word_ngrams = [1] is invalid"),
        (
            "train",
            "max_features",
            0,
            "train.max_features = 0 is invalid: must be an integer >= 1 or null",
        ),
        (
            "ingest",
            "test_size",
            0.9,
            "ingest.test_size = 0.9 is invalid: must be a number >= 0.05 and <= 0.5",
        ),
        ("ingest", "source", "", "ingest.source = '' is invalid: must be a string"),
        (
            "gate",
            "min_recall",
            1.5,
            "gate.min_recall = 1.5 is invalid: must be a number >= 0 and <= 1",
        ),
        (
            "gate",
            "min_throughput",
            0,
            "gate.min_throughput = 0 is invalid: must be a number > 0 or null",
        ),
        (
            "base",
            "seed",
            -3,
            "base.seed = -3 is invalid: must be an integer >= 0 and <= 4294967295",
        ),
    ],
)
def test_bad_values_are_one_line_naming_key_value_and_rule(section, key, value, expected) -> None:
    assert expected in error_of(with_change(section, key, value))


def test_null_is_accepted_where_allowed() -> None:
    assert parse(with_change("train", "max_features", None)).train.max_features is None
    assert parse(with_change("train", "max_features", 150)).train.max_features == 150
    assert parse(with_change("train", "C", 2)).train.C == 2.0  # an int is a number


def test_unknown_key_suggests_the_closest() -> None:
    data = with_change("train", "clasifier", "logreg")
    msg = error_of(data)
    assert msg.startswith(
        "params.yaml: unknown key 'train.clasifier' (did you mean 'train.classifier'?)"
    )
    assert "allowed: engine, features, word_ngrams" in msg


def test_unknown_section_and_missing_key() -> None:
    data = copy.deepcopy(GOOD)
    data["trian"] = {}
    assert "unknown key 'trian' (did you mean 'train'?)" in error_of(data)
    data = copy.deepcopy(GOOD)
    del data["train"]["C"]
    assert error_of(data) == "params.yaml: missing key 'train.C' (a number > 0)"


def test_section_must_be_a_mapping() -> None:
    data = with_change("base", "seed", 1)
    data["train"] = [1, 2]
    assert error_of(data) == "params.yaml: 'train' must be a mapping, got [1, 2]"


def test_load_reports_yaml_syntax_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("base:\n  seed: [1\n")
    with pytest.raises(UserError, match=r"p.yaml: not valid YAML at line \d+, column \d+"):
        load(bad)
    with pytest.raises(UserError, match="cannot read params file"):
        load(tmp_path / "absent.yaml")


def test_exponent_floats_as_dvc_writes_them_are_numbers(tmp_path: Path) -> None:
    """`dvc exp run -S train.alpha=0.00001` writes `alpha: 1e-05` (YAML 1.2)."""
    text = (ROOT / "params.yaml").read_text().replace("alpha: 0.0001 ", "alpha: 1e-05  ")
    assert "alpha: 1e-05" in text
    path = tmp_path / "params.yaml"
    path.write_text(text)
    shutil.copy(ROOT / "settings.yaml", tmp_path / "settings.yaml")
    assert load(path).train.alpha == 1e-05


def _files(tmp_path: Path, data: dict) -> Path:
    write_params(tmp_path / "params.yaml", data)
    return tmp_path / "params.yaml"


def test_every_key_lives_in_its_own_file() -> None:
    """params.yaml: what runs are compared by; settings.yaml: the rest (no key in both)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    settings = yaml.safe_load((ROOT / "settings.yaml").read_text())
    assert set(params) == {"base", "ingest", "preprocess", "train"}
    assert set(params["ingest"]) == {"source", "test_size", "feedback"}
    assert {"monitor", "gate", "compute", "evaluate"} <= set(settings)
    assert "n_jobs" in settings["train"] and "n_jobs" not in params["train"]
    flat = [f"{s}.{k}" for s, v in params.items() for k in v]
    flat += [f"{s}.{k}" for s, v in settings.items() for k in v]
    assert len(flat) == len(set(flat)) == len(schema._flat(GOOD))


@pytest.mark.parametrize(
    ("file", "section", "key", "expected"),
    [
        (
            "params.yaml",
            "ingest",
            "timeout",
            "params.yaml: ingest.timeout belongs in settings.yaml",
        ),
        ("params.yaml", "gate", "min_recall", "params.yaml: gate.min_recall belongs in settings"),
        ("settings.yaml", "train", "C", "settings.yaml: train.C belongs in params.yaml, not"),
    ],
)
def test_a_key_in_the_other_file_is_refused(tmp_path, file, section, key, expected) -> None:
    path = _files(tmp_path, GOOD)
    target = tmp_path / file
    data = yaml.safe_load(target.read_text())
    data.setdefault(section, {})[key] = GOOD[section][key]
    target.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError) as exc:
        load(path)
    assert str(exc.value).startswith(f"{tmp_path}/{expected}")


def test_typos_and_missing_keys_name_the_file_that_holds_them(tmp_path: Path) -> None:
    path = _files(tmp_path, GOOD)
    settings = tmp_path / "settings.yaml"
    text = settings.read_text()
    settings.write_text(text.replace("min_recall:", "min_recal:"))
    with pytest.raises(UserError, match=r"^\S*settings.yaml: unknown key 'gate.min_recal' \(did "):
        load(path)
    settings.write_text(text.replace("  min_recall: 0.85\n", ""))
    with pytest.raises(UserError, match=r"^\S*settings.yaml: missing key 'gate.min_recall'"):
        load(path)
    settings.write_text(text.replace("bins: 10", "bins: 1"))
    with pytest.raises(UserError, match=r"^\S*settings.yaml: monitor.bins = 1 is invalid"):
        load(path)


def test_both_files_are_read_as_dvc_reads_them(tmp_path: Path) -> None:
    """YAML 1.2, as DVC (ruamel.yaml) reads them: `yes`/`no`/`on`/`off` are strings."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    text = (ROOT / "settings.yaml").read_text()
    text = text.replace("[spam, ", "[spam, yes, on, ").replace("[ham, ", "[ham, no, off, ")
    (tmp_path / "settings.yaml").write_text(text)
    params = load(tmp_path / "params.yaml")
    assert params.ingest.spam_labels[:3] == ("spam", "yes", "on")
    assert params.ingest.ham_labels[:3] == ("ham", "no", "off")


def test_output_settings_leave_out_what_changes_no_output() -> None:
    out = output_settings(load(ROOT / "params.yaml"))
    assert out["ingest.delimiter"] == "auto" and out["evaluate.bootstrap"] == 1000
    assert out["compute.partition_rows"] == 250000
    for key in ("ingest.timeout", "train.n_jobs", "compute.scheduler", "gate.min_recall"):
        assert key not in out
    assert not any(k.startswith(("train.C", "base.", "monitor.")) for k in out)
