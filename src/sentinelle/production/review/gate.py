"""May this model ship? The rules of ``params.yaml``'s ``gate`` section against its results.

Each rule gives one ``Check``: the measured value, the limit and pass/fail (or "not
checked" when the rule needs what is not there: a baseline, a throughput measurement).
Missing metrics are bad input (a ``UserError``), never a silent pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from sentinelle.errors import UserError
from sentinelle.params import GateParams
from sentinelle.production.review.results import EVALUATE, MODEL, Results

# Metrics are written with 6 decimals: differences are compared at that precision.
DECIMALS = 6


@dataclass(frozen=True)
class Check:
    rule: str  # the params key, e.g. gate.min_recall
    what: str  # what was measured, in words
    value: float | None
    op: str  # ">=" or "<="
    limit: float | None  # None: the rule is off (null in params.yaml)
    passed: bool | None  # None: not checked
    note: str = ""

    def line(self) -> str:
        status = {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]
        value = "n/a" if self.value is None else f"{self.value:.4f}"
        limit = "off" if self.limit is None else f"{self.op} {self.limit:g}"
        text = f"{status}  {self.rule:<20} {self.what} {value} (limit {limit})"
        return text + (f": {self.note}" if self.note else "")


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    @property
    def passed(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        skipped = sum(c.passed is None for c in self.checks)
        skip = f", {skipped} not checked" if skipped else ""
        if self.passed:
            ran = len(self.checks) - skipped
            return f"PASS: {ran} of {len(self.checks)} rules passed{skip}"
        names = ", ".join(c.rule for c in self.failed)
        return f"FAIL: {len(self.failed)} of {len(self.checks)} rules failed ({names}){skip}"


def metric(results: Results, key: str) -> float:
    """An evaluate metric of a revision; its absence is bad input."""
    value = results.evaluate.get(key)
    if value is None:
        raise UserError(
            f"{results.rev.label}: {EVALUATE} has no '{key}' (the gate needs recall, ham_fpr "
            "and mcc): run `dvc repro`"
        )
    return float(value)


def _check(
    rule: str, what: str, value: float | None, op: str, limit: float, note: str = ""
) -> Check:
    if value is None:
        return Check(rule, what, None, op, limit, None, note)
    ok = round(value, DECIMALS) >= limit if op == ">=" else round(value, DECIMALS) <= limit
    return Check(rule, what, value, op, limit, ok, note)


def _drop(rule: str, key: str, limit: float, target: Results, baseline: Results | None) -> Check:
    what = f"{'spam recall' if key == 'recall' else key.upper()} drop"
    new = metric(target, key)
    if baseline is None:
        return _check(f"gate.{rule}", what, None, "<=", limit, "no baseline given")
    old = metric(baseline, key)
    drop = round(old - new, DECIMALS)
    return _check(
        f"gate.{rule}", what, drop, "<=", limit, f"{baseline.rev.label} {old:.4f} -> {new:.4f}"
    )


def evaluate(
    rules: GateParams,
    target: Results,
    baseline: Results | None = None,
    throughput: float | None = None,
) -> Verdict:
    """Every rule of ``rules`` on ``target`` (and against ``baseline`` for the drops)."""
    if target.model_bytes is None:
        raise UserError(
            f"{target.rev.label}: dvc.lock has no {MODEL} in the train stage (its size is "
            "gate.max_model_mb's value): run `dvc repro`"
        )
    ham = target.evaluate
    flagged = (
        f"{int(ham['fp'])} of {int(ham['n_ham'])} ham flagged"
        if {"fp", "n_ham"} <= set(ham)
        else ""
    )
    checks = [
        _check("gate.min_recall", "spam recall", metric(target, "recall"), ">=", rules.min_recall),
        _check(
            "gate.max_ham_fpr",
            "ham FPR",
            metric(target, "ham_fpr"),
            "<=",
            rules.max_ham_fpr,
            flagged,
        ),
        _drop("max_recall_drop", "recall", rules.max_recall_drop, target, baseline),
        _drop("max_mcc_drop", "mcc", rules.max_mcc_drop, target, baseline),
        _check(
            "gate.max_model_mb",
            "model MB",
            target.model_bytes / 1e6,
            "<=",
            rules.max_model_mb,
            f"{target.model_bytes:,} bytes",
        ),
    ]
    if rules.min_throughput is None:
        checks.append(
            Check("gate.min_throughput", "messages/s", None, ">=", None, None, "null: not measured")
        )
    else:
        checks.append(
            _check(
                "gate.min_throughput",
                "messages/s",
                throughput,
                ">=",
                rules.min_throughput,
                "scoring the test split" if throughput is not None else "not measured",
            )
        )
    return Verdict(tuple(checks))
