"""Money in the reporting currency: convert amounts with dated exchange rates, never sum blindly.

The convention of the workbook: a table's money columns stay in the row's own
currency (``amount`` + ``currency``); :func:`to_reporting` adds a converted twin column
named ``<col>_rep`` (``amount`` -> ``amount_rep``) in the reporting currency. Every
metric that adds money up reads the ``_rep`` column (``amount_col="amount_rep"`` by
default), so an unconverted frame fails with a message that says to call
:func:`to_reporting` first, instead of summing euros and dollars.

Example::

    deals = money.to_reporting(deals, "amount", currency="EUR", fx_rates=fx,
                               date_col="created_at")
    deals[["amount", "currency", "amount_rep"]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import CrmDataError, CurrencyError

__all__ = ["REP_SUFFIX", "rep_column", "to_reporting", "require_single_currency"]

REP_SUFFIX = "_rep"


def rep_column(col: str) -> str:
    """Name of the reporting-currency twin of a money column (``amount`` -> ``amount_rep``)."""
    return f"{col}{REP_SUFFIX}"


def to_reporting(frame: pd.DataFrame, amount_cols: str | Sequence[str], *, currency: str,
                 fx_rates: pd.DataFrame | None = None, date_col: str | None = None,
                 at: pd.Timestamp | None = None, currency_col: str = "currency",
                 assume_currency: str | None = None, table: str = "deals") -> pd.DataFrame:
    """A copy of ``frame`` with each money column also given in the reporting currency as ``<col>_rep``.

    Each row is converted with the latest rate of its currency dated on or before the
    row's ``date_col`` (``pd.merge_asof`` per currency), or, with ``at`` instead of
    ``date_col``, with the latest rate dated strictly before the instant ``at`` for
    every row. Rows already in ``currency`` are copied unchanged (rate 1); missing
    amounts stay missing.

    Parameters
    ----------
    frame : a canonical table with money columns and a ``currency_col``.
    amount_cols : the money column(s) to convert, e.g. ``"amount"`` or
        ``("revenue", "cost")``.
    currency : the reporting currency (ISO code, the run's ``currency`` parameter).
    fx_rates : the canonical ``fx_rates`` table (currency, date, rate_to_reporting),
        needed as soon as one row is in another currency.
    date_col : the timestamp each row is valued at (``"created_at"`` for deals is
        stable and never after as_of for the deals a report counts).
    at : value every row at the rate in force just before this instant instead.
    assume_currency : the currency of rows whose currency is missing. Without it, a
        missing currency is an error (a frame with no currency at all is *not* silently
        taken to be in the reporting currency).

    Raises
    ------
    CurrencyError : a currency has no rate (or none early enough), a currency is missing,
        or rates are unusable; the message names the currencies and the row counts.
    """
    cols = [amount_cols] if isinstance(amount_cols, str) else list(amount_cols)
    currency = _check_code(currency, "currency")
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise CrmDataError(f"{table} has no money column(s) {', '.join(missing)} to convert",
                           table=table, column=missing[0])
    if (date_col is None) == (at is None):
        raise CurrencyError("to_reporting needs exactly one of date_col= (value each row at its own "
                            "date) or at= (value every row at one instant)", table=table)

    codes = _row_currencies(frame, currency_col, assume_currency, table)
    out = frame.copy(deep=False)  # copy-on-write: the export's columns are shared until either side changes them
    foreign = (codes != currency).to_numpy()
    rate = np.ones(len(frame), dtype="float64")
    if foreign.any():
        rate[foreign] = _rates_for(frame.loc[foreign], codes[foreign], currency=currency,
                                   fx_rates=fx_rates, date_col=date_col, at=at, table=table)
    for col in cols:
        values = pd.to_numeric(out[col], errors="raise").astype("float64")
        out[rep_column(col)] = values.to_numpy() * rate
    return out


def require_single_currency(frame: pd.DataFrame, amount_col: str, *, currency_col: str = "currency",
                            table: str = "deals") -> None:
    """Raise CurrencyError when an unconverted money column mixes currencies (or lacks the column).

    A column whose name ends in ``_rep`` was converted by :func:`to_reporting` and is
    always accepted.
    """
    if amount_col not in frame.columns:
        hint = ""
        if amount_col.endswith(REP_SUFFIX):
            base = amount_col[: -len(REP_SUFFIX)]
            hint = (f"; convert first: crmlib.money.to_reporting({table}, {base!r}, currency=..., "
                    f"fx_rates=..., date_col='created_at')")
        raise CrmDataError(f"{table} has no column {amount_col!r}{hint}", table=table, column=amount_col)
    if amount_col.endswith(REP_SUFFIX) or currency_col not in frame.columns:
        return
    codes = frame[currency_col].dropna().unique()
    if len(codes) > 1:
        raise CurrencyError(
            f"{table}.{amount_col} mixes currencies ({', '.join(sorted(map(str, codes)))}); convert "
            f"with crmlib.money.to_reporting and use the {rep_column(amount_col)!r} column",
            table=table, column=amount_col)


# ----------------------------------------------------------------------------- helpers
def _check_code(code, what: str) -> str:
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha() or not code.isupper():
        raise CurrencyError(f"{what} must be a three-letter ISO code such as 'EUR', not {code!r}")
    return code


def _row_currencies(frame, currency_col, assume_currency, table) -> pd.Series:
    if assume_currency is not None:
        assume_currency = _check_code(assume_currency, "assume_currency")
    if currency_col not in frame.columns:
        codes = pd.Series(pd.NA, index=frame.index, dtype="str")
    else:
        codes = frame[currency_col].astype("str")
    blank = codes.isna() | (codes.str.strip() == "")
    if blank.any():
        if assume_currency is None:
            what = ("has no currency column" if currency_col not in frame.columns
                    else f"has {int(blank.sum())} of {len(frame)} rows without a {currency_col}")
            raise CurrencyError(
                f"{table} {what}, so their amounts cannot be converted; if they are all in one "
                f"currency pass assume_currency='EUR' (or the right code), otherwise fix the export",
                table=table, column=currency_col)
        codes = codes.where(~blank, assume_currency)
    return codes


def _rates_for(rows, codes, *, currency, fx_rates, date_col, at, table) -> np.ndarray:
    counts = codes.value_counts().sort_index()
    if fx_rates is None:
        listed = ", ".join(f"{c} ({_rows(n)})" for c, n in counts.items())
        raise CurrencyError(
            f"{table} mixes currencies: {listed} besides the reporting currency {currency}, and no "
            f"fx_rates table was given; add an fx_rates table (currency, date, rate_to_reporting) "
            f"with rates to {currency}", table=table)
    need = {"currency", "date", "rate_to_reporting"} - set(fx_rates.columns)
    if need:
        raise CurrencyError(f"fx_rates lacks column(s) {', '.join(sorted(need))}", table="fx_rates")
    fx = fx_rates[["currency", "date", "rate_to_reporting"]].copy()
    bad = fx["rate_to_reporting"].isna() | ~(fx["rate_to_reporting"] > 0) | fx["date"].isna()
    if bad.any():
        raise CurrencyError(f"fx_rates has {int(bad.sum())} rows with a missing date or a rate that "
                            "is not a positive number; fix or drop them", table="fx_rates")
    known = set(fx["currency"].astype("str"))
    lacking = counts[~counts.index.isin(known)]
    if len(lacking):
        listed = ", ".join(f"{c} ({_rows(n)})" for c, n in lacking.items())
        raise CurrencyError(
            f"{table} has amounts in {listed} but fx_rates has no rate for them; add rows for these "
            f"currencies to the fx_rates table", table=table)

    fx["date"] = _utc(fx["date"], "fx_rates.date")
    fx["currency"] = fx["currency"].astype("str")
    fx = fx.sort_values("date", kind="stable")
    left = pd.DataFrame({"_pos": np.arange(len(rows)), "currency": codes.to_numpy()})
    if at is not None:
        from .periods import ensure_instant

        at = ensure_instant(at, name="at")
        left["_when"] = pd.Timestamp(at).tz_convert("UTC").as_unit("us")
        allow_exact = False  # a rate dated at the instant `at` is not yet known
    else:
        if date_col not in rows.columns:
            raise CrmDataError(f"{table} has no date column {date_col!r} to pick exchange rates by",
                               table=table, column=date_col)
        left["_when"] = _utc(rows[date_col], f"{table}.{date_col}").to_numpy()
        allow_exact = True
        undated = left["_when"].isna()
        if undated.any():
            raise CurrencyError(
                f"{int(undated.sum())} {table} rows in another currency have no {date_col}, so no "
                f"rate can be chosen; pick a date column that is always filled (e.g. created_at) "
                f"or use at=as_of", table=table, column=date_col)
    merged = pd.merge_asof(left.sort_values("_when", kind="stable"), fx, left_on="_when",
                           right_on="date", by="currency", direction="backward",
                           allow_exact_matches=allow_exact)
    merged = merged.sort_values("_pos")
    early = merged["rate_to_reporting"].isna()
    if early.any():
        first = fx.groupby("currency")["date"].min()
        listed = ", ".join(
            f"{c} ({_rows(n)}; first rate {first[c].date()})"
            for c, n in merged.loc[early, "currency"].value_counts().sort_index().items())
        raise CurrencyError(
            f"{table} has rows dated before the first exchange rate of their currency: {listed}; "
            f"add earlier rates to the fx_rates table", table=table)
    return merged["rate_to_reporting"].to_numpy(dtype="float64")


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _utc(values: pd.Series, what: str) -> pd.Series:
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        raise CurrencyError(f"{what} must be timezone-aware timestamps (got {values.dtype})")
    return values.dt.tz_convert("UTC").dt.as_unit("us")
