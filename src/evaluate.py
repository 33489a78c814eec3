"""Stage `evaluate`: score the test split and log metrics and plots with DVCLive.

The only reader of data/processed/test.parquet. Loads the model with the safe
loader (allowlisted types, hash checked against models/model.json) and scores the
test split. Writes to dvclive/evaluate:
- metrics.json (DVCLive; the DVC metrics runs are compared by): the threshold, spam
  recall, precision, ham FPR, MCC and ROC AUC at it, and spam recall on obfuscated
  messages (`obfuscated/recall`);
- details.json: every figure, at the model's stored threshold (top level) and at the
  default 0.5 (`default_threshold/`): accuracy, precision, spam recall, F1, MCC, ham FPR
  with its counts, lam %; ROC AUC, 1-ROCA %, average precision, spam recall at
  ham FPR <= 0.1 %; seeded bootstrap 95 % intervals of MCC and recall (`ci95/`); spam
  recall and ham FPR on obfuscated messages (`obfuscated/`); recall, ham FPR,
  precision and MCC at each named operating point (`operating_points/<name>/`);
- plots/: ROC, precision-recall, DET, calibration, confusion matrix, the
  threshold curve, and an image of the most influential features per class;
- errors.tsv: the worst false positives and false negatives with their scores.
Also writes models/evaluation.json, the test headline that travels with the model
(served by the API's GET /model).
Also writes models/reference.json, the reference profile `sentinelle monitor`
compares production traffic with (sentinelle.production.monitoring.reference): test-split
scores, flagged share and label-free estimates, training-message descriptors.
"""

from pathlib import Path
from typing import Any

import numpy as np
from dvclive import Live
from sklearn.metrics import roc_curve

from sentinelle import io, paths
from sentinelle.evaluation.metrics import (
    bootstrap_intervals,
    classification_metrics,
    threshold_metrics,
)
from sentinelle.evaluation.plots import (
    error_table,
    make_strict_json,
    plot_top_features,
    threshold_curve,
)
from sentinelle.modeling.inference import spam_scores, top_features
from sentinelle.modeling.persistence import load_with_metadata
from sentinelle.params import EvaluateParams, Params
from sentinelle.production.monitoring import reference
from sentinelle.stage import log, run
from sentinelle.text.normaliser import Normaliser
from sentinelle.text.obfuscation import obfuscate_many

TEST = paths.PROCESSED / "test.parquet"
TRAIN = paths.PROCESSED / "train.parquet"
LIVE_DIR = paths.DVCLIVE_EVALUATE
PLOTS = paths.PLOTS
FEATURES_PNG = PLOTS / "images" / "top_features.png"
ERRORS = paths.ERRORS
DETAILS = paths.DETAILS
# The DVC metrics (metrics.json), with threshold and obfuscated/recall: what runs are compared by.
HEADLINE_METRICS = ("recall", "precision", "ham_fpr", "mcc", "roc_auc")
EVALUATION = paths.EVALUATION
TOP_FEATURES = 20
HEADLINE = ("recall", "ham_fpr", "precision", "f1", "mcc", "roc_auc", "tp", "fp", "tn", "fn")


def _rounded(value: float | int) -> float | int:
    return round(float(value), 6) if isinstance(value, float) else value


def obfuscated_scores(
    model: Any, messages: list[str], preprocess: dict[str, Any], seed: int, rate: float
) -> np.ndarray:
    """Spam scores of ``messages`` obfuscated (``obfuscate_many``, seeded), then normalised as
    the model expects (with the preprocess params it was trained with)."""
    normalise = Normaliser(**preprocess)
    return spam_scores(model, normalise.many(obfuscate_many(messages, seed, rate)))


def main(params: Params) -> None:
    p = params.evaluate
    seed = params.base.seed
    model, meta = load_with_metadata()
    test = io.read_table(TEST)
    scores = spam_scores(model, test["text"])
    y = (test["label"] == "spam").to_numpy().astype(int)
    threshold = meta["threshold"]
    # Robustness: the same messages obfuscated, scored at the same threshold.
    obf_scores = obfuscated_scores(
        model, test["message"].tolist(), meta["params"]["preprocess"], seed, p.obfuscation_rate
    )
    details, at_threshold, points = measure(y, scores, obf_scores, meta, p, seed)

    # Every output is staged and moved in at the end, the model card last: a killed run
    # leaves the previous set.
    with io.outputs() as out:
        live_dir = out.folder(LIVE_DIR)
        log_results(live_dir, details, y, scores, test["label"].to_numpy(), threshold)
        profile = reference.build(
            model,
            meta,
            scores,
            test["text"].tolist(),
            y.astype(bool),
            io.read_table(TRAIN, columns=["message"])["message"].tolist(),
            seed,
        )
        title = f"Most influential features ({meta['params']['train']['classifier']})"
        png = plot_top_features(top_features(model, TOP_FEATURES), title)
        out.write_bytes(FEATURES_PNG, png)
        out.write_text(
            ERRORS, error_table(test["label"], test["message"], scores, threshold, p.top_errors)
        )
        out.write_json(DETAILS, details)
        out.write_json(reference.REFERENCE_PATH, profile)
        out.write_json(EVALUATION, evaluation_card(meta, at_threshold, points, y, scores))
    summarise(details, len(test))


