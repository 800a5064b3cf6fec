"""Outlier and novelty signals: what an output measures, and each application's running statistics.

Pure (no database): ingest measures each output with :func:`measures_of`; a periodic job
(``reviews.services.signals``) folds the measures of new outputs into one
:class:`QuantileSketch` per application and measure and stores them as a new version; the
policy engine asks a :class:`StatisticsView` for "the p99 of cost in this application" and
stores what it used (:func:`snapshot_of`) with the decision, so the decision recomputes from
the output alone, however the statistics move afterwards.

The sketch is DDSketch (Masson, Rim and Lee, VLDB 2019; the ``ddsketch`` package, Datadog's
reference implementation): a quantile it returns lies within ``RELATIVE_ACCURACY`` (1 %) of
the exact lower quantile of the values added, in relative terms, whatever their
distribution, and it holds at most ``BIN_LIMIT`` bins (constant memory: when values span
more than that, the lowest bins collapse, and only quantiles below the collapsed range lose
their guarantee; the tails that outlier rules ask for keep it).
"""

import base64
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ddsketch import LogCollapsingLowestDenseDDSketch
from ddsketch.pb.ddsketch_pb2 import DDSketch as DDSketchMessage
from ddsketch.pb.proto import DDSketchProto

RELATIVE_ACCURACY = 0.01
BIN_LIMIT = 2048

# What an output measures: name -> (how it is written in a reason, its unit).
MEASURES: dict[str, tuple[str, str]] = {
    "length": ("length", "characters"),
    "cost": ("cost", "USD"),
    "latency": ("latency", "ms"),
    "steps": ("steps", ""),
    "tool_errors": ("tool errors", ""),
}

# The metadata flags a service sends when its end user asked for a person, or gave up.
USER_ASKED_FOR_HUMAN = "user_asked_for_human"
USER_ABANDONED = "user_abandoned"
USER_FLAGS = {"user_asked_for_human": USER_ASKED_FOR_HUMAN, "user_abandoned": USER_ABANDONED}

# Trace steps that are tool calls (as the workbench reads them: reviews/trace.py).
TOOL_STEP_KINDS = frozenset({"tool", "tool_call", "function", "function_call", "action"})
_ERROR_STATUSES = frozenset({"error", "failed"})


def _number(value) -> float | None:
    if value is None or value.__class__ is bool or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _step_figure(step: dict, first: str, second: str, usage) -> float | None:
    value = step.get(first)
    if value is None:
        value = step.get(second)
    if value is None and usage is not None:
        value = usage.get(first)
        if value is None:
            value = usage.get(second)
    return _number(value)


def _trace_figures(steps: list) -> tuple[float | None, float | None, int]:
    """The steps' summed cost and latency (None when no step tells one) and failed tool steps, in one pass."""
    cost = latency = None
    failed = 0
    for step in steps:
        if step.__class__ is not dict:
            continue
        usage = step.get("usage")
        usage = usage if usage.__class__ is dict else None
        value = _step_figure(step, "cost", "cost_usd", usage)
        if value is not None:
            cost = (cost or 0.0) + value
        value = _step_figure(step, "latency_ms", "duration_ms", usage)
        if value is not None:
            latency = (latency or 0.0) + value
        if step.get("error") or step.get("status") in _ERROR_STATUSES:
            kind = step.get("type") or step.get("kind") or ""
            if str(kind).lower() in TOOL_STEP_KINDS:
                failed += 1
    return cost, latency, failed


