"""Metrics: one module per subject (pipeline, cycle, conversion, ...), plus the catalogue.

Every public function of a metric module is registered in
:mod:`crmlib.metrics.catalogue` with the ``@metric(report=..., unit=...)`` decorator; its
docstring's first sentence is the definition shown in the glossary. Metric functions
are pure: DataFrames and an explicit ``as_of`` instant in, a DataFrame or a small frozen
dataclass out; no I/O, printing, plotting or clock reading.
"""
