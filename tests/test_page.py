"""The web page at /: a real `sentinelle serve` process and a real headless Chromium.

Skipped when Debian's ``chromium`` and ``chromium-driver`` are absent (``.ci/run`` installs
them). Set SENTINELLE_PAGE_SCREENSHOT=docs/page.png to refresh the README's screenshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import tiny_model
from helpers import ROOT
from sentinelle.experiments import plots_report
from sentinelle.serving import tokens
from test_api import serve, stop, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="needs Debian's chromium and chromium-driver "
        "(apt-get install chromium chromium-driver)",
    ),
    # A real browser: CI runs it (SENTINELLE_FULL_TESTS=1), as does naming the file.
    pytest.mark.slow,
]
SPAM = "WIN a FREE prize! Call now"
REPORT = {
    "rows_read": 120,
    "rows": 100,
    "duplicates": 20,
    "splits": {
        "train": {"rows": 80, "spam": 10, "ham": 70},
        "test": {"rows": 20, "spam": 3, "ham": 17},
    },
}
WAIT = 60  # seconds the browser may take to show something (a loaded CI machine)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder as the pipeline leaves it: the model, the committed evaluation, the
    data report."""
    root = tmp_path_factory.mktemp("project")
    tiny_model.make(root / "models")
    # What git holds (a fresh clone): the headline metrics and the plot data.
    shutil.copytree(
        ROOT / "dvclive" / "evaluate",
        root / "dvclive" / "evaluate",
        ignore=shutil.ignore_patterns("details.json", "errors.tsv"),
    )
    (root / "data").mkdir()
    (root / "data" / "report.json").write_text(json.dumps(REPORT))
    md5 = hashlib.md5((root / "models" / "model.skops").read_bytes()).hexdigest()
    lock = {"stages": {"evaluate": {"deps": [{"path": "models/model.skops", "md5": md5}]}}}
    (root / "dvc.lock").write_text(json.dumps(lock))  # JSON is YAML
    return root