def measures_of(*, output: str, trace: Any, metadata: Mapping) -> dict[str, float]:
    """What one output measures (a measure the output does not tell is absent).

    - ``length``: characters of the output text;
    - ``cost`` (USD): metadata ``cost_usd`` or ``cost``, else the sum of the trace steps' ``cost``
      (or ``cost_usd``, also inside a step's ``usage``);
    - ``latency`` (ms): metadata ``latency_ms``, else the sum of the steps' ``latency_ms``
      (or ``duration_ms``);
    - ``steps``: the number of trace steps;
    - ``tool_errors``: metadata ``tool_errors``, else the tool steps (type or kind ``tool``,
      ``tool_call``, ``function``, ``function_call``, ``action``) with an ``error`` or a status
      ``error`` or ``failed``.

    OpenTelemetry intake (reviews/otlp.py) fills the metadata's ``cost``, ``latency_ms`` and
    ``tool_errors`` from the spans.
    """
    steps = trace if isinstance(trace, list) else []
    measures = {"length": float(len(output or "")), "steps": float(len(steps))}
    cost = _number(metadata.get("cost_usd"))
    if cost is None:
        cost = _number(metadata.get("cost"))
    latency = _number(metadata.get("latency_ms"))
    tool_errors = _number(metadata.get("tool_errors"))
    if steps and (cost is None or latency is None or tool_errors is None):
        step_cost, step_latency, failed = _trace_figures(steps)
        cost = step_cost if cost is None else cost
        latency = step_latency if latency is None else latency
        tool_errors = float(failed) if tool_errors is None else tool_errors
    if cost is not None:
        measures["cost"] = cost
    if latency is not None:
        measures["latency"] = latency
    measures["tool_errors"] = tool_errors or 0.0
    return measures


class QuantileSketch:
    """A DDSketch of one measure's values: add, merge, ask a quantile, store as bytes.

    Negative values are counted but the measures here are never negative.
    """

    __slots__ = ("_sketch",)

    def __init__(self) -> None:
        self._sketch = LogCollapsingLowestDenseDDSketch(relative_accuracy=RELATIVE_ACCURACY, bin_limit=BIN_LIMIT)

    @property
    def count(self) -> int:
        return int(self._sketch.count)

    def add(self, value: float) -> None:
        self._sketch.add(value)

    def add_all(self, values: Iterable[float]) -> None:
        add = self._sketch.add
        for value in values:
            add(value)

    def merge(self, other: "QuantileSketch") -> None:
        self._sketch.merge(other._sketch)

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0..1), within 1 % of the exact lower quantile; None when empty."""
        if self._sketch.count == 0:
            return None
        value = self._sketch.get_quantile_value(q)
        return None if value is None else float(value)

    def to_bytes(self) -> bytes:
        """DDSketch's own protobuf message (``ddsketch.pb``), readable by its other implementations."""
        return DDSketchProto.to_proto(self._sketch).SerializeToString()

    @classmethod
    def from_bytes(cls, data: bytes) -> "QuantileSketch":
        """The sketch back from :meth:`to_bytes`, into bin-limited stores again (``ddsketch``'s own
        reader makes unbounded ones, and its merge into a bounded sketch fails)."""
        message = DDSketchMessage()
        message.ParseFromString(bytes(data))
        sketch = cls()
        if not message.ByteSize():
            return sketch
        inner = sketch._sketch
        if not math.isclose(message.mapping.gamma, inner._mapping.gamma, rel_tol=1e-12):
            raise ValueError("a sketch of another relative accuracy")
        for store, stored in ((inner._store, message.positiveValues), (inner._negative_store, message.negativeValues)):
            for index, count in enumerate(stored.contiguousBinCounts, start=stored.contiguousBinIndexOffset):
                if count:
                    store.add(index, count)
        inner._zero_count = message.zeroCount
        inner._count = inner._zero_count + inner._store.count + inner._negative_store.count
        return sketch


@dataclass(frozen=True, slots=True)
class ApplicationSketches:
    """One application's sketches at one version: what the policy engine reads at ingest."""

    application: str
    version: int
    observations: int  # outputs folded in
    sketches: Mapping[str, QuantileSketch]


def sketches_encode(sketches: Mapping[str, QuantileSketch]) -> dict[str, str]:
    """For ``ApplicationStatistics.sketches``: each measure's sketch as base64 of its protobuf message."""
    return {name: base64.b64encode(sketch.to_bytes()).decode() for name, sketch in sketches.items()}


def sketches_decode(stored: Mapping[str, str]) -> dict[str, QuantileSketch]:
    return {
        name: QuantileSketch.from_bytes(base64.b64decode(text)) for name, text in stored.items() if name in MEASURES
    }


