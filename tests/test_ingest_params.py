"""The ingest keys of params.yaml: types, ranges and one-line errors."""

from __future__ import annotations

from typing import Any

import pytest

from ingest_support import default_params
from sentinelle.errors import UserError
from sentinelle.params import parse


def with_ingest(**overrides: Any) -> dict[str, Any]:
    data = default_params()
    data["ingest"].update(overrides)
    return data


def test_defaults_are_valid() -> None:
    p = parse(default_params()).ingest
    assert (p.format, p.encoding, p.member, p.on_conflict) == ("auto", None, None, "drop")
    assert p.spam_labels == ("spam", "1", "true") and p.ham_labels == ("ham", "0", "false")


def test_label_lists_take_strings_integers_and_booleans() -> None:
    p = parse(with_ingest(spam_labels=["SPAM", 1, True], ham_labels=[0, False])).ingest
    assert p.spam_labels == ("SPAM", 1, True) and p.ham_labels == (0, False)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("delimiter", ";", ";"),
        ("delimiter", "\t", "\t"),  # YAML "\t"
        ("delimiter", "\\t", "\\t"),  # `-S ingest.delimiter=\t` passes backslash-t
        ("delimiter", "tab", "tab"),
        ("header", False, False),
        ("text_column", 2, 2),  # `-S ingest.text_column=2` passes an integer
        ("text_column", "2", "2"),
        ("sheet", "Messages", "Messages"),
        ("sheet", 2, 2),
    ],
)
def test_layout_keys_take_what_dvc_exp_run_passes(key: str, value: Any, expected: Any) -> None:
    assert getattr(parse(with_ingest(**{key: value})).ingest, key) == expected


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "spam_labels",
            [],
            "ingest.spam_labels = [] is invalid: must be a non-empty list of "
            "(a string or an integer or true/false)",
        ),
        (
            "ham_labels",
            "ham",
            "ingest.ham_labels = 'ham' is invalid: must be a non-empty list of "
            "(a string or an integer or true/false)",
        ),
        (
            "sha256",
            "abc",
            "ingest.sha256 = 'abc' is invalid: must be a string 64 lower-case hex digits or null",
        ),
        (
            "endpoint_url",
            "localhost:9000",
            "ingest.endpoint_url = 'localhost:9000' is invalid: "
            "must be a string an http(s):// URL or null",
        ),
        (
            "format",
            "excel",
            "ingest.format = 'excel' is invalid: must be one of 'auto', 'uci', 'kaggle', "
            "'csv', 'tsv', 'jsonl', 'parquet', 'xlsx', 'xls', 'ods'",
        ),
        (
            "delimiter",
            ";;",
            "ingest.delimiter = ';;' is invalid: must be a string 'auto' or a single character",
        ),
        (
            "delimiter",
            '"',
            "ingest.delimiter = '\"' is invalid: must be a string 'auto' or a single character",
        ),
        (
            "delimiter",
            1,
            "ingest.delimiter = 1 is invalid: must be a string 'auto' or a single character",
        ),
        ("header", "yes", "ingest.header = 'yes' is invalid: must be one of 'auto' or true/false"),
        (
            "text_column",
            0,
            "ingest.text_column = 0 is invalid: must be a string or an integer >= 1",
        ),
        (
            "label_column",
            "",
            "ingest.label_column = '' is invalid: must be a string or an integer >= 1",
        ),
        ("sheet", 0, "ingest.sheet = 0 is invalid: must be a string or an integer >= 1 or null"),
        (
            "on_conflict",
            "report",
            "ingest.on_conflict = 'report' is invalid: must be one of 'fail', 'drop', 'majority'",
        ),
        ("on_nul", True, "ingest.on_nul = True is invalid: must be one of 'fail', 'drop'"),
        ("max_bytes", 0, "ingest.max_bytes = 0 is invalid: must be an integer >= 1"),
        ("retries", 11, "ingest.retries = 11 is invalid: must be an integer >= 0 and <= 10"),
        ("timeout", 0, "ingest.timeout = 0 is invalid: must be a number > 0 and <= 3600"),
        ("min_rows", 1, "ingest.min_rows = 1 is invalid: must be an integer >= 2"),
    ],
)
def test_bad_values_are_one_line_errors(key: str, value: Any, message: str) -> None:
    with pytest.raises(UserError) as info:
        parse(with_ingest(**{key: value}))
    assert str(info.value) == f"params.yaml: {message}"
