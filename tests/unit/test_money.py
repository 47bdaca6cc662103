import numpy as np
import pandas as pd
import pytest

from crmlib.errors import CrmDataError, CurrencyError
from crmlib.money import require_single_currency, to_reporting

TZ = "Europe/Berlin"


def ts(*xs):
    return pd.Series([pd.Timestamp(x, tz=TZ) if x else pd.NaT for x in xs], dtype=f"datetime64[us, {TZ}]")


def deals(amounts, currencies, dates, index=None):
    f = pd.DataFrame({"amount": pd.Series(amounts, dtype="float64"),
                      "currency": pd.Series(currencies, dtype="str"),
                      "created_at": ts(*dates)})
    if index is not None:
        f.index = index
    return f


FX = pd.DataFrame({"currency": pd.Series(["USD", "USD", "GBP"], dtype="str"),
                   "date": ts("2026-01-01", "2026-03-01", "2026-01-01"),
                   "rate_to_reporting": [0.9, 0.8, 1.2]})


def test_rows_in_the_reporting_currency_are_unchanged_and_need_no_fx_table():
    d = deals([100.0, 250.5], ["EUR", "EUR"], ["2026-02-01", "2026-02-02"])
    out = to_reporting(d, "amount", currency="EUR", date_col="created_at")
    assert out["amount_rep"].tolist() == [100.0, 250.5]
    assert "amount_rep" not in d.columns  # a copy, the input is untouched


def test_changing_the_converted_frame_leaves_the_input_as_it_was():
    """The result shares the input's columns until one side changes them (copy-on-write)."""
    d = deals([100.0, 250.5], ["EUR", "USD"], ["2026-02-01", "2026-03-02"])
    before = d.copy()
    out = to_reporting(d, "amount", currency="EUR", fx_rates=FX, date_col="created_at")
    out.loc[0, "amount"] = -1.0
    out["currency"] = "XXX"
    out.loc[1, "created_at"] = pd.NaT
    pd.testing.assert_frame_equal(d, before)
    d.loc[1, "amount"] = 7.0  # and the other way round
    assert out.loc[1, "amount"] == 250.5 and out.loc[1, "amount_rep"] == pytest.approx(250.5 * 0.8)


def test_each_row_uses_the_latest_rate_on_or_before_its_date():
    d = deals([100.0, 100.0, 100.0, 100.0, 10.0],
              ["USD", "USD", "USD", "EUR", "GBP"],
              ["2026-02-15", "2026-03-01", "2026-05-01", "2026-05-01", "2026-02-01"],
              index=[10, 3, 7, 1, 5])
    out = to_reporting(d, "amount", currency="EUR", fx_rates=FX, date_col="created_at")
    # 0.9 until March, 0.8 from 1 March (the exact day included); EUR as is; GBP 1.2
    assert out.index.tolist() == [10, 3, 7, 1, 5]
    assert out["amount_rep"].tolist() == pytest.approx([90.0, 80.0, 80.0, 100.0, 12.0])


def test_missing_amounts_stay_missing():
    d = deals([np.nan, 100.0], ["USD", "USD"], ["2026-02-15", "2026-02-15"])
    out = to_reporting(d, "amount", currency="EUR", fx_rates=FX, date_col="created_at")
    assert np.isnan(out["amount_rep"].iloc[0]) and out["amount_rep"].iloc[1] == pytest.approx(90.0)


def test_mixing_currencies_without_fx_table_names_currencies_and_row_counts():
    d = deals([1.0, 2.0, 3.0, 4.0], ["EUR", "USD", "USD", "GBP"], ["2026-02-01"] * 4)
    with pytest.raises(CurrencyError) as err:
        to_reporting(d, "amount", currency="EUR", date_col="created_at")
    msg = str(err.value)
    assert "USD (2 rows)" in msg and "GBP (1 row)" in msg and "fx_rates" in msg


def test_a_currency_missing_from_the_fx_table_is_named():
    d = deals([1.0, 2.0], ["USD", "CHF"], ["2026-02-01"] * 2)
    with pytest.raises(CurrencyError, match=r"CHF \(1 row\).*add rows"):
        to_reporting(d, "amount", currency="EUR", fx_rates=FX, date_col="created_at")


def test_rows_dated_before_the_first_rate_are_an_error_not_a_guess():
    d = deals([1.0], ["USD"], ["2025-12-31"])
    with pytest.raises(CurrencyError, match="before the first exchange rate"):
        to_reporting(d, "amount", currency="EUR", fx_rates=FX, date_col="created_at")


def test_a_frame_without_currencies_needs_assume_currency():
    d = deals([1.0, 2.0], [None, None], ["2026-02-01"] * 2)
    with pytest.raises(CurrencyError, match="assume_currency"):
        to_reporting(d, "amount", currency="EUR", date_col="created_at")
    out = to_reporting(d, "amount", currency="EUR", date_col="created_at", assume_currency="EUR")
    assert out["amount_rep"].tolist() == [1.0, 2.0]


def test_assume_currency_other_than_reporting_is_converted():
    d = deals([10.0], [None], ["2026-02-01"]).drop(columns="currency")
    out = to_reporting(d, "amount", currency="EUR", fx_rates=FX, date_col="created_at",
                       assume_currency="USD")
    assert out["amount_rep"].tolist() == pytest.approx([9.0])


def test_at_instant_uses_the_rate_in_force_strictly_before_it():
    d = deals([100.0], ["USD"], ["2026-01-15"])
    at = pd.Timestamp("2026-03-01", tz=TZ)  # the 0.8 rate dated exactly at `at` is not yet known
    out = to_reporting(d, "amount", currency="EUR", fx_rates=FX, at=at)
    assert out["amount_rep"].tolist() == pytest.approx([90.0])


def test_several_money_columns_get_their_own_rep_column():
    d = deals([100.0], ["USD"], ["2026-04-01"]).assign(cost=[50.0])
    out = to_reporting(d, ["amount", "cost"], currency="EUR", fx_rates=FX, date_col="created_at")
    assert (out["amount_rep"].item(), out["cost_rep"].item()) == pytest.approx((80.0, 40.0))


def test_bad_reporting_currency_code_is_rejected():
    with pytest.raises(CurrencyError, match="three-letter"):
        to_reporting(deals([1.0], ["EUR"], ["2026-01-01"]), "amount", currency="euro",
                     date_col="created_at")


def test_require_single_currency_refuses_an_unconverted_mixed_column():
    d = deals([1.0, 2.0], ["EUR", "USD"], ["2026-02-01"] * 2)
    with pytest.raises(CurrencyError, match="mixes currencies"):
        require_single_currency(d, "amount")
    with pytest.raises(CrmDataError, match="to_reporting"):
        require_single_currency(d, "amount_rep")
    require_single_currency(deals([1.0], ["USD"], ["2026-02-01"]), "amount")  # one currency is fine
