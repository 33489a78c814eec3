"""``?explain=K`` on a real `sentinelle serve` process, and `sentinelle score --explain K`."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import tiny_model
from sentinelle.serving.page import evaluation, project_folder
from sentinelle.serving.scorer import Scorer
from test_api import serve, stop, wait_for
from test_scoring import cli

SPAM = "WIN a FREE prize! Call now"
HAM = "see you at lunch tomorrow"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.make(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def forest_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.make(tmp_path_factory.mktemp("forest"), classifier="random_forest")


def running(model: Path, tmp: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    log = tmp.mktemp("server") / "server.log"
    proc, url = serve(model, log)
    try:
        wait_for(f"{url}/readyz", proc, log, 200)
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def client(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    yield from running(model_path, tmp_path_factory)


@pytest.fixture(scope="module")
def forest(forest_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    yield from running(forest_path, tmp_path_factory)


def check_identity(explanation: dict, text: str = SPAM) -> None:
    """The words listed add up, with the intercept and the rest, to the decision; each is the
    text at its offsets."""
    listed = explanation["spam"] + explanation["ham"]
    total = explanation["intercept"] + sum(i["contribution"] for i in listed) + explanation["rest"]
    assert abs(total - explanation["decision"]) <= 1e-9
    assert all(text[i["start"] : i["end"]] == i["text"] for i in listed)


def test_predict_explains_with_the_libraries_numbers(
    client: httpx.Client, model_path: Path
) -> None:
    scorer = Scorer.load(model_path)
    [(score, is_spam, expected)] = scorer.predict_explained([SPAM], 3)
    body = client.post("/predict", params={"explain": 3}, json={"text": SPAM}).json()
    assert body["spam_score"] == pytest.approx(score) and body["is_spam"] is is_spam
    assert body["explanation"] == expected  # JSON keeps floats exactly
    top = body["explanation"]["spam"][0]
    assert (top["text"], top["start"], top["end"]) == ("FREE", 6, 10) and SPAM[6:10] == "FREE"
    assert len(body["explanation"]["spam"]) == 3 and body["explanation"]["unplaced"] == 0.0
    check_identity(body["explanation"])
    # Without ?explain the answer is as before: no explanation key at all.
    plain = client.post("/predict", json={"text": SPAM}).json()
    assert "explanation" not in plain
    assert plain == {k: v for k, v in body.items() if k != "explanation"}
    # At another operating point: the same explanation, the verdict at its threshold.
    strict = client.post(
        "/predict", params={"explain": 3, "operating_point": "strict"}, json={"text": SPAM}
    ).json()
    assert strict["threshold"] == tiny_model.STRICT and strict["is_spam"] is (score >= 0.8)
    assert strict["operating_point"] == "strict" and strict["explanation"] == expected


def test_batch_explains_each_message_in_order(client: httpx.Client, model_path: Path) -> None:
    scorer = Scorer.load(model_path)
    expected = scorer.predict_explained([SPAM, HAM], 2)
    body = client.post("/predict/batch?explain=2", json={"texts": [SPAM, HAM]}).json()
    for got, (score, _, why), text in zip(body["predictions"], expected, [SPAM, HAM], strict=True):
        assert got["spam_score"] == pytest.approx(score)
        assert got["explanation"] == why
        check_identity(got["explanation"], text)
    plain = client.post("/predict/batch", json={"texts": [SPAM]}).json()
    assert set(plain["predictions"][0]) == {"spam_score", "is_spam"}


def test_offsets_are_code_points_after_astral_characters(client: httpx.Client) -> None:
    """Emoji (two UTF-16 units, one code point) before the words: offsets index the text as
    Python and JSON decoders give it; the OpenAPI schema says what each field is."""
    text = "😀👍🏽 WIN a FREE prize! 𝐂𝐚𝐥𝐥 now ❤️"
    body = client.post("/predict", params={"explain": 50}, json={"text": text}).json()
    why = body["explanation"]
    check_identity(why, text)
    listed = {i["text"] for i in why["spam"] + why["ham"]}
    assert {"😀👍🏽", "FREE", "𝐂𝐚𝐥𝐥", "❤️"} <= listed
    [free] = [i for i in why["spam"] + why["ham"] if i["text"] == "FREE"]
    assert (free["start"], free["end"]) == (10, 14)
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert list(schema["Contribution"]["properties"]) == ["text", "start", "end", "contribution"]
    assert "unplaced" in schema["Explanation"]["properties"]


@pytest.mark.parametrize(
    ("value", "msg"),
    [
        ("0", "Input should be greater than or equal to 1"),
        ("51", "Input should be less than or equal to 50"),
        ("two", "Input should be a valid integer, unable to parse string as an integer"),
    ],
)
def test_explain_out_of_bounds_is_a_422_naming_the_bound(
    client: httpx.Client, value: str, msg: str
) -> None:
    for path, body in (("/predict", {"text": SPAM}), ("/predict/batch", {"texts": [SPAM]})):
        r = client.post(path, params={"explain": value}, json=body)
        assert r.status_code == 422
        assert r.json()["detail"] == [
            {"loc": ["query", "explain"], "msg": msg, "type": r.json()["detail"][0]["type"]}
        ]


def test_a_random_forest_says_explanations_are_not_available(forest: httpx.Client) -> None:
    for path, body in (("/predict", {"text": SPAM}), ("/predict/batch", {"texts": [SPAM]})):
        r = forest.post(path, params={"explain": 3}, json=body)
        assert r.status_code == 422
        [detail] = r.json()["detail"]
        assert detail["loc"] == ["query", "explain"] and detail["type"] == "explain_unavailable"
        assert detail["msg"].startswith("explanations are not available for random_forest (")
        assert "\n" not in detail["msg"]
    assert forest.post("/predict", json={"text": SPAM}).status_code == 200


def test_score_explain_adds_a_json_column(tmp_path: Path, model_path: Path) -> None:
    scorer = Scorer.load(model_path)
    (tmp_path / "in.csv").write_text(f"id,text\n1,{SPAM}\n2,{HAM}\n")
    done = cli(
        tmp_path / "in.csv", "-o", tmp_path / "out.csv", "--model", model_path, "--explain", "2"
    )
    assert done.returncode == 0, done.stderr.decode()
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert list(rows[0]) == ["id", "text", "spam_score", "is_spam", "model_version", "explanation"]
    for row, (_, _, why) in zip(rows, scorer.predict_explained([SPAM, HAM], 2), strict=True):
        assert json.loads(row["explanation"]) == why
    # JSON Lines: the same object as a field; the scores are those of a run without --explain.
    done = cli("-", "--model", model_path, "--explain", "1", stdin=f"{SPAM}\n".encode())
    assert done.returncode == 0, done.stderr.decode()
    [line] = done.stdout.decode().splitlines()
    record = json.loads(line)
    top = record["explanation"]["spam"][0]
    assert (top["text"], top["start"], top["end"]) == ("FREE", 6, 10)
    check_identity(record["explanation"])
    plain = json.loads(cli("-", "--model", model_path, stdin=f"{SPAM}\n".encode()).stdout)
    assert plain == {k: v for k, v in record.items() if k != "explanation"}


def test_score_explain_errors_are_one_line_with_exit_code_2(
    tmp_path: Path, model_path: Path, forest_path: Path
) -> None:
    done = cli("-", "--model", model_path, "--explain", "0", stdin=b"hi\n")
    assert done.returncode == 2
    assert (
        done.stderr.decode()
        == "sentinelle score: error: --explain 0 is out of range; use 1 to 50\n"
    )
    done = cli("-", "--model", forest_path, "--explain", "3", stdin=b"hi\n")
    assert done.returncode == 2 and done.stdout == b""
    [line] = done.stderr.decode().splitlines()
    assert line.startswith(
        "sentinelle score: error: explanations are not available for random_forest ("
    )


def test_the_evaluation_says_whether_it_is_of_the_served_model(tmp_path: Path) -> None:
    model = tiny_model.make(tmp_path / "models")
    assert evaluation(tmp_path, model) == {
        "source": "dvclive/evaluate",
        "of_served_model": None,
        "metrics": None,
        "roc": None,
        "confusion": None,
        "images": [],
        "data_report": None,
    }
    md5 = hashlib.md5(model.read_bytes()).hexdigest()
    for recorded, expected in ((md5, True), ("0" * 32, False)):
        deps = [
            {"path": "data/x", "md5": "1" * 32},
            {"path": "models/model.skops", "md5": recorded},
        ]
        (tmp_path / "dvc.lock").write_text(json.dumps({"stages": {"evaluate": {"deps": deps}}}))
        assert evaluation(tmp_path, model)["of_served_model"] is expected
    assert project_folder(model) == tmp_path.resolve()
