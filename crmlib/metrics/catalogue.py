"""The metric catalogue: every metric's name, definition, unit, report and function.

A metric module registers each public function with the :func:`metric` decorator::

    @metric(report="02", unit="count")
    def open_pipeline(deals, stages, as_of, ...):
        \"\"\"Open deals at as_of per stage: count, total value, weighted value and average size.\"\"\"

The definition is the first sentence of the docstring, read when the module is
imported, so the glossary (:func:`glossary`, shown by the tutorial notebook) can never
drift from the code. A unit test checks that every public function in
``crmlib.metrics`` is registered.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass

import pandas as pd

__all__ = ["MetricInfo", "UNITS", "metric", "first_sentence", "registry", "glossary", "lookup"]

#: units a metric may have (the results units plus labels, flags and whole tables)
UNITS = ("count", "money", "pct", "days", "hours", "ratio", "score", "number", "label", "flag",
         "table")

_REGISTRY: dict[str, MetricInfo] = {}


@dataclass(frozen=True)
class MetricInfo:
    """One catalogue entry."""

    name: str
    definition: str
    unit: str
    report: str
    function: str  # dotted path, e.g. crmlib.metrics.pipeline.open_pipeline


def first_sentence(doc: str | None) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    if not doc:
        return ""
    paragraph = inspect.cleandoc(doc).split("\n\n", 1)[0]
    text = " ".join(paragraph.split())
    match = re.search(r"(?<=[.!?])\s", text)
    return text[: match.start()] if match else text


def metric(*, report: str, unit: str, name: str | None = None):
    """Register the decorated function in the catalogue (the function itself is returned unchanged).

    ``report`` is the report number (``"02"``), ``unit`` one of :data:`UNITS`.
    The function must have a docstring whose first sentence is the definition.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, not {unit!r}")

    def register(func):
        definition = first_sentence(func.__doc__)
        if not definition:
            raise TypeError(f"{func.__module__}.{func.__qualname__} needs a docstring whose first "
                            "sentence defines the metric")
        info = MetricInfo(name or func.__name__, definition, unit, str(report),
                          f"{func.__module__}.{func.__qualname__}")
        _REGISTRY[info.function] = info
        func.__metric__ = info
        return func

    return register


def _import_metric_modules() -> None:
    import crmlib.metrics as package

    for mod in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if not mod.name.endswith(".catalogue"):
            importlib.import_module(mod.name)


def registry() -> dict[str, MetricInfo]:
    """Every registered metric keyed by its function's dotted path (all metric modules imported)."""
    _import_metric_modules()
    return dict(_REGISTRY)


def lookup(name: str) -> MetricInfo:
    """The catalogue entry of a metric by name (``"win_rate"``) or dotted path."""
    entries = registry()
    if name in entries:
        return entries[name]
    found = [m for m in entries.values() if m.name == name]
    if len(found) != 1:
        raise KeyError(f"{name!r} is {'ambiguous' if found else 'not a registered metric'}; "
                       f"known: {', '.join(sorted(m.name for m in entries.values()))}")
    return found[0]


def glossary() -> pd.DataFrame:
    """One row per metric: report, metric, definition, unit, function; ordered by report and name."""
    rows = [dict(report=m.report, metric=m.name, definition=m.definition, unit=m.unit,
                 function=m.function) for m in registry().values()]
    frame = pd.DataFrame(rows, columns=["report", "metric", "definition", "unit", "function"])
    return frame.sort_values(["report", "metric"], kind="stable").reset_index(drop=True)