def _quantile_key(measure: str, quantile: float) -> str:
    return f"{measure}@{quantile:g}"


class StatisticsView:
    """The figures a decision reads: a quantile of a measure in an application (the sketch's upper
    bound of it: its estimate plus 1 %, so at most 2 % above the exact quantile), with the
    statistics' version and observations. Built from the live sketches at ingest
    (:meth:`live`) or from what a decision stored (:meth:`stored`), so both answer alike."""

    __slots__ = ("_by_application", "_memo", "_stored")

    def __init__(self, by_application: Mapping[str, ApplicationSketches] | None = None, stored: dict | None = None):
        self._by_application = by_application or {}
        self._stored = stored
        self._memo: dict[tuple[str, str], float | None] = {}

    @classmethod
    def live(cls, by_application: Mapping[str, ApplicationSketches]) -> "StatisticsView":
        return cls(by_application=by_application)

    @classmethod
    def stored(cls, snapshot: dict | None) -> "StatisticsView":
        """From an output's ``signal_snapshot``: the figures its decision used, and only those."""
        return cls(stored=snapshot or {})

    def basis(self, application: str) -> tuple[int, int] | None:
        """(version, observations) of the application's statistics, None when it has none."""
        if self._stored is not None:
            if "version" not in self._stored:
                return None
            return int(self._stored["version"]), int(self._stored["observations"])
        statistics = self._by_application.get(application)
        return None if statistics is None else (statistics.version, statistics.observations)

    def quantile(self, application: str, measure: str, quantile: float, key: str | None = None) -> float | None:
        """The quantile (its upper bound, see above); ``key``: :func:`quantile_key`'s, when the caller has it."""
        key = key or _quantile_key(measure, quantile)
        if self._stored is not None:
            value = self._stored.get("quantiles", {}).get(key)
            return None if value is None else float(value)
        memo_key = (application, key)
        if memo_key not in self._memo:
            statistics = self._by_application.get(application)
            sketch = statistics.sketches.get(measure) if statistics else None
            estimate = sketch.quantile(quantile) if sketch is not None else None
            # The sketch's upper bound of the quantile: an output is called an outlier only when it
            # surely lies above it (a value at the quantile itself never is, whichever way the
            # estimate errs).
            self._memo[memo_key] = None if estimate is None else _rounded(estimate * (1 + RELATIVE_ACCURACY))
        return self._memo[memo_key]


EMPTY_STATISTICS = StatisticsView()


def _rounded(value: float | None) -> float | None:
    # Six significant digits: the sketch itself is good to 1 %, and the stored figure is the one
    # the reason shows, so that a reader recomputes the comparison from the reason's own text.
    return None if value is None else float(f"{value:.6g}")


def snapshot_of(
    *, basis: tuple[int, int] | None, quantiles: Mapping[str, float | None], measures: Mapping[str, float]
) -> dict:
    """What a decision stores of the statistics it read: their version and observations, each
    quantile it compared with (``"cost@0.99": 0.08``) and the output's measures it compared."""
    snapshot: dict[str, Any] = {"measures": dict(measures)}
    if basis is not None:
        snapshot["version"], snapshot["observations"] = basis
        snapshot["quantiles"] = {key: value for key, value in quantiles.items() if value is not None}
    return snapshot


def quantile_key(measure: str, quantile: float) -> str:
    """How a snapshot names one quantile of one measure (``cost@0.99``)."""
    return _quantile_key(measure, quantile)


def format_figure(measure: str, value: float) -> str:
    """A measure's value as a reason shows it: ``0.42 USD``, ``1830 ms``, ``12``."""
    unit = MEASURES[measure][1]
    text = f"{value:.6g}"
    return f"{text} {unit}" if unit and unit != "characters" else (f"{text} chars" if unit else text)


def quantile_label(quantile: float) -> str:
    """``p99`` for 0.99, ``p99.9`` for 0.999, ``p50`` for 0.5."""
    return f"p{quantile * 100:.6g}"
