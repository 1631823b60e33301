"""The metric registry: one home for what every metric is — its key, label, unit, direction, group, how it is
computed, when it is undefined and why — and the evaluation passes that compute them.

A metric module (`vaecore/evaluation/metrics/<family>.py`) registers its metrics with `register_metric` and
the pass that computes them with `register_pass`, as `torch.distributions.register_kl` registers a KL:
adding a metric is one module. `vaecore.evaluation.metrics.evaluate` is a loop over the passes; the CLI,
`compare`, the model cards and every page of the app read labels, units and directions from `METRICS`.

    metric = METRICS["nll-discrete"]
    metric.title        # '−log p of 8-bit images (nats, ↓)'
    metric.direction    # Direction.LOWER
    undefined_reason(model, "kl-per-dim", dataset)   # None, or why the metric is undefined here
    outcome(eval_result, "elbo")                     # a value, undefined (with the reason) or not run

Conventions: metrics of likelihoods are per example, summed over the D = C·H·W values, in nats; a
`per_image` metric is the mean over the test images of one value per image (its standard error and paired
differences are defined on those values: `vaecore.evaluation.uncertainty`); a `seeded` metric is the mean over
sample seeds or restarts, with their s.d. as its spread; a `per_sampler` metric scores generated images, so it
depends on where z is drawn (the prior or a fitted sampler). A stored evaluation keeps each metric's uncertainty
under "uncertainty" ({key: {"se", "n", "over", "sd"}}), which `outcome` reads back.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from vaecore.components.likelihoods import Likelihood
from vaecore.data.datasets import Dataset
from vaecore.evaluation.runtime import ProgressFn, device_of, generator_for
from vaecore.evaluation.uncertainty import Estimate, Over, estimate_from


class Direction(enum.StrEnum):
    """Which way a metric is better."""

    HIGHER = "higher"
    LOWER = "lower"
    NONE = "none"

    @property
    def arrow(self) -> str:
        return {"higher": "↑", "lower": "↓"}.get(self.value, "")

    @property
    def phrase(self) -> str:
        """'higher is better', 'lower is better' or '' (a diagnostic, not a score)."""
        return f"{self.value} is better" if self is not Direction.NONE else ""


class Comparable(enum.StrEnum):
    """Which models a metric's values may be ranked across."""

    ALL = "all models that define it"
    SAME_LIKELIHOOD = "models with the same likelihood"  # a density whose scale depends on the likelihood family
    NONE = "no models: it is reported, never ranked"  # a continuous density of discrete data is unbounded

    @property
    def ranked(self) -> bool:
        """Whether values may be put in order at all (within the models this says)."""
        return self is not Comparable.NONE


class State(enum.StrEnum):
    """What a stored evaluation says about a metric."""

    VALUE = "value"
    UNDEFINED = "undefined"  # evaluated, and the model (or data) does not define it: the reason is in notes
    NOT_RUN = "not run"  # not asked for in that evaluation


NOT_GIVEN: Any = object()
"""`Subject.sampler` when it is not known whether samples come from the prior or a fitted sampler."""


@dataclass(frozen=True)
class Subject:
    """What an undefined-rule looks at: the model (its capabilities and likelihood), the dataset if known,
    and the sampler generated images come from (None: the model's prior; NOT_GIVEN: not known yet)."""

    model: torch.nn.Module
    dataset: Dataset | None = None
    sampler: Any = NOT_GIVEN

    @property
    def caps(self) -> Any:
        caps = getattr(self.model, "capabilities", None)
        if caps is None:
            raise ValueError(f"{type(self.model).__name__} is not a vaecore model (it declares no capabilities)")
        return caps

    @property
    def likelihood(self) -> Likelihood | None:
        return getattr(self.model, "likelihood", None)


Rule = Callable[[Subject], "str | None"]
"""Why a metric is undefined for a subject, or None when it is defined."""


