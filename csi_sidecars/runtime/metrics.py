"""Prometheus metrics without prometheus_client: counters, gauges, histograms, the text format.

The controller roles expose the Go sidecars' metric families (work queues, the CSI call
histogram, the provisioner's and the snapshot-controller's own). prometheus_client costs each
process about 3 MiB of RSS and 10-40 ms of CPU at start (it imports ``http.server``,
``wsgiref`` and threads for servers we never run), and writes ``_created`` series that the Go
sidecars do not have. This module is what the roles use of it, rendered line for line as
prometheus_client renders it (labels sorted, the same value formatting, HELP and TYPE of a
labelled family even before its first sample) minus the ``_created`` series:

* :class:`Registry`: collectors in registration order; :func:`render` writes them.
* :class:`Counter`, :class:`Gauge`, :class:`Histogram`: ``(name, documentation, labelnames,
  registry=..., buckets=...)``; ``.labels(*values)`` returns the child of one label set
  (``inc``, ``dec``, ``set``, ``observe``); an unlabelled metric is its own child.
* :class:`GaugeFamily`: for a custom collector (an object with ``collect()`` yielding
  families), ``add_metric(label_values, value)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, NamedTuple, Protocol, TypeVar

__all__ = [
    "CONTENT_TYPE",
    "Counter",
    "Family",
    "Gauge",
    "GaugeFamily",
    "Histogram",
    "Registry",
    "Sample",
    "format_value",
    "render",
]

#: The classic Prometheus text format, which :func:`render` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: prometheus_client's (and client_golang's) default histogram buckets.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class Sample(NamedTuple):
    """One sample: its name (with ``_total``, ``_bucket``, ...), labels and value."""

    name: str
    labels: dict[str, str]
    value: float


Samples = list[Sample]


class Family:
    """One metric family as collected: name, HELP text, type and samples."""

    __slots__ = ("documentation", "name", "samples", "type")

    def __init__(self, name: str, documentation: str, kind: str) -> None:
        """An empty family."""
        self.name = name
        self.documentation = documentation
        self.type = kind
        self.samples: Samples = []


class GaugeFamily(Family):
    """A gauge family built by a custom collector."""

    __slots__ = ("_labelnames",)

    def __init__(
        self,
        name: str,
        documentation: str,
        value: float | None = None,
        labels: Sequence[str] = (),
    ) -> None:
        """A gauge family with these label names, or of one unlabelled ``value``."""
        super().__init__(name, documentation, "gauge")
        self._labelnames = tuple(labels)
        if value is not None:
            self.samples.append(Sample(name, {}, float(value)))

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        """Add the sample of one label set (values in the order of the label names)."""
        self.samples.append(
            Sample(self.name, dict(zip(self._labelnames, labels, strict=True)), value)
        )


class Collector(Protocol):
    """Anything a :class:`Registry` can collect."""

    def collect(self) -> Iterable[Family]:
        """The families, now."""
        ...


class Registry:
    """Collectors, rendered in the order they were registered."""

    def __init__(self) -> None:
        """An empty registry."""
        self._collectors: list[Collector] = []
        self._names: set[str] = set()

    def register(self, collector: Collector, *names: str) -> None:
        """Add ``collector``; ``names`` (its family names) must not be registered yet.

        Raises:
            ValueError: a family of that name is registered already.
        """
        taken = self._names.intersection(names)
        if taken:
            raise ValueError(f"duplicated timeseries in Registry: {sorted(taken)}")
        self._names.update(names)
        self._collectors.append(collector)

    def collect(self) -> Iterator[Family]:
        """Every family of every collector."""
        for collector in list(self._collectors):
            yield from collector.collect()

    def get_sample_value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The value of the sample ``name`` with exactly ``labels`` (for tests), or None."""
        wanted = labels or {}
        for family in self.collect():
            for sample in family.samples:
                if sample.name == name and sample.labels == wanted:
                    return sample.value
        return None


# -- metrics ---------------------------------------------------------------------------------


class _Child:
    """The state of one label set."""

    __slots__ = ()

    def samples(self, name: str, labels: dict[str, str], out: Samples) -> None:
        raise NotImplementedError


