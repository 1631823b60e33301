"""Claims that one model beats (or matches or beats) another, decided metric by metric by the uncertainty rule.

    c = check_claim("σ-VAE beats the σ = 1 VAE", eval_a, eval_b, ["nll-discrete", "mse", "fd", "fd_gmm"],
                    per_image=(store_a, store_b))
    c.status       # 'holds' | 'fails' | 'undecided' | 'not measurable'
    c.checks       # per metric: both values, the difference ± SE, the verdict

A per-image metric is compared by the paired difference on the same test images (from the per-image stores; two
different image sets are not compared), a metric of generated images or of restarts by the difference of the
seeds' means with the Welch standard error; either is decided at 2 standard errors (`uncertainty.RULE`).
A sampler's copy of a metric (`fd_gmm`: fd with z drawn from a fitted GMM) is judged as that metric.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vaecore.evaluation.per_image import PerImage
from vaecore.evaluation.registry import METRICS, Metric, State, outcome
from vaecore.evaluation.uncertainty import RULE, Difference, Over, Verdict, seed_difference, verdict

__all__ = ["CLAIM_RULE", "Claim", "ClaimKind", "MetricCheck", "Status", "check_claim", "metric_of"]


class ClaimKind(enum.StrEnum):
    BEATS = "beats"
    MATCHES_OR_BEATS = "matches or beats"


class Status(enum.StrEnum):
    HOLDS = "holds"
    FAILS = "fails"
    UNDECIDED = "undecided"
    NOT_MEASURABLE = "not measurable"


CLAIM_RULE = ("A claim that a model *beats* another holds when every metric is better, fails when any is worse, and "
              "is undecided otherwise; *matches or beats* holds when every metric is compared and none is worse, "
              f"and fails when any is worse. Per metric: {RULE}.")


@dataclass(frozen=True)
class MetricCheck:
    """One metric of a claim: both models' values as text, the difference a − b (None when not comparable) and the
    verdict for a: 'better', 'worse', 'undecided', or why the two are not compared."""

    key: str
    label: str
    a: str
    b: str
    difference: Difference | None
    verdict: str

    @property
    def decided(self) -> bool:
        return self.verdict in (Verdict.BETTER, Verdict.WORSE)

    def text(self, digits: int = 1) -> str:
        """'MSE 5.9 ± 0.1 vs 5.8 ± 0.1, difference +0.124 ± 0.004: worse': the difference with enough decimals for
        its SE to show two significant digits (at least `digits`, at most 4)."""
        d = self.difference
        if d is not None and d.se > 0 and math.isfinite(d.se):
            digits = max(digits, min(4, 1 - math.floor(math.log10(d.se))))
        diff = f", difference {d.text(digits)}" if d else ""
        return f"{self.label} {self.a} vs {self.b}{diff}: {self.verdict}"


@dataclass(frozen=True)
class Claim:
    text: str
    kind: ClaimKind
    checks: tuple[MetricCheck, ...]
    status: Status

    def line(self, digits: int = 1) -> str:
        """A Markdown bullet: the claim, its status and every metric's check."""
        return f"- {self.text}: **{self.status}** ({'; '.join(c.text(digits) for c in self.checks)})"


def metric_of(key: str) -> Metric:
    """The registered metric behind a result key: itself, or the metric a sampler's copy is of (fd_gmm → fd)."""
    if key in METRICS:
        return METRICS[key]
    base = key.split("_", 1)[0]
    if base in METRICS and METRICS[base].per_sampler:
        return METRICS[base]
    raise ValueError(f"{key!r} is not a metric or a sampler's copy of one")


def _check(key: str, label: str, a: Mapping[str, Any], b: Mapping[str, Any], stores: tuple[PerImage | None, ...],
           fmt: str) -> MetricCheck:
    metric = metric_of(key)
    oa, ob = outcome(a, key), outcome(b, key)
    texts = [o.text(lambda v: format(v, fmt)) for o in (oa, ob)]
    if oa.state is not State.VALUE or ob.state is not State.VALUE:
        why = "; ".join(f"{w}: {o.text()}" for w, o in (("a", oa), ("b", ob)) if o.state is not State.VALUE)
        return MetricCheck(key, label, *texts, None, f"not compared ({why})")
    if metric.per_image:
        pa, pb = stores
        if pa is None or pb is None or key not in pa.values or key not in pb.values:
            return MetricCheck(key, label, *texts, None, "undecided (no per-image values to pair)")
        try:
            diff = pa.difference(pb, key)
        except ValueError as e:
            return MetricCheck(key, label, *texts, None, f"not compared ({e})")
    else:
        ea, eb = oa.estimate, ob.estimate
        if ea is None or eb is None or ea.over is not Over.SEEDS or eb.over is not Over.SEEDS or min(ea.n, eb.n) < 2:
            return MetricCheck(key, label, *texts, None, "undecided (one seed: no spread to judge by)")
        diff = seed_difference(ea, eb)
    return MetricCheck(key, label, *texts, diff, str(verdict(diff, metric.direction)))


Stores = tuple[PerImage | None, PerImage | None]


def check_claim(text: str, a: Mapping[str, Any], b: Mapping[str, Any], keys: Sequence[str | tuple[str, str]],
                kind: ClaimKind | str = ClaimKind.BEATS, *, per_image: Stores = (None, None),
                fmt: str = ".1f") -> Claim:
    """Judge the claim that model a (its evaluation result) beats, or matches or beats, model b on every metric of
    `keys` (a key, or (key, label)); `per_image`: the two models' per-image stores for paired differences."""
    kind = ClaimKind(kind)
    checks = []
    for item in keys:
        key, label = (item, metric_of(item).short) if isinstance(item, str) else item
        checks.append(_check(key, label, a, b, per_image, fmt))
    judged = [c for c in checks if c.difference is not None]
    verdicts = [c.verdict for c in checks]
    if not judged:
        with_values = any(c.verdict.startswith("undecided") for c in checks)
        status = Status.UNDECIDED if with_values else Status.NOT_MEASURABLE
    elif Verdict.WORSE in verdicts:
        status = Status.FAILS
    elif kind is ClaimKind.MATCHES_OR_BEATS:
        status = Status.HOLDS if len(judged) == len(checks) else Status.UNDECIDED
    else:
        status = Status.HOLDS if all(v == Verdict.BETTER for v in verdicts) else Status.UNDECIDED
    return Claim(text, kind, tuple(checks), status)
