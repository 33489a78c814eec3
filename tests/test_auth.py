"""Who may write: `sentinelle tokens`, bearer tokens on a real server, rate limits, reporters."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import tiny_model
from cli_helper import sentinelle
from sentinelle.cli import main
from sentinelle.serving import tokens
from sentinelle.serving.auth import RateLimiter, parse_rate
from sentinelle.serving.scorer import Scorer
from test_api import serve, stop, wait_for


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# ------------------------------------------------------------------ the token file


def test_tokens_add_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "secrets" / "tokens.json"
    made = sentinelle("tokens", "add", "alice", "--scope", "feedback", "--file", file, cwd=tmp_path)
    secret = made.stdout.splitlines()[-1]
    assert made.stdout == secret + "\n"  # the secret is the only (so the last) line
    assert secret.startswith("snt_") and secret not in made.stderr
    assert "shown this once" in made.stderr
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert secret not in file.read_text() and secret.split("_")[-1] not in file.read_text()

    second = sentinelle(
        "tokens", "add", "bob", "--scope", "predict,admin", "--file", file, cwd=tmp_path
    )
    listed = sentinelle("tokens", "list", "--file", file, cwd=tmp_path).stdout.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [
        ["alice", "feedback"],
        ["bob", "admin,predict"],
    ]
    assert secret not in "".join(listed) and second.stdout.strip() not in "".join(listed)

    # Salted: the hash of one secret differs under each token's salt; only its own matches.
    alice, bob = tokens.load(file)
    assert alice.salt != bob.salt and alice.hash != bob.hash
    assert tokens._derive(secret, alice.salt) == alice.hash
    assert tokens._derive(secret, bob.salt) != alice.hash
    verifier = tokens.Verifier(file)
    assert verifier.verify(secret) == alice and verifier.verify(second.stdout.strip()) == bob
    assert verifier.verify(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert bob.allows("feedback") and not alice.allows("predict")

    for args, message in (
        (("add", "alice", "--scope", "predict"), "a token named 'alice' exists"),
        (("add", "Alice", "--scope", "predict"), "token name 'Alice' is invalid"),
        (("add", "carol", "--scope", "root"), "--scope 'root' is invalid"),
        (("revoke", "carol"), "no token named 'carol' (there are: alice, bob)"),
    ):
        before = file.read_bytes()
        assert main(["tokens", *args, "--file", str(file)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and message in err
        assert file.read_bytes() == before

    sentinelle("tokens", "revoke", "alice", "--file", file, cwd=tmp_path)
    assert [t.name for t in tokens.load(file)] == ["bob"]
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert verifier.verify(secret) is None  # the verifier re-read the changed file


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "not a token file (not valid JSON"),
        (b'{"tokens": []}', "not a token file: expected"),
        (b'{"version": 1, "tokens": [{"name": "x"}]}', "token 1: a token is an object"),
        (
            b'{"version": 1, "tokens": [{"name": "x", "scopes": ["root"], "id": "0123456789ab",'
            b' "salt": "00", "hash": "00", "created": "t"}]}',
            "token 1: scopes ['root'] are invalid",
        ),
        (
            b'{"version": 1, "tokens": [{"name": "x", "scopes": ["admin"], "id": "0123456789ab",'
            b' "salt": "zz", "hash": "00", "created": "t"}]}',
            "token 1: salt and hash must be hexadecimal",
        ),
    ],
)
def test_a_bad_token_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    file = tmp_path / "tokens.json"
    file.write_bytes(content)
    for args in (["tokens", "list"], ["tokens", "add", "z", "--scope", "admin"]):
        assert main([*args, "--file", str(file)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert file.read_bytes() == content


def test_rate_limiter_is_a_token_bucket_per_key() -> None:
    now = [0.0]
    limiter = RateLimiter(parse_rate("6/minute"), burst=2, clock=lambda: now[0])
    assert [limiter.take("a"), limiter.take("a")] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(10.0)  # one report every 10 s after the burst
    assert limiter.take("b") == 0.0  # another reporter has its own bucket
    now[0] = 10.0
    assert limiter.take("a") == 0.0 and limiter.take("a") == pytest.approx(10.0)
    for bad in ("30", "0/minute", "3/day", "x/second"):
        with pytest.raises(Exception, match="--feedback-rate"):
            parse_rate(bad)


# ------------------------------------------------------------------ a real server


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.make(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def secured(
    model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Path, dict[str, str]]]:
    """A server with --tokens, --feedback and --predict-auth required; a secret per scope."""
    tmp = tmp_path_factory.mktemp("secured")
    file, store = tmp / "tokens.json", tmp / "feedback.jsonl"
    secrets = {
        name: tokens.add(file, name, scopes)[1]
        for name, scopes in (
            ("reader", ("predict",)),
            ("reporter", ("feedback",)),
            ("ops", ("admin",)),
            ("limited", ("feedback",)),
            ("doomed", ("feedback",)),
        )
    }
    log = tmp / "server.log"
    proc, url = serve(
        model_path,
        log,
        "--tokens",
        str(file),
        "--feedback",
        str(store),
        "--predict-auth",
        "required",
        "--feedback-rate",
        "1/hour",
        "--feedback-burst",
        "5",
    )
    try:
        wait_for(f"{url}/readyz", proc, log, 200)
        yield url, file, store, secrets
    finally:
        stop(proc)


def test_who_may_call_what(secured: tuple, model_path: Path) -> None:
    url, _, store, secrets = secured
    report = {"text": "Your parcel is held, pay 1.99 at parcel-fee.example", "label": "spam"}
    with httpx.Client(base_url=url, timeout=30) as c:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert c.get(path).status_code == 200, path  # always open
        cases = [
            (None, 401, "no token: send the header Authorization: Bearer <token>"),
            ("snt_000000000000_" + "A" * 43, 401, "the token is unknown or revoked"),
            ("not-even-a-token", 401, "the token is unknown or revoked"),
            (secrets["reader"], 403, "token 'reader' lacks the feedback scope (it has: predict)"),
        ]
        for secret, status, detail in cases:
            headers = bearer(secret) if secret else {}
            for method, path in (("POST", "/feedback"), ("GET", "/feedback/stats")):
                r = c.request(method, path, json=report, headers=headers)
                assert (r.status_code, r.json()) == (status, {"detail": detail}), path
                challenge = r.headers["www-authenticate"]
                assert challenge.startswith("Bearer")
                if secret:
                    assert secret not in r.text
            if status == 403:
                assert 'error="insufficient_scope", scope="feedback"' in challenge
        for secret, status in ((None, 401), (secrets["reporter"], 403), (secrets["reader"], 200)):
            headers = bearer(secret) if secret else {}
            assert c.post("/predict", json={"text": "hi"}, headers=headers).status_code == status
            assert c.get("/model", headers=headers).status_code == status
            assert c.get("/model/evaluation", headers=headers).status_code == status
            batch = c.post("/predict/batch", json={"texts": ["hi"]}, headers=headers)
            assert batch.status_code == status
        assert c.post("/predict", json={"text": "hi"}, headers=bearer(secrets["ops"])).is_success

        stored = c.post("/feedback", json=report, headers=bearer(secrets["reporter"]))
        assert stored.status_code == 201
        scorer = Scorer.load(model_path)
        expected = {
            **report,
            "id": None,
            "source": None,
            "reporter": "reporter",
            "score": pytest.approx(float(scorer.scores([report["text"]])[0])),
            "model_version": scorer.version,
        }
        assert stored.json() == expected
        assert json.loads(store.read_text().splitlines()[-1]) == expected
        by_admin = c.post(
            "/feedback",
            json={"text": "see you at six", "label": "ham"},
            headers=bearer(secrets["ops"]),
        )
        assert by_admin.status_code == 201 and by_admin.json()["reporter"] == "ops"
        # The client cannot say who reported, nor the verdict.
        for field, value in (("reporter", "someone-else"), ("score", 0.1), ("model_version", "v")):
            r = c.post(
                "/feedback", json={**report, field: value}, headers=bearer(secrets["reporter"])
            )
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field]
        stats = c.get("/feedback/stats", headers=bearer(secrets["reporter"]))
        assert stats.json()["total"] == 2


def test_a_revoked_token_is_refused_without_a_restart(secured: tuple) -> None:
    url, file, _, secrets = secured
    report = {"text": "Win a prize now", "label": "spam"}
    with httpx.Client(base_url=url, timeout=30) as c:
        headers = bearer(secrets["doomed"])
        assert c.post("/feedback", json=report, headers=headers).status_code == 201
        sentinelle("tokens", "revoke", "doomed", "--file", file, cwd=file.parent)
        r = c.post("/feedback", json=report, headers=headers)
        assert (r.status_code, r.json()["detail"]) == (401, "the token is unknown or revoked")
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        # A token added while the server runs works at once too.
        fresh = sentinelle(
            "tokens", "add", "fresh", "--scope", "feedback", "--file", file, cwd=file.parent
        ).stdout.splitlines()[-1]
        assert c.post("/feedback", json=report, headers=bearer(fresh)).status_code == 201


def test_a_reporter_over_its_rate_gets_a_429_with_retry_after(secured: tuple) -> None:
    url, _, _, secrets = secured
    with httpx.Client(base_url=url, timeout=30) as c:
        codes = []
        for i in range(7):
            r = c.post(
                "/feedback",
                json={"text": f"report {i}", "label": "ham"},
                headers=bearer(secrets["limited"]),
            )
            codes.append(r.status_code)
        assert codes == [201] * 5 + [429, 429]  # a burst of 5, then 1 an hour
        assert 3000 < int(r.headers["retry-after"]) <= 3600
        assert r.json()["detail"].startswith("reporter 'limited' is over its rate limit (1/hour")
        # Another reporter is not limited by this one.
        other = c.post(
            "/feedback", json={"text": "x", "label": "ham"}, headers=bearer(secrets["ops"])
        )
        assert other.status_code == 201


def test_serve_refuses_feedback_without_tokens_and_a_bad_token_file(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = sentinelle(
        "serve", "--model", model_path, "--feedback", "fb.jsonl", cwd=tmp_path, check=False
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--feedback needs --tokens TOKENS" in proc.stderr
    assert not (tmp_path / "fb.jsonl").exists()
    bad = tmp_path / "tokens.json"
    bad.write_text("{}")
    for args, message in (
        (["--predict-auth", "required"], "--predict-auth required needs --tokens TOKENS"),
        (["--tokens", str(tmp_path / "missing.json")], "missing.json: no such token file"),
        (["--tokens", str(bad)], "tokens.json: not a token file"),
    ):
        assert main(["serve", "--model", str(model_path), "--port", "1", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