def measure(
    y: np.ndarray,
    scores: np.ndarray,
    obf_scores: np.ndarray,
    meta: dict[str, Any],
    p: EvaluateParams,
    seed: int,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]:
    """Every test figure (details.json), and the metrics at the model's threshold and at each
    operating point train chose (for the model card)."""
    threshold = meta["threshold"]
    at_threshold = classification_metrics(y, scores, threshold)
    at_default = classification_metrics(y, scores, meta["default_threshold"])
    intervals = (
        bootstrap_intervals(y, scores >= threshold, p.bootstrap, seed) if p.bootstrap else {}
    )
    points = {
        name: threshold_metrics(y, scores >= point["threshold"])
        for name, point in meta.get("operating_points", {}).items()
    }
    obf = classification_metrics(y, obf_scores, threshold)
    robustness = {
        "recall": obf["recall"],
        "ham_fpr": obf["ham_fpr"],
        "fp": obf["fp"],
        "recall_drop_points": 100 * (at_threshold["recall"] - obf["recall"]),
    }

    details: dict[str, Any] = {"threshold": _rounded(threshold)}
    details.update({name: _rounded(value) for name, value in at_threshold.items()})
    details["ci95"] = {
        f"{name}_{side}": _rounded(value)
        for name, (low, high) in sorted(intervals.items())
        for side, value in (("low", low), ("high", high))
    }
    details["default_threshold"] = {"threshold": meta["default_threshold"]}
    details["default_threshold"].update({k: _rounded(v) for k, v in at_default.items()})
    keys = ("recall", "ham_fpr", "precision", "mcc", "fp", "n_ham")
    details["operating_points"] = {
        name: {k: _rounded(at_point[k]) for k in keys} for name, at_point in points.items()
    }
    details["obfuscated"] = {"rate": p.obfuscation_rate}
    details["obfuscated"].update({k: _rounded(v) for k, v in robustness.items()})
    return details, at_threshold, points


def summarise(d: dict[str, Any], n: int) -> None:
    """The figures a reader looks at first, in the log."""
    ci = d["ci95"]
    log.info(
        "test at threshold %.4f: spam recall %.4f, ham flagged %d of %d (FPR %.4f%%), "
        "precision %.4f, F1 %.4f, MCC %.4f [95%% CI %.4f-%.4f], 1-ROCA %.3f%%, "
        "recall at ham FPR <= 0.1%% %.4f (%d messages)",
        d["threshold"],
        d["recall"],
        d["fp"],
        d["n_ham"],
        100 * d["ham_fpr"],
        d["precision"],
        d["f1"],
        d["mcc"],
        ci.get("mcc_low", float("nan")),
        ci.get("mcc_high", float("nan")),
        d["one_minus_roca_pct"],
        d["recall_at_fpr_0_1pct"],
        n,
    )
    obf = d["obfuscated"]
    log.info(
        "obfuscated (rate %.2f): spam recall %.4f (drop %.2f points), ham flagged %d of %d",
        obf["rate"],
        obf["recall"],
        obf["recall_drop_points"],
        obf["fp"],
        d["n_ham"],
    )
    for name, at_point in d["operating_points"].items():
        log.info(
            "operating point %s: spam recall %.4f, ham flagged %d of %d, precision %.4f",
            name,
            at_point["recall"],
            at_point["fp"],
            at_point["n_ham"],
            at_point["precision"],
        )
    log.info(
        "metrics: %s (every one: %s), plots: %s, errors: %s, reference profile: %s",
        paths.METRICS,
        DETAILS,
        PLOTS,
        ERRORS,
        reference.REFERENCE_PATH,
    )


def log_results(
    live_dir: Path,
    details: dict[str, Any],
    y: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
) -> None:
    """The headline metrics and the plots, with DVCLive, into ``live_dir`` (a staging folder:
    ``io.Outputs.folder``)."""
    with Live(str(live_dir), dvcyaml=False, save_dvc_exp=False) as live:
        # The headline runs are compared by (dvc exp show); every figure: details.json.
        live.log_metric("threshold", details["threshold"], plot=False)
        for name in HEADLINE_METRICS:
            live.log_metric(name, details[name], plot=False)
        live.log_metric("obfuscated/recall", details["obfuscated"]["recall"], plot=False)
        live.log_sklearn_plot("roc", y, scores, drop_intermediate=True)
        live.log_sklearn_plot("precision_recall", y, scores, drop_intermediate=True)
        live.log_sklearn_plot("det", y, scores)
        live.log_sklearn_plot("calibration", y, scores, n_bins=10)
        live.log_sklearn_plot(
            "confusion_matrix", labels, np.where(scores >= threshold, "spam", "ham")
        )
        live.log_plot(
            "threshold",
            threshold_curve(y, scores),
            x="threshold",
            y=["ham_fpr", "spam_recall"],
            title="Ham FPR and spam recall vs threshold (test split)",
        )
    # roc_curve's first threshold is +inf, which DVCLive writes as `Infinity` (not JSON).
    for plot_file in sorted((live_dir / PLOTS.relative_to(LIVE_DIR) / "sklearn").glob("*.json")):
        make_strict_json(plot_file)


def evaluation_card(
    meta: dict[str, Any],
    at_threshold: dict[str, Any],
    points: dict[str, dict[str, Any]],
    y: np.ndarray,
    scores: np.ndarray,
) -> dict[str, Any]:
    """The test results that travel with the model (models/evaluation.json, the API's model
    card): the headline at its threshold, each operating point, and the ROC curve."""
    fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=True)
    return {
        "model_version": meta["model_version"],
        "split": "test",
        "messages": len(y),
        "threshold": _rounded(float(meta["threshold"])),
        "headline": {name: _rounded(at_threshold[name]) for name in HEADLINE},
        "operating_points": {
            name: {k: _rounded(m[k]) for k in ("recall", "ham_fpr", "precision", "fp", "n_ham")}
            for name, m in points.items()
        },
        "roc": {"fpr": [_rounded(float(x)) for x in fpr], "tpr": [_rounded(float(x)) for x in tpr]},
    }


if __name__ == "__main__":
    run(main, "evaluate", __doc__)
