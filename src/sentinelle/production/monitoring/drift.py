"""The drift checks of ``sentinelle monitor``: a batch's profile against the reference.

Each check has its figure, its limit and pass/fail:

- ``score_psi``: population stability index of the spam scores over the reference's
  quantile bins (``monitor.bins``), at most ``monitor.max_score_psi``;
- ``score_ks``: two-sample Kolmogorov-Smirnov test of the scores (scipy), p-value at
  least ``monitor.ks_alpha``;
- ``flagged_rate``: the share flagged at the threshold; its exact binomial interval
  (``monitor.flagged_confidence``) must hold the reference's share, so a small batch
  does not alarm on chance;
- ``descriptor_psi/<name>``: PSI of each text descriptor (length over quantile bins,
  the yes/no ones over two bins), at most ``monitor.max_descriptor_psi``;
- ``unseen_ngrams``: the mean share of word n-grams unseen by the vocabulary, at most
  the reference's plus ``monitor.max_unseen_increase``;
- ``estimated_precision``, ``estimated_recall``: the label-free estimate from the
  calibrated scores, at most ``monitor.max_estimate_drop`` below the reference's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from sentinelle.params import MonitorParams
from sentinelle.production.monitoring.descriptors import FLAGS
from sentinelle.production.monitoring.reference import estimated_performance, real_performance

EPS = 1e-4  # share floor in PSI, so that an empty bin does not give log(0)


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    limit: float
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{self.name}: {self.detail}"


@dataclass(frozen=True)
class Batch:
    """What the checks read from a batch of messages."""

    scores: np.ndarray
    descriptors: dict[str, np.ndarray]
    unseen: np.ndarray
    is_spam: np.ndarray | None = None  # labels, when the batch has them


def quantile_edges(sample: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (repeated edges merged)."""
    inner = np.quantile(np.asarray(sample, dtype=np.float64), np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(inner)


def shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin ``(-inf, e0], (e0, e1], ..., (ek, inf)``."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index: sum over bins of (a - e) * ln(a / e)."""
    e = np.clip(np.asarray(expected, dtype=np.float64), EPS, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _r(x: float) -> float:
    return round(float(x), 6)


def _max_check(name: str, value: float, limit: float, what: str) -> Check:
    ok = value <= limit
    return Check(name, _r(value), limit, ok, f"{what} {value:.4f} {'<=' if ok else '>'} {limit:g}")


def run_checks(ref: dict[str, Any], batch: Batch, p: MonitorParams) -> list[Check]:
    """Every check of the module docstring, in that order."""
    ref_scores = np.asarray(ref["scores"]["sample"], dtype=np.float64)
    edges = quantile_edges(ref_scores, p.bins)
    checks = [
        _max_check(
            "score_psi",
            psi(shares(ref_scores, edges), shares(batch.scores, edges)),
            p.max_score_psi,
            "PSI of the spam scores",
        )
    ]
    ks = stats.ks_2samp(batch.scores, ref_scores)
    checks.append(
        Check(
            "score_ks",
            _r(ks.pvalue),
            p.ks_alpha,
            bool(ks.pvalue >= p.ks_alpha),
            f"KS statistic {ks.statistic:.4f}, p-value {ks.pvalue:.3g} "
            f"{'>=' if ks.pvalue >= p.ks_alpha else '<'} {p.ks_alpha:g}",
        )
    )
    n = len(batch.scores)
    k = int((batch.scores >= ref["threshold"]).sum())
    expected = float(ref["scores"]["flagged_rate"])
    ci = stats.binomtest(k, n, expected).proportion_ci(confidence_level=p.flagged_confidence)
    inside = ci.low <= expected <= ci.high
    checks.append(
        Check(
            "flagged_rate",
            _r(k / n),
            expected,
            bool(inside),
            f"{k} of {n} flagged ({k / n:.2%}), {p.flagged_confidence:.1%} interval "
            f"[{ci.low:.2%}, {ci.high:.2%}] {'holds' if inside else 'excludes'} "
            f"the reference's {expected:.2%}",
        )
    )
    ref_desc = ref["descriptors"]
    lengths = np.asarray(ref_desc["length"], dtype=np.float64)
    len_edges = quantile_edges(lengths, p.bins)
    checks.append(
        _max_check(
            "descriptor_psi/length",
            psi(shares(lengths, len_edges), shares(batch.descriptors["length"], len_edges)),
            p.max_descriptor_psi,
            "PSI of the message lengths",
        )
    )
    for name in FLAGS:
        e, a = float(ref_desc[name]), float(batch.descriptors[name].mean())
        checks.append(
            _max_check(
                f"descriptor_psi/{name}",
                psi(np.array([e, 1 - e]), np.array([a, 1 - a])),
                p.max_descriptor_psi,
                f"share {a:.2%} (reference {e:.2%}), PSI",
            )
        )
    ref_unseen = float(ref["unseen_ngrams"]["mean"])
    unseen = float(batch.unseen.mean())
    checks.append(
        _max_check(
            "unseen_ngrams",
            unseen - ref_unseen,
            p.max_unseen_increase,
            f"share of unseen word n-grams {unseen:.2%} (reference {ref_unseen:.2%}), increase",
        )
    )
    now = estimated_performance(batch.scores, ref["threshold"])
    for metric in ("precision", "recall"):
        before = float(ref["scores"]["estimated"][metric])
        checks.append(
            _max_check(
                f"estimated_{metric}",
                before - now[metric],
                p.max_estimate_drop,
                f"label-free {metric} {now[metric]:.4f} (reference {before:.4f}), drop",
            )
        )
    return checks


def summary(ref: dict[str, Any], batch: Batch, checks: list[Check]) -> dict[str, Any]:
    """Every figure of a monitoring run, for monitor.json."""
    flagged = batch.scores >= ref["threshold"]
    out: dict[str, Any] = {
        "model_version": ref["model_version"],
        "threshold": ref["threshold"],
        "messages": len(batch.scores),
        "drift": not all(c.passed for c in checks),
        "failed": [c.name for c in checks if not c.passed],
        "checks": {c.name: {k: v for k, v in asdict(c).items() if k != "name"} for c in checks},
        "flagged_rate": _r(flagged.mean()),
        "estimated": estimated_performance(batch.scores, ref["threshold"]),
        "reference_estimated": ref["scores"]["estimated"],
        "descriptors": {
            "length_median": _r(np.median(batch.descriptors["length"])),
            **{name: _r(batch.descriptors[name].mean()) for name in FLAGS},
        },
        "unseen_ngrams": _r(batch.unseen.mean()),
    }
    if batch.is_spam is not None:
        out["actual"] = real_performance(batch.is_spam, flagged)
        out["reference_actual"] = ref["scores"]["actual"]
    return out
