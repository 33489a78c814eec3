"""Operating point, metrics, obfuscation normaliser, out-of-fold scores (issue 4)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from helpers import ROOT
from sentinelle.evaluation import metrics, plots
from sentinelle.modeling import calibration, inference
from sentinelle.modeling.fast import training
from sentinelle.modeling.fast.training import build_pipeline, raw_classifier
from sentinelle.modeling.pipeline import raw_scores
from sentinelle.params import load
from sentinelle.text.canonical import canonical
from sentinelle.text.normaliser import Normaliser
from sentinelle.text.obfuscation import TRICKS, obfuscate_many, obfuscate_word

# --- threshold selection ---------------------------------------------------------------


def test_threshold_allows_at_most_the_target_share_of_ham() -> None:
    y = np.array([0] * 1000 + [1] * 10)
    ham = np.linspace(0, 0.9, 1000)  # highest ham: 0.9, then 0.8990...
    scores = np.concatenate([ham, np.full(10, 0.95)])
    # 0.2 % of 1000 ham = 2 may be flagged: the 3rd highest ham (0.89820) must stay below,
    # and the threshold sits halfway to the next higher score (the 2nd highest ham).
    t = metrics.choose_threshold(y, scores, 0.002)
    assert t == pytest.approx((ham[-3] + ham[-2]) / 2)
    assert ((scores >= t) & (y == 0)).sum() == 2
    # With a zero target nothing ham may be flagged: halfway between 0.9 and 0.95.
    assert metrics.choose_threshold(y, scores, 0.0) == pytest.approx(0.925)


def test_threshold_depends_only_on_the_scores_it_is_given() -> None:
    """The threshold is a function of training (out-of-fold) scores alone: no test input."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = rng.random(500)
    t1 = metrics.choose_threshold(y, s, 0.01)
    assert t1 == metrics.choose_threshold(y.copy(), s.copy(), 0.01)
    import inspect

    assert list(inspect.signature(metrics.choose_threshold).parameters) == [
        "y_true",
        "scores",
        "max_ham_fpr",
    ]


