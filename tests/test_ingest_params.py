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
            "xlsx",
            "ingest.format = 'xlsx' is invalid: must be one of 'auto', 'uci', 'kaggle', "
            "'csv', 'tsv', 'jsonl', 'parquet'",
        ),
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
