import datetime as dt

import pandas as pd
import pytest

from crmlib.errors import CrmConfigError
from crmlib.periods import (Period, as_of_instant, default_as_of, ensure_instant, period_bounds,
                            period_containing, periods_back, working_days)

TZ = "Europe/Berlin"


def t(s):
    return pd.Timestamp(s, tz=TZ)


# ----------------------------------------------------------------------------- as_of
@pytest.mark.parametrize("as_of", ["2026-09-27", dt.date(2026, 9, 27), pd.Timestamp("2026-09-27"),
                                   dt.datetime(2026, 9, 27)])
def test_as_of_day_becomes_midnight_of_the_next_day_in_the_run_timezone(as_of):
    got = as_of_instant(as_of, TZ)
    assert got == pd.Timestamp("2026-09-28 00:00", tz=TZ)
    assert str(got.tz) == TZ


def test_a_timezone_aware_as_of_passes_through_as_the_same_instant():
    instant = pd.Timestamp("2026-09-27 15:30", tz="UTC")
    got = as_of_instant(instant, TZ)
    assert got == instant and str(got.tz) == TZ


def test_as_of_on_the_day_before_dst_starts_is_the_real_local_midnight():
    # Berlin switches to summer time at 02:00 on 2026-03-29: midnight is still +01:00
    assert as_of_instant("2026-03-28", TZ) == pd.Timestamp("2026-03-28 23:00", tz="UTC")
    assert as_of_instant("2026-10-24", TZ) == pd.Timestamp("2026-10-24 22:00", tz="UTC")


@pytest.mark.parametrize("bad", ["27/09/2026", "yesterday", pd.Timestamp("2026-09-27 10:00")])
def test_as_of_that_is_not_a_day_or_an_instant_is_a_config_error(bad):
    with pytest.raises(CrmConfigError, match="as_of"):
        as_of_instant(bad, TZ)


def test_ensure_instant_rejects_naive_timestamps_with_a_hint():
    with pytest.raises(CrmConfigError, match="as_of_instant"):
        ensure_instant(pd.Timestamp("2026-09-28"))


@pytest.mark.parametrize("today, expected", [
    (dt.date(2026, 9, 28), dt.date(2026, 9, 27)),   # Monday -> the Sunday just ended
    (dt.date(2026, 9, 30), dt.date(2026, 9, 27)),   # Wednesday
    (dt.date(2026, 9, 27), dt.date(2026, 9, 20)),   # Sunday: its week is not complete yet
    ("2026-10-04", dt.date(2026, 9, 27)),
])
def test_default_as_of_is_the_sunday_ending_the_last_complete_iso_week(today, expected):
    assert default_as_of(today) == expected
    assert expected.isoweekday() == 7


# ----------------------------------------------------------------------------- periods
def test_week_bounds_current_previous_and_same_iso_week_a_year_ago():
    b = period_bounds(as_of_instant("2026-09-27", TZ), "week")
    assert (b.current.label, b.current.start, b.current.end) == ("2026-W39", t("2026-09-21"), t("2026-09-28"))
    assert (b.previous.label, b.previous.start, b.previous.end) == ("2026-W38", t("2026-09-14"), t("2026-09-21"))
    # ISO week 39 of 2025 runs Monday 22 to Sunday 28 September 2025
    assert (b.year_ago.label, b.year_ago.start, b.year_ago.end) == ("2025-W39", t("2025-09-22"), t("2025-09-29"))


def test_mid_week_as_of_gives_the_running_week_and_monday_midnight_the_week_before():
    assert period_bounds(as_of_instant("2026-09-23", TZ), "week").current.label == "2026-W39"
    assert period_bounds(t("2026-09-21 00:00"), "week").current.label == "2026-W38"


def test_week_53_maps_to_week_52_when_the_previous_iso_year_has_none():
    b = period_bounds(as_of_instant("2027-01-03", TZ), "week")  # 2026 has 53 ISO weeks
    assert b.current.label == "2026-W53"
    assert (b.current.start, b.current.end) == (t("2026-12-28"), t("2027-01-04"))
    assert b.year_ago.label == "2025-W52"
    assert b.year_ago.start == t("2025-12-22")


def test_month_bounds():
    b = period_bounds(as_of_instant("2026-03-31", TZ), "month")
    assert (b.current.label, b.current.start, b.current.end) == ("2026-03", t("2026-03-01"), t("2026-04-01"))
    assert (b.previous.label, b.previous.start, b.previous.end) == ("2026-02", t("2026-02-01"), t("2026-03-01"))
    assert b.year_ago.label == "2025-03"
    assert b.current.days == 31 and b.current.last_day == dt.date(2026, 3, 31)


def test_quarter_bounds_cross_the_year():
    b = period_bounds(as_of_instant("2026-01-15", TZ), "quarter")
    assert (b.current.label, b.current.start, b.current.end) == ("2026-Q1", t("2026-01-01"), t("2026-04-01"))
    assert (b.previous.label, b.previous.start) == ("2025-Q4", t("2025-10-01"))
    assert (b.year_ago.label, b.year_ago.end) == ("2025-Q1", t("2025-04-01"))


def test_unknown_period_is_a_config_error():
    with pytest.raises(CrmConfigError, match="week, month, quarter"):
        period_bounds(t("2026-09-28"), "fortnight")


def test_periods_back_are_contiguous_oldest_first_and_end_with_the_current_period():
    ps = periods_back(as_of_instant("2026-09-27", TZ), "month", 3)
    assert [p.label for p in ps] == ["2026-07", "2026-08", "2026-09"]
    assert all(a.end == b.start for a, b in zip(ps, ps[1:]))


def test_period_membership_is_half_open():
    p = period_containing(t("2026-09-23 12:00"), "week")
    assert isinstance(p, Period)
    assert t("2026-09-21") in p and t("2026-09-27 23:59:59") in p and t("2026-09-28") not in p


def test_bounds_to_frame_has_the_three_comparisons():
    f = period_bounds(t("2026-09-28"), "week").to_frame()
    assert f.index.tolist() == ["current", "previous", "year_ago"]


# ----------------------------------------------------------------------------- working days
def test_working_days_without_country_counts_weekdays():
    # September 2026 starts on a Tuesday: 4 + 5 + 5 + 5 + 3 weekdays
    sept = period_bounds(as_of_instant("2026-09-30", TZ), "month").current
    assert working_days(sept.start, sept.end) == 22


def test_working_days_skip_public_holidays_of_the_country():
    # December 2026: 23 weekdays; Christmas Day (Friday 25th) is a German public holiday,
    # the 26th is a Saturday anyway
    assert working_days(dt.date(2026, 12, 1), dt.date(2027, 1, 1)) == 23
    assert working_days(dt.date(2026, 12, 1), dt.date(2027, 1, 1), "DE") == 22


def test_working_days_of_an_empty_or_reversed_range_is_zero():
    assert working_days("2026-09-28", "2026-09-28") == 0
    assert working_days("2026-09-28", "2026-09-01") == 0


def test_unknown_holiday_country_is_a_config_error():
    with pytest.raises(CrmConfigError, match="holiday country"):
        working_days("2026-09-01", "2026-10-01", "XX")
