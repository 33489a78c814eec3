"""The params schema: every kind of bad value is one clear line naming key, value, allowed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from sentinelle.errors import UserError
from sentinelle.params import load, parse

GOOD = yaml.safe_load((ROOT / "params.yaml").read_text())


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
    assert "allowed: features, word_ngrams" in msg


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
    assert load(path).train.alpha == 1e-05
