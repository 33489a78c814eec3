"""Stage `train`: fit the spam classifier on the training split.

Fits one scikit-learn Pipeline (TF-IDF features + classifier) from the `train`
params on data/processed/train.parquet, with the engine `train.engine` picks
(`sentinelle.modeling.sklearn_engine`, the specification, or `.fast`, the same model
at scale; `auto`: by size). Chooses the decision threshold
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
from dvclive import Live

from sentinelle import io, paths
from sentinelle.evaluation.metrics import choose_threshold, threshold_metrics
from sentinelle.modeling import engines, operating_points, persistence
from sentinelle.modeling.calibration import probability_threshold
from sentinelle.modeling.fitted import FittedModel
from sentinelle.params import Params
from sentinelle.stage import log, run

TRAIN = paths.PROCESSED / "train.parquet"
LIVE_DIR = paths.DVCLIVE_TRAIN
DEFAULT_THRESHOLD = 0.5
LIBRARIES = ("scikit-learn", "skops", "numpy", "scipy", "numba", "nltk", "pandas")


def main(params: Params) -> None:
    p = params.train
    train = io.read_table(TRAIN, columns=["text", "label", "group"])
    y = (train["label"] == "spam").to_numpy()
    name, engine = engines.pick(p.engine, len(train))
    log.info("fitting %s with the %s engine on %d messages", p.classifier, name, len(train))
    fitted = engine.fit(train, params)
    model = fitted.model
    # The operating points, the same way for either engine: from the out-of-fold scores.
    budgets = {**p.operating_points, operating_points.DEFAULT: p.max_ham_fpr}
    points = choose_points(model, y, fitted.oof, budgets)
    threshold = points[operating_points.DEFAULT]["threshold"]
    cv = threshold_metrics(y, fitted.oof >= choose_threshold(y, fitted.oof, p.max_ham_fpr))

    # Every output is staged and moved in at the end, model.json (which names the model's
    # hash, what readers check) last: a killed run leaves the previous set.
    with io.outputs() as out:
        sha256 = persistence.save(model, out.path(persistence.MODEL_PATH))
        log_training(out.folder(LIVE_DIR), params, fitted, y, cv, points)
        metadata = describe(params, sha256, name, points)
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
        fitted.n_features,
    )


def log_training(
    live_dir: Path,
    params: Params,
    fitted: FittedModel,
    y: np.ndarray,
    cv: dict[str, Any],
    points: dict[str, dict[str, float]],
) -> None:
    """Params, training and cross-validation figures with DVCLive, into ``live_dir``."""
    threshold = points[operating_points.DEFAULT]["threshold"]
    accuracy = float(((fitted.train_scores >= threshold) == y).mean())
    with Live(str(live_dir), dvcyaml=False, save_dvc_exp=False) as live:
        live.log_params({"train": dataclasses.asdict(params.train), "seed": params.base.seed})
        live.log_metric("n_train", len(y), plot=False)
        live.log_metric("n_features", fitted.n_features, plot=False)
        live.log_metric("train_accuracy", round(accuracy, 6), plot=False)
        live.log_metric("threshold", round(threshold, 6), plot=False)
        for key in ("recall", "ham_fpr", "mcc", "f1", "fp", "n_ham"):
            value = cv[key]
            live.log_metric(
                f"cv/{key}", round(value, 6) if isinstance(value, float) else value, plot=False
            )
        for point_name, point in points.items():
            for key in ("threshold", "recall", "ham_fpr"):
                live.log_metric(
                    f"operating_points/{point_name}/{key}", round(point[key], 6), plot=False
                )


def describe(
    params: Params, sha256: str, engine: str, points: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """models/model.json: the model's version, thresholds, params and provenance."""
    p = params.train
    return {
        "model_version": f"sentinelle-{sha256[:12]}",
        "model_sha256": sha256,
        "threshold": points[operating_points.DEFAULT]["threshold"],
        "default_threshold": DEFAULT_THRESHOLD,
        "max_ham_fpr": p.max_ham_fpr,
        "operating_points": points,  # recall and ham_fpr: cross-validated on train
        "params": {
            "preprocess": dataclasses.asdict(params.preprocess),
            "train": dataclasses.asdict(p),
            "seed": params.base.seed,
        },
        "engine": engine,  # what train.engine picked
        "training_data_sha256": io.sha256_table(TRAIN),
        "libraries": {name: version(name) for name in LIBRARIES},
    }


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