class _CounterChild(_Child):
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (never negative).

        Raises:
            ValueError: for a negative amount.
        """
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount

    def samples(self, name: str, labels: dict[str, str], out: Samples) -> None:
        out.append(Sample(name + "_total", labels, self.value))


class _GaugeChild(_Child):
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        self.value -= amount

    def set(self, value: float) -> None:
        """Set the value."""
        self.value = float(value)

    def samples(self, name: str, labels: dict[str, str], out: Samples) -> None:
        out.append(Sample(name, labels, self.value))


class _HistogramChild(_Child):
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.sum += value
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                return

    def samples(self, name: str, labels: dict[str, str], out: Samples) -> None:
        cumulative = 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            cumulative += count
            out.append(Sample(f"{name}_bucket", {**labels, "le": format_value(bound)}, cumulative))
        out.append(Sample(f"{name}_count", labels, cumulative))
        out.append(Sample(f"{name}_sum", labels, self.sum))


C = TypeVar("C", bound=_Child)


class _Metric(Generic[C]):
    """A family whose children are kept per label set; subclasses say how a child is made.

    The full name is ``namespace_subsystem_name`` of the parts that are set (prometheus_client's
    rule).
    """

    kind = ""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: Registry | None = None,
        *,
        namespace: str = "",
        subsystem: str = "",
    ) -> None:
        """Register the family (an unlabelled one gets its one child now)."""
        self.name = "_".join(part for part in (namespace, subsystem, name) if part)
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], C] = {}
        if not self.labelnames:
            self._children[()] = self._child()
        if registry is not None:
            registry.register(self, self.name)

    def _child(self) -> C:
        raise NotImplementedError

    def labels(self, *values: str) -> C:
        """The child of one label set (values in label-name order).

        Raises:
            ValueError: a wrong number of values.
        """
        if len(values) != len(self.labelnames):
            raise ValueError(f"incorrect label count for {self.name}: {len(values)}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._child()
        return child

    def _unlabelled(self) -> C:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels: use .labels(...)")
        return self._children[()]

    def collect(self) -> Iterator[Family]:
        """This family with a sample (or several) per child."""
        family = Family(self.name, self.documentation, self.kind)
        for values, child in list(self._children.items()):
            child.samples(
                self.name, dict(zip(self.labelnames, values, strict=True)), family.samples
            )
        yield family


class Counter(_Metric[_CounterChild]):
    """A counter; ``name`` may end in ``_total`` (the family's name does not, the samples' do)."""

    kind = "counter"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: Registry | None = None,
        *,
        namespace: str = "",
        subsystem: str = "",
    ) -> None:
        """Register the family under ``name`` without ``_total``, as prometheus_client does."""
        name = name.removesuffix("_total")
        super().__init__(
            name, documentation, labelnames, registry, namespace=namespace, subsystem=subsystem
        )

    def _child(self) -> _CounterChild:
        return _CounterChild()

    def inc(self, amount: float = 1.0) -> None:
        """Increment an unlabelled counter."""
        self._unlabelled().inc(amount)


class Gauge(_Metric[_GaugeChild]):
    """A gauge."""

    kind = "gauge"

    def _child(self) -> _GaugeChild:
        return _GaugeChild()

    def set(self, value: float) -> None:
        """Set an unlabelled gauge."""
        self._unlabelled().set(value)

    def inc(self, amount: float = 1.0) -> None:
        """Increment an unlabelled gauge."""
        self._unlabelled().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        """Decrement an unlabelled gauge."""
        self._unlabelled().dec(amount)


class Histogram(_Metric[_HistogramChild]):
    """A histogram with fixed buckets (``+Inf`` added when missing)."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: Registry | None = None,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        *,
        namespace: str = "",
        subsystem: str = "",
    ) -> None:
        """Register the family with these bucket bounds.

        Raises:
            ValueError: bounds not in increasing order.
        """
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.bounds = tuple(bounds)
        super().__init__(
            name, documentation, labelnames, registry, namespace=namespace, subsystem=subsystem
        )

    def _child(self) -> _HistogramChild:
        return _HistogramChild(self.bounds)

    def observe(self, value: float) -> None:
        """Observe on an unlabelled histogram."""
        self._unlabelled().observe(value)


# -- the text format ---------------------------------------------------------------------------


def format_value(value: float) -> str:
    """A sample value as the text format writes it: ``1.0``, ``0.25``, ``1.79e+09``, ``+Inf``.

    Python's ``repr`` except that, like Go, numbers of a million and more switch to exponent form.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    dot = text.find(".")
    if value > 0 and dot > 6:
        digits = (text[:dot] + text[dot + 1 :]).rstrip("0")
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def render(registry: Registry) -> bytes:
    """Every family of ``registry`` in the Prometheus text format (version 0.0.4)."""
    out: list[str] = []
    for family in registry.collect():
        name = family.name + "_total" if family.type == "counter" else family.name
        out.append(f"# HELP {name} {_escape_help(family.documentation)}\n")
        out.append(f"# TYPE {name} {family.type}\n")
        for sample, labels, value in family.samples:
            if labels:
                pairs = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
                out.append(f"{sample}{{{pairs}}} {format_value(value)}\n")
            else:
                out.append(f"{sample} {format_value(value)}\n")
    return "".join(out).encode("utf-8")