def _separable(n_ham: int, n_spam: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic messages: ham and spam share a vocabulary, spam draws from its own words too."""
    rng = np.random.default_rng(seed)
    common = [f"w{i}" for i in range(200)]
    spammy = [f"s{i}" for i in range(40)]
    texts, labels = [], []
    for label, n in (("ham", n_ham), ("spam", n_spam)):
        for _ in range(n):
            words = list(rng.choice(common, 8))
            if label == "spam":
                words += list(rng.choice(spammy, 3))
            texts.append(" ".join(words))
            labels.append(label)
    return np.array(texts, dtype=object), np.array(labels)


def test_threshold_from_training_cv_meets_the_fpr_target_on_held_out_data() -> None:
    p = dataclasses.replace(load(ROOT / "params.yaml").train, features="word", max_ham_fpr=0.01)
    texts, labels = _separable(1500, 300, seed=1)
    held_texts, held_labels = _separable(1500, 300, seed=2)  # never seen by training
    model = build_pipeline(p, 42).fit(texts, labels)
    oof = training.out_of_fold_scores(p, 42, texts, labels)
    y = (labels == "spam").astype(int)
    raw = metrics.choose_threshold(y, oof, p.max_ham_fpr)
    threshold = calibration.probability_threshold(model, raw)
    held = inference.spam_scores(model, held_texts)
    held_y = (held_labels == "spam").astype(int)
    m = metrics.threshold_metrics(held_y, held >= threshold)
    assert m["ham_fpr"] <= p.max_ham_fpr
    assert m["recall"] > 0.95


def test_out_of_fold_scores_equal_a_pipeline_refitted_per_fold() -> None:
    from sklearn.model_selection import StratifiedKFold

    texts, labels = _separable(300, 60, seed=3)
    base = load(ROOT / "params.yaml").train
    for p in (
        base,
        dataclasses.replace(
            base, features="word", min_df=2, sublinear_tf=False, classifier="logreg"
        ),
    ):
        oof = training.out_of_fold_scores(p, 7, texts, labels)
        expected = np.empty(len(texts))
        for tr, te in StratifiedKFold(p.cv_folds, shuffle=True, random_state=7).split(
            texts, labels
        ):
            pipe = build_pipeline(p, 7)
            features = pipe[0].fit(texts[tr])
            clf = raw_classifier(p, 7).fit(features.transform(texts[tr]), labels[tr])
            expected[te] = raw_scores(clf, features.transform(texts[te]))
        # logreg: scikit-learn's own fit; the SVM: sentinelle.modeling.fast.linear, the same optimum
        # up to tolerance
        np.testing.assert_allclose(oof, expected, atol=1e-6 if p.classifier == "logreg" else 1e-4)


def test_probability_threshold_flags_exactly_what_the_raw_threshold_flags() -> None:
    p = load(ROOT / "params.yaml").train
    texts, labels = _separable(300, 60, seed=4)
    model = build_pipeline(p, 42).fit(texts, labels)
    decision = (
        model[-1].calibrated_classifiers_[0].estimator.decision_function(model[0].transform(texts))
    )
    probs = inference.spam_scores(model, texts)
    for raw in (-0.5, 0.0, 0.3):
        t = calibration.probability_threshold(model, raw)
        assert 0 < t < 1
        np.testing.assert_array_equal(probs >= t, decision >= raw)


# --- metrics ---------------------------------------------------------------------------


def test_threshold_metrics_match_hand_computed_values() -> None:
    # 6 spam, 4 ham; tp=4, fn=2, fp=1, tn=3
    y = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
    pred = np.array([1, 1, 1, 1, 0, 0, 1, 0, 0, 0])
    m = metrics.threshold_metrics(y, pred)
    assert (m["tp"], m["fn"], m["fp"], m["tn"], m["n_ham"], m["n_spam"]) == (4, 2, 1, 3, 4, 6)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["precision"] == pytest.approx(0.8)
    assert m["recall"] == pytest.approx(4 / 6)
    assert m["f1"] == pytest.approx(2 * 0.8 * (4 / 6) / (0.8 + 4 / 6))
    assert m["mcc"] == pytest.approx((4 * 3 - 1 * 2) / math.sqrt(5 * 6 * 4 * 5))
    assert m["ham_fpr"] == pytest.approx(0.25)
    hm, sm = 1.5 / 5, 2.5 / 7
    logit = (math.log(hm / (1 - hm)) + math.log(sm / (1 - sm))) / 2
    assert m["lam_pct"] == pytest.approx(100 / (1 + math.exp(-logit)))


def test_ranking_metrics_match_hand_computed_values() -> None:
    y = np.array([0, 0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.8, 0.7, 0.9])
    m = metrics.ranking_metrics(y, s)
    # 8 spam-ham pairs: only (0.7 vs 0.8) is misordered -> AUC 7/8.
    assert m["roc_auc"] == pytest.approx(7 / 8)
    assert m["one_minus_roca_pct"] == pytest.approx(12.5)
    # With no ham flagged allowed (0.1 % of 4 rounds to 0), only the 0.9 spam is caught.
    assert m["recall_at_fpr_0_1pct"] == pytest.approx(0.5)
    assert m["average_precision"] == pytest.approx(0.5 * 1 + 0.5 * (2 / 3))


def test_bootstrap_intervals_are_seeded_and_contain_the_estimate() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    pred = np.where(rng.random(400) < 0.9, y, 1 - y)
    a = metrics.bootstrap_intervals(y, pred, 500, seed=1)
    assert a == metrics.bootstrap_intervals(y, pred, 500, seed=1)
    m = metrics.threshold_metrics(y, pred)
    for name in ("mcc", "recall"):
        low, high = a[name]
        assert low < m[name] < high
        assert high - low < 0.2


def test_bootstrap_from_confusion_counts_matches_resampling_messages() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.2).astype(int)
    pred = np.where(rng.random(300) < 0.92, y, 1 - y)
    ours = metrics.bootstrap_intervals(y, pred, 20_000, seed=2)
    # The textbook bootstrap: resample the messages themselves.
    idx = np.random.default_rng(3).integers(0, len(y), size=(4000, len(y)))
    recall = np.array([metrics.threshold_metrics(y[i], pred[i])["recall"] for i in idx])
    low, high = np.percentile(recall, [2.5, 97.5])
    assert ours["recall"][0] == pytest.approx(low, abs=0.02)
    assert ours["recall"][1] == pytest.approx(high, abs=0.02)


def test_threshold_curve_counts_scores_at_or_above_each_threshold() -> None:
    y = np.array([0, 0, 1, 1])
    s = np.array([0.2, 0.6, 0.6, 0.9])
    curve = {row["threshold"]: row for row in plots.threshold_curve(y, s, points=11)}
    assert curve[0.6] == {"threshold": 0.6, "ham_fpr": 0.5, "spam_recall": 1.0}
    assert curve[0.7] == {"threshold": 0.7, "ham_fpr": 0.0, "spam_recall": 0.5}
    assert curve[0.0]["ham_fpr"] == 1.0 and curve[1.0]["spam_recall"] == 0.0


def test_error_table_lists_worst_errors_first() -> None:
    labels = ["ham", "ham", "ham", "spam", "spam"]
    messages = ["ok", "free\tcall", "hi", "win", "prize"]
    tsv = plots.error_table(labels, messages, np.array([0.1, 0.9, 0.7, 0.2, 0.05]), 0.5, 5)
    assert tsv.splitlines() == [
        "kind\tscore\tlabel\tmessage",
        "false_positive\t0.900000\tham\tfree call",
        "false_positive\t0.700000\tham\thi",
        "false_negative\t0.050000\tspam\tprize",
        "false_negative\t0.200000\tspam\twin",
    ]


# --- obfuscation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obfuscated", "plain"),
    [
        ("FR33 pr1ze", "free prize"),
        ("f.r.e.e entry", "free entry"),
        ("f-r-e-e entry", "free entry"),
        ("F R E E entry", "free entry"),
        ("Frее саsh", "free cash"),  # Cyrillic е, а, с
        ("fr\u200bee ca\u200dsh\u2060", "free cash"),
        ("c@$h pr!ze", "cash prize"),
        ("frée prîze", "free prize"),
        ("ＦＲＥＥ 𝐜𝐚𝐬𝐡", "free cash"),
        ("ʀᴇᴘʟʏ ɴᴏᴡ", "reply now"),
    ],
)
def test_canonical_undoes_obfuscation(obfuscated: str, plain: str) -> None:
    assert canonical(obfuscated, placeholders=False) == plain


@pytest.mark.parametrize(
    "text",
    ["u r a star", "i.e. at 10 a.m.", "hi.how are u", "win150 150p 4get 1st", "see u l8r gr8"],
)
def test_canonical_leaves_ordinary_text_alone(text: str) -> None:
    assert canonical(text, placeholders=False) == text


def test_every_obfuscation_trick_is_undone_by_the_normaliser() -> None:
    normalise = Normaliser(placeholders=False)
    rng = np.random.default_rng(0)
    for trick in TRICKS:
        for _ in range(20):
            word = obfuscate_word("Cheapest", trick, rng)
            assert word != "Cheapest" or trick == "case"
            if trick != "leet":  # leet is ambiguous for some letters ("1" may be i or l)
                assert normalise(word) == "cheapest", (trick, word)


def test_obfuscation_is_seeded() -> None:
    texts = ["WINNER!! Claim your FREE prize now", "are you coming home tonight"]
    assert obfuscate_many(texts, 5, 0.5) == obfuscate_many(texts, 5, 0.5)
    assert obfuscate_many(texts, 5, 0.5) != obfuscate_many(texts, 6, 0.5)
    assert obfuscate_many(texts, 5, 0.0) == texts


def test_only_the_evaluate_stage_reads_the_test_split() -> None:
    """No test-split leakage: in dvc.yaml only `evaluate` depends on processed test data."""
    import yaml

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    readers = sorted(
        name
        for name, stage in stages.items()
        for dep in stage.get("deps", [])
        if dep in ("data/processed", "data/processed/test.parquet")
    )
    assert readers == ["evaluate"]
    assert "test" not in (ROOT / "src/train.py").read_text().replace("__main__", "")