@pytest.fixture(scope="module")
def server(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc, url = serve(project / "models" / "model.skops", log)
    try:
        wait_for(f"{url}/readyz", proc, log, 200)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        *plots_report.HEADLESS_FLAGS,
        "--window-size=1000,1100",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(condition)


def shown(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return wait(
        driver,
        lambda d: next(
            (e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None
        ),
    )


def pieces(driver: Any) -> list[tuple[str, str]]:
    """The highlighted message as (class of its <mark>, or "" for plain text, text) pieces."""
    return [
        tuple(p)
        for p in driver.execute_script(
            "return Array.from(document.getElementById('highlighted').childNodes)"
            ".map(n => [n.nodeType === 1 ? n.className : '', n.textContent]);"
        )
    ]


def marks(driver: Any) -> list[tuple[str, int, int, str]]:
    """Each <mark> of the highlighted message: its side, its code-point offsets, its text."""
    out, at = [], 0
    for cls, text in pieces(driver):
        n = len(text)  # Python counts code points, as the API's offsets do
        if cls:
            out.append((cls.split()[0], at, at + n, text))
        at += n
    return out


def listed(text: str, why: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    """The words an explanation lists, as ``marks`` gives them, in message order."""
    items = [("spam", i) for i in why["spam"]] + [("ham", i) for i in why["ham"]]
    out = [(side, i["start"], i["end"], i["text"]) for side, i in items]
    assert all(text[start:end] == word for _, start, end, word in out)
    return sorted(out, key=lambda m: m[1])


def test_a_message_gets_its_verdict_and_highlighted_words(browser: Any, server: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    model = httpx.get(f"{server}/model").json()
    expected = httpx.post(f"{server}/predict?explain=8", json={"text": SPAM}).json()
    top = expected["explanation"]["spam"][0]
    assert expected["is_spam"] and (top["text"], top["start"], top["end"]) == ("FREE", 6, 10)

    browser.get(server + "/")
    wait(browser, lambda d: "ready" in d.find_element(By.ID, "status").text)
    box = browser.find_element(By.ID, "message")
    box.send_keys(SPAM)
    browser.find_element(By.ID, "submit").click()
    verdict = shown(browser, "#verdict")
    assert verdict.text == "spam"
    score = browser.find_element(By.ID, "score-text").text
    assert f"{expected['spam_score']:.3f}" in score and "at or above the threshold 0.350" in score

    # The message is all there, and each listed word is a mark of its side, at its place.
    assert "".join(text for _, text in pieces(browser)) == SPAM
    assert marks(browser) == listed(SPAM, expected["explanation"])
    first = browser.find_element(By.CSS_SELECTOR, "#spam-table tbody tr td q")
    assert first.text == "FREE"

    # The operating points /model lists, the default one chosen; a stricter one flips it.
    select = Select(browser.find_element(By.ID, "operating-point"))
    assert [o.get_attribute("value") for o in select.options] == list(model["operating_points"])
    assert select.first_selected_option.get_attribute("value") == "default"
    assert "operating point “default”" in score
    strict = httpx.post(
        f"{server}/predict?explain=8&operating_point=strict", json={"text": SPAM}
    ).json()
    assert strict["threshold"] == tiny_model.STRICT and not strict["is_spam"]
    select.select_by_value("strict")
    browser.find_element(By.ID, "submit").click()
    wait(browser, lambda d: "strict" in d.find_element(By.ID, "score-text").text)
    assert verdict.text == "not spam (ham)"
    assert (
        "below the threshold 0.800 of the operating point “strict”"
        in browser.find_element(By.ID, "score-text").text
    )
    select.select_by_value("default")
    # Feedback appears only when the server collects it.
    feedback = httpx.get(f"{server}/feedback/stats").status_code != 404
    assert browser.find_element(By.ID, "feedback").is_displayed() == feedback

    # By keyboard: Ctrl+Enter checks the new text; a ham message gets ham-ward marks.
    ham = "see you at lunch tomorrow"
    answer = httpx.post(f"{server}/predict?explain=8", json={"text": ham}).json()
    box.clear()
    box.send_keys(ham, Keys.CONTROL, Keys.ENTER)
    wait(browser, lambda d: "".join(t for _, t in pieces(d)) == ham)
    assert verdict.text == ("spam" if answer["is_spam"] else "not spam (ham)")
    assert any(cls.startswith("ham") for cls, _ in pieces(browser))
    assert marks(browser) == listed(ham, answer["explanation"])

    # Emoji and other astral characters (two UTF-16 units each in the browser) before,
    # inside and between the words: every mark is still the word the API names.
    emoji = "😀👍🏽 WIN a FREE prize! 𝐂𝐚𝐥𝐥 now ❤️ 😀"
    answer = httpx.post(f"{server}/predict?explain=20", json={"text": emoji}).json()
    words = listed(emoji, answer["explanation"])
    assert {"😀👍🏽", "FREE", "𝐂𝐚𝐥𝐥"} <= {w for *_, w in words}
    browser.find_element(By.ID, "explain-k").clear()
    browser.find_element(By.ID, "explain-k").send_keys("20")
    # As pasted: chromedriver's send_keys types only characters of the Basic Multilingual Plane.
    browser.execute_script("arguments[0].value = arguments[1];", box, emoji)
    browser.find_element(By.ID, "submit").click()
    wait(browser, lambda d: "".join(t for _, t in pieces(d)) == emoji)
    assert marks(browser) == words
    browser.find_element(By.ID, "explain-k").clear()
    browser.find_element(By.ID, "explain-k").send_keys("8")

    if os.environ.get("SENTINELLE_PAGE_SCREENSHOT"):
        box.clear()
        box.send_keys(SPAM)
        browser.find_element(By.ID, "submit").click()
        wait(browser, lambda d: "".join(t for _, t in pieces(d)) == SPAM)
        browser.set_window_size(1000, 1000)
        browser.save_screenshot(os.environ["SENTINELLE_PAGE_SCREENSHOT"])


def test_the_model_card_shows_the_plots(browser: Any, server: str, project: Path) -> None:
    from selenium.webdriver.common.by import By

    evaluate = project / "dvclive" / "evaluate"
    roc = json.loads((evaluate / "plots" / "sklearn" / "roc.json").read_text())["roc"]
    metrics = json.loads((evaluate / "metrics.json").read_text())
    confusion = json.loads((evaluate / "plots" / "sklearn" / "confusion_matrix.json").read_text())
    counts = Counter((r["actual"], r["predicted"]) for r in confusion)

    browser.get(server + "/#model")
    curve = shown(browser, "#roc polyline")
    assert len(curve.get_attribute("points").split()) == len(roc)
    cells = [c.text for c in shown(browser, "#confusion").find_elements(By.CSS_SELECTOR, "td.num")]
    pairs = (("ham", "ham"), ("ham", "spam"), ("spam", "ham"), ("spam", "spam"))  # tn fp fn tp
    assert cells == [str(counts[pair]) for pair in pairs]
    image = shown(browser, "#images img")
    wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0)
    assert image.get_attribute("alt") == "Plot: top features"
    facts = browser.find_element(By.ID, "model-facts").text
    assert "logreg" in facts and httpx.get(f"{server}/model").json()["model_version"] in facts
    metrics_text = browser.find_element(By.ID, "metrics-table").text
    assert f"Recall (spam caught) {100 * metrics['recall']:.2f} %" in metrics_text
    data = browser.find_element(By.ID, "data-table").text
    assert "Rows read 120" in data and "train: spam / ham 10 / 70" in data
    # The strongest weights, as /model names them (no `word__`/`char__` names).
    top = httpx.get(f"{server}/model").json()["top_ngrams"]
    cards = browser.find_elements(By.CSS_SELECTOR, "#top-ngrams li code")
    assert [c.text for c in cards] == [name for name, _ in top["spam"] + top["ham"]]
    assert not any("__" in c.text for c in cards)
    # The evaluation is of the served model (dvc.lock says so): no warning.
    assert httpx.get(f"{server}/model/evaluation").json()["of_served_model"] is True
    assert not browser.find_element(By.ID, "other-model").is_displayed()
    # The nav link of the view shown is marked as the current page.
    assert browser.find_element(By.ID, "nav-model").get_attribute("aria-current") == "page"


def test_this_is_wrong_reports_the_verdict_to_feedback(
    browser: Any, project: Path, tmp_path: Path
) -> None:
    """With `serve --feedback FILE --tokens TOKENS`, the button asks for a token, then stores
    the opposite label of the verdict, reported by the token's name."""
    from selenium.webdriver.common.by import By

    store, file = tmp_path / "feedback.jsonl", tmp_path / "tokens.json"
    _, secret = tokens.add(file, "page-user", ("feedback",))
    log = tmp_path / "server.log"
    proc, url = serve(
        project / "models" / "model.skops", log, "--feedback", str(store), "--tokens", str(file)
    )
    try:
        wait_for(f"{url}/readyz", proc, log, 200)
        browser.get(url + "/")
        wait(browser, lambda d: "ready" in d.find_element(By.ID, "status").text)
        browser.find_element(By.ID, "message").send_keys(SPAM)
        browser.find_element(By.ID, "submit").click()
        assert shown(browser, "#verdict").text == "spam"
        shown(browser, "#wrong").click()
        # No token yet: not recorded, and the page asks for one.
        why = shown(browser, "#token-why").text
        assert why == "no token: send the header Authorization: Bearer <token>"
        assert "Not recorded" in browser.find_element(By.ID, "feedback-status").text
        assert not store.exists() or store.read_text() == ""
        browser.find_element(By.ID, "token").send_keys(secret)
        browser.find_element(By.ID, "token-submit").click()  # and the report is sent again
        wait(browser, lambda d: "Thank you" in d.find_element(By.ID, "feedback-status").text)
        status = browser.find_element(By.ID, "feedback-status").text
        assert status == "Thank you: recorded as ham."
        assert not browser.find_element(By.ID, "token-form").is_displayed()
        records = [json.loads(line) for line in store.read_text().splitlines()]
        assert [(r["text"], r["label"], r["reporter"]) for r in records] == [
            (SPAM, "ham", "page-user")
        ]
        stats = httpx.get(f"{url}/feedback/stats", headers={"Authorization": f"Bearer {secret}"})
        assert stats.json()["by_label"] == {"ham": 1, "spam": 0}
    finally:
        stop(proc)
