"""Reports an attacker and honest users would send: generators of ordinary messages of one
kind and of a scam family, the attacks of issue 28 built from the training split, and a real
feedback server with a token per reporter to send them through."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import yaml

from sentinelle.serving import tokens
from sentinelle.serving.scorer import Scorer
from test_api import serve, stop, wait_for

STORE = "feedback/feedback.jsonl"

NAMES = ["Sam", "Jo", "Alex", "Priya", "Tom", "Lucy", "Raj", "Mel", "Kev", "Zoe", "Dave", "Amy"]
OPENERS = ["", "Hey", "Hi", "Hiya", "Oi", "Morning", "Hey {name}", "Hi {name}", "{name}"]
ASKS = [
    "want to grab lunch",
    "fancy lunch",
    "are we still on for lunch",
    "shall we meet for lunch",
    "free for lunch",
    "up for lunch",
    "can u do lunch",
    "meet me for lunch",
    "lunch",
    "do you want to get some lunch",
]
WHEN = ["today", "tomorrow", "on friday", "at 1", "at half 12", "later", "after the meeting", ""]
WHERE = [
    "at the usual place",
    "at the canteen",
    "near the office",
    "at the noodle bar",
    "in town",
    "at the cafe by the station",
    "",
]
CLOSERS = ["?", "? let me know", "? x", "? my treat", "? text me back", "? starving lol", "? :)"]


def lunch(n: int, seed: int, exclude: set[str] = frozenset()) -> list[str]:
    """``n`` distinct ordinary "meet for lunch" messages (none in ``exclude``)."""
    rng = np.random.default_rng(seed)
    out: set[str] = set()
    while len(out) < n:
        opener, ask, when, where, closer = (
            p[int(rng.integers(len(p)))] for p in (OPENERS, ASKS, WHEN, WHERE, CLOSERS)
        )
        name = NAMES[int(rng.integers(len(NAMES)))]
        words = [opener.format(name=name) + ("," if opener else ""), ask, when, where]
        text = " ".join(w for w in words if w) + closer
        text = text[0].upper() + text[1:]
        if text not in exclude:
            out.add(text)
    return sorted(out)


GREETINGS = ["Hi {name}", "Hello {name}", "Dear {name}", "Good day {name}"]
HOOKS = [
    "we saw your profile",
    "your CV was shared with us",
    "a recruiter recommended you",
    "we found your details online",
]
OFFERS = [
    "and have a part time role working from home",
    "for a remote job of a few hours a day",
    "for an online task job paying daily",
    "for flexible home based work",
]
PAY = [
    "earning {x} to {y} a day",
    "with daily pay of {x}-{y}",
    "paid {x} per day",
    "up to {y} daily",
]
CALLS = [
    "reply YES if interested",
    "message our HR on whatsapp",
    "reply to learn more",
    "ask our team on whatsapp how to begin",
]
REPORTED_NAMES = ["Anna", "Ben", "Chloe", "Dan", "Emma", "Finn", "Grace", "Harry"]
HELD_OUT_NAMES = ["Isla", "Jack", "Kate", "Liam", "Mia", "Noah", "Olivia", "Paul"]


def recruiter_scams(names: list[str], n: int, seed: int) -> list[str]:
    """``n`` distinct task-scam messages (a template this SMS collection has never seen)."""
    rng = np.random.default_rng(seed)
    out: set[str] = set()
    while len(out) < n:
        parts = [p[int(rng.integers(len(p)))] for p in (GREETINGS, HOOKS, OFFERS, PAY, CALLS)]
        x = int(rng.integers(3, 9)) * 10
        out.add(
            f"{parts[0]}, {parts[1]} {parts[2]}, {parts[3]}, {parts[4]}".format(
                name=names[int(rng.integers(len(names)))], x=x, y=x * 3
            )
        )
    return sorted(out)


def balanced_flip(train: pd.DataFrame, share: float, seed: int) -> list[tuple[str, str]]:
    """(text, flipped label) for ``share`` of the training rows, half of them spam and half
    ham, so the training spam share does not move."""
    rng = np.random.default_rng(seed)
    half = round(share * len(train) / 2)
    out = []
    for label, other in (("spam", "ham"), ("ham", "spam")):
        texts = train.loc[train["label"] == label, "text"].to_numpy()
        for i in rng.choice(len(texts), size=min(half, len(texts)), replace=False):
            out.append((str(texts[i]), other))
    return out


def spam_as_ham(train: pd.DataFrame, n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` training spam messages reported as ham."""
    texts = train.loc[train["label"] == "spam", "text"].to_numpy()
    rng = np.random.default_rng(seed)
    return [(str(texts[i]), "ham") for i in rng.choice(len(texts), size=n, replace=False)]


def fresh_lunch() -> list[str]:
    """50 ordinary lunch messages no attack reported (the attacked kind, held out)."""
    return lunch(50, 2, exclude=set(lunch(300, 1)))


@contextmanager
def feedback_server(
    repo: Path, tmp: Path, reporters: Iterable[str]
) -> Iterator[Callable[[str, list[tuple[str, str]]], None]]:
    """The project's model served with ``--feedback feedback/feedback.jsonl`` and a feedback
    token per reporter (a real server, real tokens); yields ``post(reporter, reports)``, which
    sends each ``(text, label)`` as that reporter. The server records the token's name and the
    served model's score of each."""
    file = tmp / "tokens.json"
    secrets = {name: tokens.add(file, name, ("feedback",))[1] for name in reporters}
    log = tmp / "server.log"
    proc, url = serve(
        repo / "models/model.skops",
        log,
        "--feedback",
        str(repo / STORE),
        "--tokens",
        str(file),
        "--feedback-rate",
        "100000/second",  # an attacker's volume: the rate limit is not the defence tested
        "--feedback-burst",
        "100000",
    )
    try:
        wait_for(f"{url}/readyz", proc, log, 200)
        with httpx.Client(base_url=url, timeout=60) as client:

            def post(reporter: str, reports: list[tuple[str, str]]) -> None:
                headers = {"Authorization": f"Bearer {secrets[reporter]}"}
                for text, label in reports:
                    r = client.post(
                        "/feedback", json={"text": text, "label": label}, headers=headers
                    )
                    assert r.status_code == 201, r.text

            yield post
    finally:
        stop(proc)


def use_feedback(repo: Path, path: str = STORE) -> None:
    """Set ``ingest.feedback`` in the project's params.yaml."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ingest"]["feedback"] = path
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def figures(repo: Path) -> dict[str, float]:
    """Spam recall and MCC on the test split, ham flagged, and fresh lunch messages flagged."""
    metrics = json.loads((repo / "dvclive/evaluate/details.json").read_text())
    scorer = Scorer.load(repo / "models/model.skops")
    flagged = int((scorer.scores(fresh_lunch()) >= scorer.threshold).sum())
    return {
        "recall": metrics["recall"],
        "mcc": metrics["mcc"],
        "fp": metrics["fp"],
        "ham_fpr": metrics["ham_fpr"],
        "lunch_flagged": flagged,
    }
