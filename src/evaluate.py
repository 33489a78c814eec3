"""Stage `evaluate`: score the test split and log metrics and plots with DVCLive.

Loads the model with the safe loader (allowlisted types, hash checked against
models/model.json), scores data/processed/test.parquet, and writes to
dvclive/evaluate: metrics.json (at the model's stored threshold) and the ROC,
precision-recall, DET, calibration and confusion-matrix plot data that
dvc.yaml declares.
"""

from pathlib import Path

from dvclive import Live

from sentinelle import io, models
from sentinelle.evaluation import classification_metrics
from sentinelle.params import Params
from sentinelle.stage import log, run

TEST = Path("data/processed/test.parquet")
LIVE_DIR = Path("dvclive/evaluate")


def main(params: Params) -> None:
    model, meta = models.load_with_metadata()
    test = io.read_table(TEST)
    scores = models.spam_scores(model, test["text"])
    y = (test["label"] == "spam").to_numpy().astype(int)
    threshold = meta["threshold"]
    metrics = classification_metrics(y, scores, threshold)

    with Live(str(LIVE_DIR), dvcyaml=False, save_dvc_exp=False) as live:
        for name, value in metrics.items():
            live.log_metric(name, round(float(value), 6) if isinstance(value, float) else value, plot=False)
        live.log_metric("threshold", threshold, plot=False)
        live.log_sklearn_plot("roc", y, scores, drop_intermediate=True)
        live.log_sklearn_plot("precision_recall", y, scores, drop_intermediate=True)
        live.log_sklearn_plot("det", y, scores)
        live.log_sklearn_plot("calibration", y, scores, n_bins=10)
        labels = test["label"].to_numpy()
        predicted = ["spam" if s >= threshold else "ham" for s in scores]
        live.log_sklearn_plot("confusion_matrix", labels, predicted)
    log.info(
        "test: accuracy %.4f, precision %.4f, recall %.4f, MCC %.4f, ROC AUC %.4f (%d messages)",
        metrics["accuracy"], metrics["precision"], metrics["recall"], metrics["mcc"],
        metrics["roc_auc"], len(test),
    )  # fmt: skip
    log.info("metrics: %s, plots: %s", LIVE_DIR / "metrics.json", LIVE_DIR / "plots")


if __name__ == "__main__":
    run(main, "evaluate", __doc__)
