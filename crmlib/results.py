"""What a report records while it runs: headline numbers, alerts and its status.

A notebook records through :class:`Recorder`; under the runner each report's record
is written to ``<results_dir>/<report>.json``, which the runner reads to build the
front page (index.html) and the manifest. The front page therefore shows exactly the
numbers the report computed, never a second computation of them. Interactively
(``results_dir`` None) the recorder only keeps the record in memory.

Format of a record (JSON)::

    {"report": "02_pipeline", "title": "...", "status": "ok" | "skipped",
     "reason": "...",                      # for skipped
     "verdict": "...",                     # one line on the report for the front page
     "headlines": [{"key", "label", "value", "unit", "previous", "year_ago",
                    "change", "verdict", "anchor", "period"}],
     "alerts": [{"key", "message", "severity", "anchor"}]}
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

UNITS = ("count", "money", "pct", "days", "hours", "ratio", "score", "number")
SEVERITIES = ("info", "warning", "critical")


def _clean(value: Any) -> Any:
    """JSON-safe plain Python value (numpy scalars, NaN -> None)."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


@dataclass
class Headline:
    key: str
    label: str
    value: float | int | None
    unit: str = "number"
    previous: float | int | None = None
    year_ago: float | int | None = None
    verdict: str = ""
    anchor: str = ""
    period: str = ""  # what "previous" is the one before: week, month, quarter ("" = the run's period)

    @property
    def change(self) -> float | None:
        """Change on the previous period: percentage points (as a fraction) for rates,
        relative otherwise (see crmlib.summary.change)."""
        from .summary import change

        return change(self.value, self.previous, self.unit)


@dataclass
class Alert:
    key: str
    message: str
    severity: str = "warning"
    anchor: str = ""


@dataclass
class Recorder:
    """Collects one report's record and writes it after every change (atomically)."""

    report: str
    title: str = ""
    results_dir: str | os.PathLike | None = None
    status: str = "ok"
    reason: str = ""
    verdict_text: str = ""
    headlines: list[Headline] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)

    def headline(self, key: str, value, *, label: str, unit: str = "number", previous=None,
                 year_ago=None, verdict: str = "", anchor: str = "", period: str = "") -> Headline:
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, not {unit!r}")
        h = Headline(key, label, _clean(value), unit, _clean(previous), _clean(year_ago),
                     verdict, anchor, period)
        self.headlines = [x for x in self.headlines if x.key != key] + [h]
        self._write()
        return h

    def alert(self, key: str, message: str, *, severity: str = "warning", anchor: str = "") -> Alert:
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {severity!r}")
        a = Alert(key, message, severity, anchor)
        self.alerts = [x for x in self.alerts if x.key != key] + [a]
        self._write()
        return a

    def verdict(self, text: str) -> str:
        """The report's one-line verdict for the front page (plain text, escaped there)."""
        self.verdict_text = " ".join(str(text).split())
        self._write()
        return self.verdict_text

    def skip(self, reason: str) -> None:
        self.status, self.reason = "skipped", reason
        self._write()

    def to_dict(self) -> dict:
        return {
            "report": self.report, "title": self.title, "status": self.status,
            "reason": self.reason, "verdict": self.verdict_text,
            "headlines": [dict(asdict(h), change=_clean(h.change)) for h in self.headlines],
            "alerts": [asdict(a) for a in self.alerts],
        }

    def _write(self) -> None:
        if self.results_dir is None:
            return
        folder = Path(self.results_dir)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / f"{self.report}.json", self.to_dict())


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON next to ``path`` and rename it into place (never half a file)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_record(results_dir: str | os.PathLike, report: str) -> dict | None:
    """The record a report wrote, or None when it wrote none."""
    path = Path(results_dir) / f"{report}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
