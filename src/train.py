"""Stage `train`: fit the spam classifier on the training split.

Builds one scikit-learn Pipeline (TF-IDF features + classifier) from the `train`
params and fits it on data/processed/train.parquet. Chooses the decision threshold
(the operating point) from out-of-fold scores of a stratified `train.cv_folds`-fold
cross-validation on the training split only: the threshold that catches the most
spam while flagging at most `train.max_ham_fpr` of ham; the same for each named
point of `train.operating_points` (e.g. `strict`, `lenient`). Writes models/model.skops
(skops, byte-reproducible) and models/model.json (thresholds, params, training-data
hash, library versions, model version). Logs params and training and
cross-validation metrics to dvclive/train.
"""

import dataclasses
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from sentinelle import io
from sentinelle.evaluation.metrics import choose_threshold, threshold_metrics
from sentinelle.modeling import operating_points, persistence, training
from sentinelle.modeling.calibration import probability_threshold
from sentinelle.params import Params
from sentinelle.processes import Forked
from sentinelle.stage import log, run

TRAIN = Path("data/processed/train.parquet")
LIVE_DIR = Path("dvclive/train")
DEFAULT_THRESHOLD = 0.5
LIBRARIES = ("scikit-learn", "skops", "numpy", "scipy", "numba", "nltk", "pandas")


def main(params: Params) -> None:
    p = params.train
    train = io.read_table(TRAIN, columns=["text", "label", "group"])
    y = (train["label"] == "spam").to_numpy()
    # Near-duplicates (same canonical text, grouped by ingest) stay in one fold, as
    # ingest keeps them on one side of the split.
    groups = train["group"]
    log.info("fitting %s on %s features, %d messages", p.classifier, p.features, len(train))
    trained = training.train(p, params.base.seed, train["text"], train["label"], groups)
    model = trained.model
    raw_threshold = choose_threshold(y, trained.oof, p.max_ham_fpr)
    threshold = probability_threshold(model, raw_threshold)
    cv = threshold_metrics(y, trained.oof >= raw_threshold)
    # Named operating points besides this default one, from the same out-of-fold scores.
    budgets = {**p.operating_points, operating_points.DEFAULT: p.max_ham_fpr}
    points = choose_points(model, y, trained.oof, budgets)

    # Every output is staged and moved in at the end, model.json (which names the model's
    # hash, what readers check) last: a killed run leaves the previous set.
    with io.outputs() as out:
        live_dir = out.folder(LIVE_DIR)
        model_path = out.path(persistence.MODEL_PATH)
        # A forked child saves the model while DVCLive is imported and logs here (0.33 s at
        # 5.5K).
        saved = Forked(persistence.save, model, model_path)
        log_training(live_dir, params, len(train), trained, y, threshold, cv, points)
        sha256 = saved.result()
        metadata = {
            "model_version": f"sentinelle-{sha256[:12]}",
            "model_sha256": sha256,
            "threshold": threshold,
            "default_threshold": DEFAULT_THRESHOLD,
            "max_ham_fpr": p.max_ham_fpr,
            "operating_points": points,  # recall and ham_fpr: cross-validated on train
            "params": {
                "preprocess": dataclasses.asdict(params.preprocess),
                "train": dataclasses.asdict(p),
                "seed": params.base.seed,
            },
            "training_data_sha256": io.sha256_table(TRAIN),
            "libraries": {name: version(name) for name in LIBRARIES},
        }
        out.write_json(persistence.METADATA_PATH, metadata)
    log.info(
        "threshold %.4f from %d-fold CV on train: spam recall %.4f, ham flagged %d of %d "
        "(target <= %g)",
        threshold,
        p.cv_folds,
        cv["recall"],
        cv["fp"],
        cv["n_ham"],
        p.max_ham_fpr,
    )
    log.info(
        "wrote %s (%s), %d features",
        persistence.MODEL_PATH,
        metadata["model_version"],
        trained.n_features,
    )


def log_training(
    live_dir: Path,
    params: Params,
    n_train: int,
    trained: training.Trained,
    y: np.ndarray,
    threshold: float,
    cv: dict[str, Any],
    points: dict[str, dict[str, Any]],
) -> None:
    """Log params and training and cross-validation metrics with DVCLive into ``live_dir``
    (a staging folder: ``io.Outputs.folder``)."""
    from dvclive import Live

    p, scores = params.train, trained.train_scores
    with Live(str(live_dir), dvcyaml=False, save_dvc_exp=False) as live:
        live.log_params({"train": dataclasses.asdict(p), "seed": params.base.seed})
        live.log_metric("n_train", n_train, plot=False)
        live.log_metric("n_features", trained.n_features, plot=False)
        live.log_metric(
            "train_accuracy", round(float(((scores >= threshold) == y).mean()), 6), plot=False
        )
        live.log_metric("threshold", round(threshold, 6), plot=False)
        for name in ("recall", "ham_fpr", "mcc", "f1", "fp", "n_ham"):
            live.log_metric(
                f"cv/{name}",
                round(cv[name], 6) if isinstance(cv[name], float) else cv[name],
                plot=False,
            )
        for name, point in points.items():
            for key in ("threshold", "recall", "ham_fpr"):
                live.log_metric(f"operating_points/{name}/{key}", round(point[key], 6), plot=False)


def choose_points(
    model: Any, y: np.ndarray, oof: np.ndarray, budgets: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """For each ``name -> max ham FPR``: the threshold on the model's spam scores and its
    cross-validated figures."""
    points = {}
    for name, max_ham_fpr in budgets.items():
        raw = choose_threshold(y, oof, max_ham_fpr)
        cv = threshold_metrics(y, oof >= raw)
        points[name] = {
            "max_ham_fpr": max_ham_fpr,
            "threshold": probability_threshold(model, raw),
            "recall": cv["recall"],
            "ham_fpr": cv["ham_fpr"],
            "fp": cv["fp"],
            "n_ham": cv["n_ham"],
        }
    return points


if __name__ == "__main__":
    run(main, "train", __doc__)
