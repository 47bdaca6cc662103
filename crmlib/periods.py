"""Report periods: the as_of instant, ISO weeks, months, quarters and working days.

Conventions used by every report:

* ``as_of`` inside crmlib is an **instant**: a timezone-aware :class:`pandas.Timestamp`
  meaning "now". An event counts only if its timestamp is strictly before it. The
  notebook parameter ``as_of = "2026-09-27"`` names the *last day included*;
  :func:`as_of_instant` turns it into ``2026-09-28 00:00`` in the run's timezone.
* A :class:`Period` is a half-open interval ``[start, end)`` of local midnights, so
  ``start <= t < end`` decides membership and DST changes need no special care.
* Weeks are ISO weeks (Monday start), labelled ``2026-W39``; months ``2026-09``;
  quarters ``2026-Q3``.

Example::

    >>> as_of = as_of_instant("2026-09-27", "Europe/Berlin")
    >>> b = period_bounds(as_of, "week")
    >>> b.current.label, b.previous.label, b.year_ago.label
    ('2026-W39', '2026-W38', '2025-W39')
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from .errors import CrmConfigError

PERIODS = ("week", "month", "quarter")

__all__ = [
    "PERIODS", "Period", "PeriodBounds", "as_of_instant", "default_as_of", "ensure_instant",
    "period_bounds", "period_containing", "periods_back", "working_days",
]


# ----------------------------------------------------------------------------- as_of
def as_of_instant(as_of: str | dt.date | pd.Timestamp, tz: str) -> pd.Timestamp:
    """The instant that ends the day ``as_of``: local midnight of the next day in ``tz``.

    ``as_of`` is the last day included, as a ``"YYYY-MM-DD"`` string, a ``date`` or a
    naive midnight ``Timestamp``/``datetime``. A timezone-aware ``Timestamp`` (or
    ``datetime``, or an ISO string with an offset) is already an instant: it passes
    through unchanged apart from being expressed in ``tz``.

    >>> as_of_instant("2026-09-27", "Europe/Berlin")
    Timestamp('2026-09-28 00:00:00+0200', tz='Europe/Berlin')
    """
    if tz is None:
        raise CrmConfigError("as_of_instant needs a timezone (the run's `timezone` parameter)")
    if isinstance(as_of, str):
        text = as_of.strip()
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            try:
                stamp = pd.Timestamp(text)
            except ValueError:
                raise CrmConfigError(
                    f"as_of {as_of!r} is not a date; write it as YYYY-MM-DD (the last day included)"
                ) from None
            if stamp.tzinfo is None:
                raise CrmConfigError(
                    f"as_of {as_of!r} is neither a YYYY-MM-DD date (the last day included) nor a "
                    "timestamp with a timezone offset"
                )
            return _in_tz(stamp, tz)
        return _local_midnight(day + dt.timedelta(days=1), tz)
    if isinstance(as_of, (pd.Timestamp, dt.datetime)):
        stamp = pd.Timestamp(as_of)
        if stamp.tzinfo is not None:
            return _in_tz(stamp, tz)
        if stamp != stamp.normalize():
            raise CrmConfigError(
                f"as_of {as_of!s} has a time of day but no timezone; pass the day (the last day "
                "included) or a timezone-aware instant"
            )
        return _local_midnight(stamp.date() + dt.timedelta(days=1), tz)
    if isinstance(as_of, dt.date):
        return _local_midnight(as_of + dt.timedelta(days=1), tz)
    raise CrmConfigError(f"as_of must be a date string YYYY-MM-DD, a date or a Timestamp, not {as_of!r}")


def ensure_instant(as_of, *, name: str = "as_of") -> pd.Timestamp:
    """The argument as a timezone-aware Timestamp, or a CrmConfigError saying how to make one."""
    if isinstance(as_of, (pd.Timestamp, dt.datetime)):
        stamp = pd.Timestamp(as_of)
        if stamp.tzinfo is not None:
            return stamp
    raise CrmConfigError(
        f"{name} must be a timezone-aware Timestamp (the instant 'now'), not {as_of!r}; "
        f"build it with crmlib.periods.as_of_instant('YYYY-MM-DD', timezone)"
    )


def default_as_of(today: dt.date | str | pd.Timestamp) -> dt.date:
    """The Sunday that ends the last complete ISO week strictly before ``today``.

    A weekly run on any day of week 40 reports week 39; a run on a Sunday reports the
    week before (that Sunday is not over yet).

    >>> default_as_of(dt.date(2026, 9, 28))  # a Monday
    datetime.date(2026, 9, 27)
    """
    day = _as_date(today, name="today")
    return day - dt.timedelta(days=day.isoweekday())


# ----------------------------------------------------------------------------- periods
@dataclass(frozen=True)
class Period:
    """A reporting period ``[start, end)`` between two local midnights."""

    start: pd.Timestamp
    end: pd.Timestamp  # exclusive
    label: str
    kind: str = "week"

    def __contains__(self, when) -> bool:
        return bool(self.start <= pd.Timestamp(when) < self.end)

    @property
    def days(self) -> int:
        """Number of calendar days in the period."""
        return (self.end.date() - self.start.date()).days

    @property
    def last_day(self) -> dt.date:
        """The last calendar day included."""
        return self.end.date() - dt.timedelta(days=1)

    def previous(self) -> Period:
        """The period just before this one."""
        return period_containing(self.start - pd.Timedelta(microseconds=1), self.kind)

    def next(self) -> Period:
        """The period just after this one."""
        return period_containing(self.end, self.kind)

    def year_ago(self) -> Period:
        """The same period a year earlier (ISO week: same week number of the previous ISO year).

        Week 53 maps to week 52 when the previous ISO year has no week 53.
        """
        tz = self.start.tzinfo
        first = self.start.date()
        if self.kind == "week":
            year, week, _ = first.isocalendar()
            try:
                day = dt.date.fromisocalendar(year - 1, week, 1)
            except ValueError:
                day = dt.date.fromisocalendar(year - 1, 52, 1)
        else:
            day = first.replace(year=first.year - 1)
        return period_containing(_local_midnight(day, tz), self.kind)

    def to_dict(self) -> dict:
        return {"label": self.label, "start": self.start, "end": self.end, "kind": self.kind}


@dataclass(frozen=True)
class PeriodBounds:
    """The current period, the one before it and the same period a year earlier."""

    current: Period
    previous: Period
    year_ago: Period

    def to_frame(self) -> pd.DataFrame:
        """One row per comparison period: which, label, start, end (exclusive)."""
        rows = [dict(which=w, **getattr(self, w).to_dict()) for w in ("current", "previous", "year_ago")]
        return pd.DataFrame(rows).set_index("which")


def period_containing(when: pd.Timestamp, period: str = "week") -> Period:
    """The week, month or quarter (in ``when``'s timezone) that contains the instant ``when``."""
    when = ensure_instant(when, name="when")
    _check_period(period)
    tz = when.tzinfo
    day = when.date()
    if period == "week":
        first = day - dt.timedelta(days=day.isoweekday() - 1)
        after = first + dt.timedelta(days=7)
        year, week, _ = first.isocalendar()
        label = f"{year}-W{week:02d}"
    elif period == "month":
        first = day.replace(day=1)
        after = _add_months(first, 1)
        label = f"{first.year}-{first.month:02d}"
    else:
        first = dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
        after = _add_months(first, 3)
        label = f"{first.year}-Q{(first.month - 1) // 3 + 1}"
    return Period(_local_midnight(first, tz), _local_midnight(after, tz), label, period)


def period_bounds(as_of: pd.Timestamp, period: str = "week") -> PeriodBounds:
    """The period containing the last instant before ``as_of``, the previous one and the one a year earlier.

    ``as_of`` is the instant "now" (see :func:`as_of_instant`); with ``as_of`` at the
    end of a week the current week is complete, otherwise it is the running one.
    """
    as_of = ensure_instant(as_of)
    current = period_containing(as_of - pd.Timedelta(microseconds=1), period)
    return PeriodBounds(current, current.previous(), current.year_ago())


def periods_back(as_of: pd.Timestamp, period: str = "week", n: int = 8) -> list[Period]:
    """The ``n`` most recent periods up to ``as_of``, oldest first; the last is the current one."""
    if int(n) < 1:
        raise CrmConfigError(f"periods_back needs n >= 1 (got {n})")
    out = [period_bounds(as_of, period).current]
    for _ in range(int(n) - 1):
        out.append(out[-1].previous())
    return out[::-1]


# ----------------------------------------------------------------------------- working days
def working_days(start, end, country: str | None = None, *, subdiv: str | None = None) -> int:
    """Number of working days in ``[start, end)``: Monday to Friday minus the country's public holidays.

    ``start`` and ``end`` are dates or timestamps (their local calendar day counts; ``end``
    is excluded, so ``working_days(p.start, p.end)`` covers a :class:`Period`).
    ``country`` is an ISO code known to the ``holidays`` package (``"DE"``, ``"US"``,
    with ``subdiv`` for a state or region); ``None`` counts weekdays only.
    """
    first, after = _as_date(start, name="start"), _as_date(end, name="end")
    if after <= first:
        return 0
    days = pd.bdate_range(first, after - dt.timedelta(days=1))
    if country is None:
        return len(days)
    import holidays

    try:
        public = holidays.country_holidays(country, subdiv=subdiv,
                                           years=range(first.year, after.year + 1))
    except NotImplementedError:
        raise CrmConfigError(
            f"unknown holiday country {country!r} (subdivision {subdiv!r}); use an ISO code the "
            "`holidays` package knows, e.g. 'DE', 'GB', 'US', or None for weekdays only"
        ) from None
    return int(sum(d.date() not in public for d in days))


# ----------------------------------------------------------------------------- helpers
def _check_period(period: str) -> None:
    if period not in PERIODS:
        raise CrmConfigError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")


def _local_midnight(day: dt.date, tz) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize(tz, ambiguous=True, nonexistent="shift_forward").as_unit("us")


def _in_tz(stamp: pd.Timestamp, tz) -> pd.Timestamp:
    return stamp.tz_convert(tz)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _as_date(value, *, name: str) -> dt.date:
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise CrmConfigError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return pd.Timestamp(value).date()
    if isinstance(value, dt.date):
        return value
    raise CrmConfigError(f"{name} must be a date, not {value!r}")
