import importlib
import inspect
import pkgutil

import pytest

import crmlib.metrics as metrics_pkg
from crmlib.metrics import catalogue
from crmlib.metrics.catalogue import first_sentence, glossary, lookup, metric, registry

MODULES = sorted(m.name for m in pkgutil.iter_modules(metrics_pkg.__path__)
                 if m.name != "catalogue")


def _public_functions(module):
    return [f for name, f in inspect.getmembers(module, inspect.isfunction)
            if not name.startswith("_") and f.__module__ == module.__name__]


@pytest.mark.parametrize("name", MODULES)
def test_every_public_metric_function_is_in_the_catalogue(name):
    module = importlib.import_module(f"crmlib.metrics.{name}")
    entries = registry()
    missing = [f.__name__ for f in _public_functions(module)
               if f"{module.__name__}.{f.__qualname__}" not in entries]
    assert not missing, f"add @metric(report=..., unit=...) to {name}: {missing}"


def test_definitions_are_the_docstrings_first_sentences():
    for path, info in registry().items():
        module_name, func_name = path.rsplit(".", 1)
        func = getattr(importlib.import_module(module_name), func_name)
        assert info.definition == first_sentence(func.__doc__), path
        assert info.definition.endswith("."), f"{path}: the definition should be a full sentence"


def test_the_pipeline_metrics_are_there_with_report_and_unit():
    g = glossary()
    assert g.columns.tolist() == ["report", "metric", "definition", "unit", "function"]
    row = g.set_index("metric").loc["open_pipeline"]
    assert row["report"] == "02" and row["unit"] == "money"
    assert row["function"] == "crmlib.metrics.pipeline.open_pipeline"
    for name in ("deal_status_at", "stage_at", "pipeline_changes", "win_rate", "deal_velocity",
                 "stalled_deals", "task_coverage", "task_coverage_by_owner", "owner_load",
                 "stage_visits", "stage_time_norms"):
        assert name in g["metric"].tolist()
    assert g["report"].is_monotonic_increasing


def test_lookup_by_name():
    assert lookup("win_rate").definition.startswith("Won deals divided by")


def test_first_sentence_joins_lines_and_stops_at_the_first_full_stop():
    doc = """Open deals at as_of
    per stage. Second sentence.

    Details."""
    assert first_sentence(doc) == "Open deals at as_of per stage."
    assert first_sentence(None) == ""


def test_metric_without_docstring_or_with_unknown_unit_is_refused():
    with pytest.raises(ValueError, match="unit"):
        metric(report="02", unit="furlongs")

    def undocumented(x):
        return x

    with pytest.raises(TypeError, match="docstring"):
        metric(report="02", unit="count")(undocumented)
    assert not any(k.endswith("undocumented") for k in catalogue._REGISTRY)
