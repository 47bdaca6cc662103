"""The few lines every report notebook starts with.

``report.start(...)`` turns the notebook's parameters into a :class:`Report`: the
audited data (the run's snapshot when the runner gives one, else the source read and
audited now), the as_of instant and periods, the recorder of headline numbers and
alerts, and safe display helpers. Notebooks stay thin: parameters, calls, pictures
and words.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .data import CrmData, export_settings, open_data
from .errors import CrmConfigError
from .memory import release_after_each_cell
from .results import Recorder

PERIODS = ("week", "month", "quarter")


class ReportSkipped(Exception):
    """Raised by :meth:`Report.require` when the export lacks a table the report needs.

    In a notebook it shows as one sentence, not a traceback; the runner marks the
    report "skipped".
    """

    def _render_traceback_(self):  # IPython renders this instead of a traceback
        return [f"Report skipped: {self}"]


@dataclass
class Report:
    name: str
    title: str
    data: CrmData
    as_of_date: dt.date  # last day included
    as_of: pd.Timestamp  # the instant "now": events before it have happened
    period: str
    lookback_periods: int
    timezone: str
    currency: str
    recorder: Recorder
    params: dict = field(default_factory=dict)

    # ------------------------------------------------------------ flow
    def require(self, *tables: str, optional_reason: str = "") -> None:
        """Stop the report cleanly (status "skipped") when a needed table is missing."""
        missing = self.data.missing(*tables)
        if missing:
            names = " and ".join(missing)
            reason = (f"this report needs the {names} table{'s' if len(missing) > 1 else ''}, "
                      f"which the export does not have{optional_reason}.")
            self.recorder.skip(reason)
            from IPython.display import Markdown, display

            display(Markdown(f"**Skipped:** {reason}"))
            raise ReportSkipped(reason)

    def available(self, table: str, what: str) -> bool:
        """True when the export has ``table``; otherwise say in one sentence what is left out."""
        if self.data.has(table):
            return True
        self.say(f"*The export has no {table} table, so {what} is left out.*")
        return False

    # ------------------------------------------------------------ output
    def show(self, df: pd.DataFrame, **kws):
        """Display a table with every value escaped (see crmlib.display.show_table)."""
        from IPython.display import display

        from .display import show_table

        display(show_table(df, **kws))

    def say(self, markdown: str) -> None:
        """Display Markdown built by crmlib.narrative (which escaped every data value)."""
        from IPython.display import Markdown, display

        display(Markdown(markdown))

    def headline(self, key: str, value, *, show: bool = True, **kws):
        """Record a headline number for the front page and show it here as a key figure,
        in the same words the front page uses (crmlib.summary.headline_html)."""
        from dataclasses import asdict

        kws.setdefault("period", self.period)
        h = self.recorder.headline(key, value, **kws)
        if show:
            from IPython.display import HTML, display

            from .summary import headline_html

            display(HTML(headline_html(asdict(h), currency=self.currency,
                                       previous_label=f"previous {h.period}")))
        return h

    def verdict(self, text: str) -> str:
        """The report's one-line verdict on the front page."""
        return self.recorder.verdict(text)

    def alert(self, key: str, message: str, **kws):
        return self.recorder.alert(key, message, **kws)

    @property
    def lookback_start(self) -> pd.Timestamp:
        """Start of the oldest of the last ``lookback_periods`` periods (the current one included)."""
        from .periods import periods_back

        return periods_back(self.as_of, self.period, self.lookback_periods)[0].start

    @property
    def periods(self):
        """The current period, the previous one and the same period a year earlier."""
        from .periods import period_bounds

        return period_bounds(self.as_of, self.period)


def resolve_as_of(as_of, source, *, today: dt.date | None = None) -> dt.date:
    """as_of as a date: the parameter, else the export's recorded as_of, else the Sunday
    ending the last complete ISO week."""
    if as_of not in (None, ""):
        try:
            return pd.Timestamp(str(as_of)).date()
        except ValueError:
            raise CrmConfigError(f"as_of {as_of!r} is not a date (use YYYY-MM-DD)") from None
    recorded = export_settings(source).get("as_of") if source else None
    if recorded:
        return pd.Timestamp(recorded).date()
    from .periods import default_as_of

    return default_as_of(today or dt.date.today())


COMMON_PARAMETERS = ("source", "as_of", "period", "lookback_periods", "timezone", "currency", "owners",
                     "teams", "mask_pii", "snapshot", "results_dir")


def start(name: str, title: str = "", namespace: dict | None = None, **kws) -> "Report":
    """Set up a report from the notebook's parameters.

    ``namespace`` is the notebook's ``globals()``: the common parameters
    (:data:`COMMON_PARAMETERS`) are taken from it, so the first cell after the parameters
    reads ``r = report.start("02_pipeline", "Pipeline", globals())``. Keywords override.
    """
    params = {k: namespace[k] for k in COMMON_PARAMETERS if namespace and k in namespace}
    params.update(kws)
    return _start(name, title=title, **params)


def _start(name: str, *, title: str = "", source="../data/sample", as_of=None, period: str = "week",
          lookback_periods: int = 12, timezone: str = "UTC", currency: str = "EUR", owners=(),
          teams=(), mask_pii: bool = False, snapshot=None, results_dir=None, **params) -> Report:
    """Open the data and set up the report (called in the first cell after the parameters)."""
    from .periods import as_of_instant

    if period not in PERIODS:
        raise CrmConfigError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    if not snapshot and source and not Path(str(source)).exists() and "://" not in str(source) \
            and not str(source).startswith("env:"):
        raise CrmConfigError(f"source {source} does not exist")
    data = open_data(source, timezone=timezone, mask_pii=mask_pii, snapshot=snapshot,
                     owners=_as_list(owners), teams=_as_list(teams))
    as_of_date = resolve_as_of(as_of, source if not snapshot else None) if as_of or not snapshot \
        else resolve_as_of(data.meta.get("as_of"), None)
    recorder = Recorder(name, title=title, results_dir=results_dir)
    _house_style()
    release_after_each_cell()  # a cell's intermediate results do not stay in the kernel's footprint
    return Report(name, title, data, as_of_date, as_of_instant(as_of_date, timezone), period,
                  int(lookback_periods), timezone, currency, recorder, dict(params))


def _as_list(v) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [x.strip() for x in v.split(",") if x.strip()]
    return [str(x) for x in v]


def _house_style() -> None:
    _inline_figures()
    try:
        from .plots import set_theme

        set_theme()
    except ImportError:  # plots is optional for data-only use
        pass
    pd.set_option("display.max_rows", 60)


def _inline_figures() -> None:
    """In a notebook kernel, draw figures inline whatever MPLBACKEND says (a pack needs its pictures)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell":
        shell.run_line_magic("matplotlib", "inline")
