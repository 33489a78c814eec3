"""A small real model for the scoring and API tests: trained in a second, saved like train does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from helpers import ROOT
from sentinelle import io
from sentinelle.modeling import persistence
from sentinelle.modeling.fast.training import build_pipeline
from sentinelle.params import load
from sentinelle.text.normaliser import Normaliser

SPAM = [
    "WIN a FREE prize! Call 09061701461 now to claim",
    "Congratulations you have won £1000 cash, txt WIN to 80086",
    "URGENT! Your mobile number has won a £2000 bonus, call 09066364589",
    "Free entry to win a holiday, text FREE to 87121 now",
    "You have been selected for a free ringtone, reply YES to 85233",
    "Claim your FREE camera phone now! Call 08000930705",
]
HAM = [
    "see you at lunch tomorrow",
    "ok lar i'm on my way home",
    "can you pick up some milk on the way",
    "thanks for the lovely dinner last night",
    "are we still meeting at the station at six",
    "sorry i missed your call, will ring you back later",
]
THRESHOLD = 0.35  # not 0.5: consumers must read the stored threshold
STRICT = 0.8  # the `strict` operating point's threshold, as train would store it


def make(
    dest: Path, *, threshold: float = THRESHOLD, stem: bool = False, classifier: str = "logreg"
) -> Path:
    """Train a logistic regression (or ``classifier``) on the texts above; write model.skops +
    model.json in ``dest``."""
    params = load(ROOT / "params.yaml")
    preprocess = dataclasses.replace(params.preprocess, stem=stem)
    p = dataclasses.replace(params.train, classifier=classifier, features="union", n_jobs=1)
    normalise = Normaliser(**dataclasses.asdict(preprocess))
    model = build_pipeline(p, seed=1).fit(
        normalise.many(SPAM + HAM), ["spam"] * len(SPAM) + ["ham"] * len(HAM)
    )
    path = Path(dest) / "model.skops"
    sha256 = persistence.save(model, path)
    io.write_json(
        path.with_suffix(".json"),
        {
            "model_version": f"sentinelle-{sha256[:12]}",
            "model_sha256": sha256,
            "threshold": threshold,
            "operating_points": {
                "strict": {
                    "max_ham_fpr": 0.0001,
                    "threshold": STRICT,
                    "recall": 0.5,
                    "ham_fpr": 0.0,
                },
                "default": {
                    "max_ham_fpr": 0.001,
                    "threshold": threshold,
                    "recall": 0.9,
                    "ham_fpr": 0.0,
                },
            },
            "params": {
                "preprocess": dataclasses.asdict(preprocess),
                "train": dataclasses.asdict(p),
                "seed": 1,
            },
        },
    )
    return path