@dataclass(frozen=True)
class Metric:
    """One metric: what it is called and means, which way is better, and when it is undefined.

    `undefined` holds rules checked in order (the first reason wins); `pass_name` names the registered
    evaluation pass that computes it; `per_image`: the mean of one value per test image (SE over images);
    `seeded`: the mean over sample seeds or restarts (their s.d. is the spread); `extras` are the further result
    keys its pass writes, with what they mean; `when_undefined` the values those keys take when the metric is
    undefined.
    """

    key: str
    label: str
    short: str
    unit: str
    direction: Direction
    group: str
    description: str
    pass_name: str
    undefined: tuple[Rule, ...] = ()
    per_image: bool = False
    per_sampler: bool = False
    seeded: bool = False
    comparable: Comparable = Comparable.ALL
    extras: Mapping[str, str] = field(default_factory=dict)
    when_undefined: Mapping[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """Label, unit and direction, e.g. '−log p of 8-bit images (nats, ↓)'."""
        return f"{self.label} ({', '.join(p for p in (self.unit, self.direction.arrow) if p)})"

    @property
    def short_title(self) -> str:
        """A column header, e.g. '−log p ↓'."""
        return f"{self.short} {self.direction.arrow}".strip()

    @property
    def uncertainty(self) -> str:
        """What its ± means: 'SE over test images', 's.d. over seeds' or '' (a single number)."""
        return "SE over test images" if self.per_image else "s.d. over seeds" if self.seeded else ""

    def reason(self, subject: Subject) -> str | None:
        """Why this metric is undefined for `subject`, or None."""
        for rule in self.undefined:
            why = rule(subject)
            if why:
                return why
        return None


@dataclass
class EvalContext:
    """What a pass works on and writes to: the model, the evaluated test images (x, y), the settings, and
    the result so far (`out`: metric and extra keys; `notes`: why a metric is undefined; `per_image`: the
    per-image values behind each `per_image` metric, float64 on the CPU; `seeds`: the values over sample seeds or
    restarts behind each `seeded` metric, whose mean is its value)."""

    model: torch.nn.Module
    dataset: Dataset
    x: torch.Tensor
    y: torch.Tensor | None
    seed: int = 0
    batch_size: int = 500
    iwae_k: int = 1000
    sampler: Any = None
    n_samples: int = 5000
    sample_seeds: int = 3
    kmeans_restarts: int = 10
    progress: ProgressFn | None = None
    out: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    per_image: dict[str, torch.Tensor] = field(default_factory=dict)
    seeds: dict[str, list[float]] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return device_of(self.model)

    @property
    def likelihood(self) -> Likelihood | None:
        return getattr(self.model, "likelihood", None)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A generator on the model's device seeded `seed + offset` (each pass its own offset, so a value does
        not depend on which other metrics are asked for)."""
        return generator_for(self.model, self.seed + offset)


PassFn = Callable[[EvalContext, Sequence[str]], None]


@dataclass(frozen=True)
class EvalPass:
    """A computation that produces one or more metrics in one go (IWAE, −log pdf, −log p and bits/dim share
    the K importance draws); `run(ctx, wanted)` writes the wanted metrics (and their extras) into ctx."""

    name: str
    run: PassFn


METRICS: dict[str, Metric] = {}
"""Every registered metric by key, in registration order (the order of `evaluate`'s default and tables)."""
PASSES: dict[str, EvalPass] = {}
"""Every evaluation pass by name, in the order `evaluate` runs them."""


def register_metric(metric: Metric) -> Metric:
    """Add a metric to the registry (once per key)."""
    if metric.key in METRICS:
        raise ValueError(f"metric {metric.key!r} is registered twice")
    if not (metric.label and metric.short and metric.unit and metric.description):
        raise ValueError(f"metric {metric.key!r} needs a label, a short label, a unit and a description")
    METRICS[metric.key] = metric
    return metric


def register_pass(name: str) -> Callable[[PassFn], PassFn]:
    """Decorator: register `fn(ctx, wanted)` as the evaluation pass `name`."""
    def wrap(fn: PassFn) -> PassFn:
        if name in PASSES:
            raise ValueError(f"evaluation pass {name!r} is registered twice")
        PASSES[name] = EvalPass(name, fn)
        return fn
    return wrap


def get_metric(key: str) -> Metric:
    """The registered metric `key`; a ValueError listing the known ones otherwise."""
    try:
        return METRICS[key]
    except KeyError:
        raise ValueError(f"unknown metric {key!r}; choose from {', '.join(METRICS)}") from None


def check_names(names: Sequence[str]) -> list[str]:
    """The names as a list, or a ValueError naming the unknown ones and the known ones."""
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    return list(names)


def undefined_reason(model: torch.nn.Module, name: str, dataset: Dataset | None = None, *,
                     sampler: Any = NOT_GIVEN) -> str | None:
    """Why metric `name` is undefined for this model (and dataset, and sampler when given), or None."""
    return get_metric(name).reason(Subject(model, dataset, sampler))


def under_current_rules(result: Mapping[str, Any], model: torch.nn.Module, dataset: Dataset | None = None) -> dict:
    """A copy of a stored evaluation in which every metric value the registry now leaves undefined for this model
    and data (e.g. a Bernoulli ELBO on grey levels, a Beta ELBO on clamped pixels, written by an older engine) is
    undefined, with the registry's reason in `notes`: such a number is never shown as if it scored the data."""
    out = dict(result)
    notes = dict(out.get("notes") or {})
    for key in [k for k in out if k in METRICS and out[k] is not None]:  # not a sampler's copy (fd_gmm)
        why = undefined_reason(model, key, dataset)
        if why:
            out[key], notes[key] = None, why
    out["notes"] = notes
    return out


def describe_key(key: str) -> str:
    """What a key of an evaluation result is: a metric's title, or what a metric's extra key means ('' if neither)."""
    if key in METRICS:
        return METRICS[key].title
    return next((m.extras[key] for m in METRICS.values() if key in m.extras), "")


def in_group(group: str) -> list[str]:
    """The keys of the metrics of one group, in registration order."""
    return [k for k, m in METRICS.items() if m.group == group]


@dataclass(frozen=True)
class Outcome:
    """A metric in a stored evaluation: its value (with its uncertainty where stored), or why it is undefined, or
    that it was not run."""

    state: State
    value: Any = None
    reason: str = ""
    estimate: Estimate | None = None

    def text(self, fmt: Callable[[Any], str] = str) -> str:
        """The value formatted by `fmt` (with ' ± SE' or ' ± s.d.' where known), 'undefined: <reason>' or
        'not run'."""
        if self.state is State.VALUE:
            if self.estimate is None:
                return fmt(self.value)
            spread = self.estimate.sd if self.estimate.over is Over.SEEDS else self.estimate.se
            return f"{fmt(self.value)} ± {fmt(spread)}" + (" s.d." if self.estimate.over is Over.SEEDS else "")
        return f"undefined: {self.reason}" if self.state is State.UNDEFINED else "not run"


def outcome(result: Mapping[str, Any], key: str) -> Outcome:
    """Read metric `key` (or a sampler's copy of it, e.g. fd_gmm) from an evaluation result (evaluate's dict, an
    eval.json): a value with its uncertainty (from "uncertainty"), undefined with its reason (from `notes`), or not
    run (the key is absent)."""
    notes = result.get("notes") or {}
    if key not in result:
        return Outcome(State.NOT_RUN)
    value = result[key]
    if value is None:
        return Outcome(State.UNDEFINED, reason=str(notes.get(key) or "no finite value"))
    stored = (result.get("uncertainty") or {}).get(key)
    est = estimate_from(value, stored) if isinstance(value, int | float) and not isinstance(value, bool) else None
    return Outcome(State.VALUE, value, estimate=est)
