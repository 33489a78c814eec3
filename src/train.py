"""Stage `train`: fit the spam classifier on the training split.

Builds one scikit-learn Pipeline (TF-IDF features + classifier) from the `train`
params, fits it on data/processed/train.parquet, and writes
models/model.skops (skops, byte-reproducible) and models/model.json (threshold,
params, training-data hash, library versions, model version). Logs params and
training metrics to dvclive/train.
"""

import dataclasses
from importlib.metadata import version
from pathlib import Path

from dvclive import Live

from sentinelle import io, models
from sentinelle.params import Params
from sentinelle.stage import log, run

TRAIN = Path("data/processed/train.parquet")
LIVE_DIR = Path("dvclive/train")
DEFAULT_THRESHOLD = 0.5
LIBRARIES = ("scikit-learn", "skops", "numpy", "scipy", "nltk", "pandas")


def main(params: Params) -> None:
    p = params.train
    train = io.read_table(TRAIN)
    model = models.build_pipeline(p, params.base.seed)
    log.info("fitting %s on %s features, %d messages", p.classifier, p.features, len(train))
    model.fit(train["text"], train["label"])

    sha256 = models.save(model)
    metadata = {
        "model_version": f"sentinelle-{sha256[:12]}",
        "model_sha256": sha256,
        "threshold": DEFAULT_THRESHOLD,
        "params": {
            "preprocess": dataclasses.asdict(params.preprocess),
            "train": dataclasses.asdict(p),
            "seed": params.base.seed,
        },
        "training_data_sha256": io.sha256_file(TRAIN),
        "libraries": {name: version(name) for name in LIBRARIES},
    }
    io.write_json(models.METADATA_PATH, metadata)

    scores = models.spam_scores(model, train["text"])
    y = (train["label"] == "spam").to_numpy()
    n_features = len(model[:-1].get_feature_names_out())
    with Live(str(LIVE_DIR), dvcyaml=False, save_dvc_exp=False) as live:
        live.log_params({"train": dataclasses.asdict(p), "seed": params.base.seed})
        live.log_metric("n_train", len(train), plot=False)
        live.log_metric("n_features", n_features, plot=False)
        live.log_metric("train_accuracy", round(float(((scores >= DEFAULT_THRESHOLD) == y).mean()), 6), plot=False)
    log.info("wrote %s (%s), %d features", models.MODEL_PATH, metadata["model_version"], n_features)


if __name__ == "__main__":
    run(main, "train", __doc__)
