"""Win probability of open deals (statsmodels Logit), its honest evaluation, and the Monte Carlo pipeline forecast.

The model answers: *a deal open at time t -- will it be won?* It is trained on
**snapshots**: at regular times t (every ``every_days``) every deal open at t becomes a
row whose features are computed from data strictly before t, and whose outcome is the
deal's eventual won/lost status. Open deals at ``as_of`` are scored with the very same
features at ``as_of``, so training and use match.

Features of a deal at t (:func:`deal_features`), each from data before t only:

* ``stage`` -- the stage it was in at t (last ``stage_history`` entry before t); left out
  when the export has no stage history (the export's stage is the stage *today*, which
  would leak the outcome into past snapshots);
* ``log_age`` -- log(1 + days since creation);
* ``log_amount`` -- log of the amount in the reporting currency (the export's current
  amount: amount changes are not tracked);
* ``source`` -- lead source (rare sources pooled as "other", missing as "unknown");
* ``owner_logit`` -- the owner's past win rate from deals closed before t, shrunk toward
  the overall rate before t with ``prior_deals`` pseudo-deals, on the logit scale;
* ``log_calls_emails`` and ``log_meetings_tasks`` -- log(1 + activities of that kind
  linked to the deal and created before t), minus the average of that number over all
  deals open at t: how busy a deal is compared with the others at the time, so a change
  in what gets logged (the phone integration going live) does not shift every
  prediction made after it.

Features without variation in the training rows (e.g. calls before the phone
integration existed) are dropped, and the model says so. A weak prior (one won and one
lost pseudo-deal per category level) keeps a level whose deals all ended alike from
getting an infinite coefficient.

Honest evaluation (:func:`win_probability_model`): the data are split **by time**. The
model is fitted on snapshots up to ``split - label_wait_days`` with outcomes known at
``split`` (= as_of - holdout_days) and evaluated on snapshots from ``split`` to
``as_of - label_wait_days`` with outcomes known at as_of: AUC, Brier score (against the
base rate and against the CRM's stage probabilities) and a calibration table by decile.
Rows of the same deal are correlated, so standard errors are clustered by deal. The
model used for the open pipeline is then refitted on every snapshot up to
``as_of - label_wait_days``.

:func:`simulate_pipeline` draws won/lost for every open deal (and, by default, the
model's coefficients from their sampling distribution) 10,000 times, vectorised and
seeded, giving intervals for the revenue expected per close period.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.special import expit

from ..errors import CrmConfigError, CrmDataError
from ..lookup import isin
from ..periods import ensure_instant
from ..pushdown.scan import is_scan

__all__ = [
    "FEATURES", "deal_features", "snapshot_frame", "WinModel", "fit_win_model", "Evaluation",
    "evaluate", "auc", "calibration_table", "calibration_slope", "WinProbability", "win_probability_model",
    "score_open_deals", "PipelineSimulation", "simulate_pipeline",
]

FEATURES = ("stage", "log_age", "log_amount", "source", "owner_logit", "log_calls_emails",
            "log_meetings_tasks")
CATEGORICAL = ("stage", "source")
AMOUNT_COL = "amount_rep"
#: the activities columns the model's activity counts use (a report reads only these)
ACTIVITY_COLUMNS = ("deal_id", "type", "created_at")
MAX_DEALS = 50_000  # deals whose snapshots train and test the model (a random sample beyond)
_CLOSED = ("won", "lost")
_TOUCHES = (("log_calls_emails", ("call", "email")), ("log_meetings_tasks", ("meeting", "task")))
_DAY = pd.Timedelta(days=1)


# ----------------------------------------------------------------------------- features
def deal_features(deals: pd.DataFrame, at, *, history: pd.DataFrame | None = None,
                  activities: pd.DataFrame | None = None, amount_col: str = AMOUNT_COL,
                  prior_deals: float = 10.0, only=None) -> pd.DataFrame:
    """Features of every deal open at each snapshot time, from data strictly before that time.

    Parameters
    ----------
    deals : canonical deals with ``amount_col``.
    at : one instant or a sequence of instants (snapshot times, timezone-aware).
    history : ``stage_history`` or None (then ``stage`` is missing).
    activities : ``activities`` or None (then the activity counts are missing).
    prior_deals : strength of the shrinkage of an owner's win rate toward the overall one.
    only : deal ids: rows for these deals only (a sample); the owners' win rates still
        count every deal of ``deals``.

    Returns
    -------
    One row per (snapshot, open deal): ``snapshot``, ``deal_id``, ``owner_id``, the
    features of :data:`FEATURES` (missing ones as NaN / "unknown"), ``days_old``,
    ``owner_closed``, ``owner_won`` (the owner's closes before the snapshot) and
    ``amount`` (``amount_col``). A deal is open at t when it was created before t and was
    not won or lost before t.
    """
    times = _instants(at)
    for col in ("deal_id", "status", "created_at", "closed_at", amount_col):
        if col not in deals.columns:
            raise CrmDataError(f"deals has no {col} column (win probability features)",
                               table="deals", column=col)
    d = deals.reset_index(drop=True)
    for col in ("owner_id", "source"):  # optional in the schema: missing means unknown
        if col not in d.columns:
            d[col] = pd.Series(pd.NA, index=d.index, dtype="str")
    created = _ns(d["created_at"])
    closed_ns = _ns(d["closed_at"])
    is_closed = d["status"].isin(_CLOSED).to_numpy() & ~np.isnan(closed_ns)
    t_ns = np.array([t.value for t in times], dtype="float64")
    only = None if only is None else pd.Index(only)
    cols = np.arange(len(d)) if only is None else np.flatnonzero(isin(d["deal_id"], only).to_numpy())
    open_at = (created[cols][None, :] < t_ns[:, None]) & ~(
        is_closed[cols][None, :] & (closed_ns[cols][None, :] < t_ns[:, None]))
    ti, di = np.nonzero(open_at)
    di = cols[di]
    tz = times[0].tz
    rows = pd.DataFrame({
        "snapshot": pd.DatetimeIndex(pd.to_datetime(t_ns[ti].astype("int64"), utc=True)).tz_convert(tz)
        .as_unit("us"),
        "_row": di,
    })
    rows["deal_id"] = d["deal_id"].to_numpy()[di]
    rows["owner_id"] = pd.Series(d["owner_id"].to_numpy()[di], dtype="str")
    rows["days_old"] = (t_ns[ti] - created[di]) / 86_400e9
    rows["log_age"] = np.log1p(rows["days_old"])
    amount = d[amount_col].to_numpy(dtype="float64")[di]
    rows["amount"] = amount
    rows["log_amount"] = np.where(amount > 0, np.log(np.where(amount > 0, amount, 1.0)), np.nan)
    src = pd.Series(d["source"].to_numpy()[di], dtype="str")
    rows["source"] = src.fillna("unknown").replace("", "unknown").to_numpy()
    rows = rows.sort_values("snapshot", kind="stable").reset_index(drop=True)
    if is_scan(history):  # a large snapshot's history in its file: the rows these deals need
        history = _scanned_history(history, times, only if only is not None else rows["deal_id"].unique())
    elif only is not None and history is not None:  # the sampled deals' stage changes only
        history = history.loc[isin(history["deal_id"], only)]
    if only is not None and activities is not None and not is_scan(activities) \
            and "deal_id" in activities.columns:  # the sampled deals' activities only
        activities = _keep_attrs(activities, activities.loc[isin(activities["deal_id"], only)])
    rows = _with_stage(rows, history)
    rows = _with_owner_history(rows, d, prior_deals)
    rows = _with_activities(rows, activities)
    cols = ["snapshot", "deal_id", "owner_id", *FEATURES, "days_old", "owner_closed", "owner_won",
            "amount"]
    return rows[cols]


def _keep_attrs(whole: pd.DataFrame, part: pd.DataFrame) -> pd.DataFrame:
    part.attrs.update(whole.attrs)  # a large source's activity window travels in attrs
    return part


def _scanned_history(scan, times, deal_ids) -> pd.DataFrame:
    """The history rows :func:`_with_stage` uses, asked of DuckDB: the deals' entries before the
    last snapshot (at one snapshot, each deal's last entry alone, the one merge_asof takes)."""
    from ..pushdown.deal_rows import deal_rows

    return deal_rows(scan, columns=["deal_id", "stage", "entered_at"], time_col="entered_at",
                     before=max(times), deal_ids=deal_ids, last=len(times) == 1)


def _with_stage(rows: pd.DataFrame, history: pd.DataFrame | None) -> pd.DataFrame:
    if history is None or history.empty:
        rows["stage"] = pd.Series(np.nan, index=rows.index, dtype="str")
        return rows
    h = history[["deal_id", "stage", "entered_at"]].dropna(subset=["entered_at"])
    h = h.rename(columns={"entered_at": "snapshot", "stage": "stage"}).sort_values("snapshot", kind="stable")
    h["snapshot"] = h["snapshot"].dt.tz_convert(rows["snapshot"].dt.tz).dt.as_unit("us")
    out = pd.merge_asof(rows, h, on="snapshot", by="deal_id", direction="backward",
                        allow_exact_matches=False)
    return out


def _with_owner_history(rows: pd.DataFrame, d: pd.DataFrame, prior_deals: float) -> pd.DataFrame:
    closed = d.loc[d["status"].isin(_CLOSED) & d["closed_at"].notna(), ["owner_id", "status", "closed_at"]]
    closed = closed.sort_values("closed_at", kind="stable").reset_index(drop=True)
    tz = rows["snapshot"].dt.tz
    when = closed["closed_at"].dt.tz_convert(tz).dt.as_unit("us")
    won = (closed["status"] == "won").to_numpy(dtype="float64")
    # overall closes and wins strictly before each snapshot
    snap = rows["snapshot"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    all_t = when.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    k = np.searchsorted(all_t, snap, side="left")
    cum_won = np.concatenate([[0.0], np.cumsum(won)])
    n_all, w_all = k.astype("float64"), cum_won[k]
    prior = np.where(n_all > 0, (w_all + 1.0) / (n_all + 2.0), 0.5)
    # the owner's closes and wins strictly before each snapshot
    right = pd.DataFrame({"snapshot": when, "owner_id": closed["owner_id"].astype("str"), "_won": won})
    right["owner_closed"] = right.groupby("owner_id", dropna=False).cumcount() + 1.0
    right["owner_won"] = right.groupby("owner_id", dropna=False)["_won"].cumsum()
    right = right.dropna(subset=["owner_id"]).drop(columns="_won")
    rows = pd.merge_asof(rows, right, on="snapshot", by="owner_id", direction="backward",
                         allow_exact_matches=False)
    rows[["owner_closed", "owner_won"]] = rows[["owner_closed", "owner_won"]].fillna(0.0)
    rows.loc[rows["owner_id"].isna(), ["owner_closed", "owner_won"]] = 0.0
    rate = (rows["owner_won"] + prior_deals * prior) / (rows["owner_closed"] + prior_deals)
    rate = rate.clip(1e-3, 1 - 1e-3)
    rows["owner_logit"] = np.log(rate / (1 - rate))
    return rows


def _with_activities(rows: pd.DataFrame, activities: pd.DataFrame | None) -> pd.DataFrame:
    from ..pushdown.info import pushdown_info

    info = pushdown_info(activities)
    before_window = info is not None and info.rows_from is not None and len(rows) \
        and rows["snapshot"].min() < info.rows_from  # a large source loads recent activities only
    if activities is None or len(activities) == 0 or "deal_id" not in activities.columns or before_window:
        rows["log_calls_emails"] = np.nan
        rows["log_meetings_tasks"] = np.nan
        return rows
    if is_scan(activities):
        if rows["snapshot"].nunique() == 1:  # today's open deals: DuckDB counts, nothing else moves
            return _with_counts(rows, activities)
        from ..pushdown.deal_rows import deal_rows

        activities = deal_rows(activities, columns=list(ACTIVITY_COLUMNS), time_col="created_at",
                               before=rows["snapshot"].max(), deal_ids=rows["deal_id"].unique(),
                               values={"type": [k for _, kinds in _TOUCHES for k in kinds]})
    a = activities.loc[activities["deal_id"].notna(), list(ACTIVITY_COLUMNS)]
    a = a.dropna(subset=["created_at"]).sort_values("created_at", kind="stable")
    tz = rows["snapshot"].dt.tz
    for col, kinds in _TOUCHES:
        part = a.loc[a["type"].isin(kinds)].copy()
        part["snapshot"] = part["created_at"].dt.tz_convert(tz).dt.as_unit("us")
        part["_n"] = part.groupby("deal_id").cumcount() + 1.0
        part = part[["snapshot", "deal_id", "_n"]]
        rows = pd.merge_asof(rows, part, on="snapshot", by="deal_id", direction="backward",
                             allow_exact_matches=False)
        rows[col] = _relative(rows, np.log1p(rows.pop("_n").fillna(0.0)))
    return rows


def _relative(rows: pd.DataFrame, logged: pd.Series) -> pd.Series:
    # relative to the other deals open at the same snapshot: a change in how much gets
    # logged (a phone integration going live) shifts every deal alike and cancels out
    return logged - logged.groupby(rows["snapshot"]).transform("mean")


def _with_counts(rows: pd.DataFrame, scan) -> pd.DataFrame:
    """The activity features at one snapshot from DuckDB's counts of each deal's touches before it
    (what the running count merge_asof picks up in :func:`_with_activities`)."""
    from ..pushdown.deal_rows import deal_counts

    counts = deal_counts(scan, time_col="created_at", before=rows["snapshot"].iloc[0],
                         deal_ids=rows["deal_id"].unique(),
                         groups={col: ("type", kinds) for col, kinds in _TOUCHES}).set_index("deal_id")
    for col, _ in _TOUCHES:
        n = rows["deal_id"].map(counts[col]).astype("float64").fillna(0.0)
        rows[col] = _relative(rows, np.log1p(n))
    return rows


def snapshot_frame(deals: pd.DataFrame, times, *, label_at, history=None, activities=None,
                   amount_col: str = AMOUNT_COL, prior_deals: float = 10.0, only=None) -> pd.DataFrame:
    """Training or test rows: :func:`deal_features` at ``times`` plus ``won`` (1/0), keeping only deals won or lost before ``label_at``.

    Deals still open at ``label_at`` have no known outcome and are left out (their
    number is in ``frame.attrs["unlabelled"]``).
    """
    label_at = ensure_instant(label_at, name="label_at")
    times = [t for t in _instants(times) if t < label_at]
    if not times:
        return pd.DataFrame(columns=["snapshot", "deal_id", *FEATURES, "won"])
    f = deal_features(deals, times, history=history, activities=activities, amount_col=amount_col,
                      prior_deals=prior_deals, only=only)
    status = deals.set_index("deal_id")
    closed_before = status["status"].isin(_CLOSED) & (status["closed_at"] < label_at)
    outcome = status["status"].where(closed_before)
    o = f["deal_id"].map(outcome)
    unlabelled = int(o.isna().sum())
    f = f.loc[o.notna()].copy()
    f["won"] = (o.loc[f.index] == "won").astype("int64")
    f.attrs["unlabelled"] = unlabelled
    return f.reset_index(drop=True)


# ----------------------------------------------------------------------------- the model
@dataclass(frozen=True, eq=False)
class WinModel:
    """A fitted win-probability Logit and the design it was built with."""

    result: object = field(repr=False)  # statsmodels LogitResults (cluster-robust by deal)
    columns: tuple  # design matrix columns
    levels: dict  # categorical feature -> (reference, kept levels...)
    numeric: tuple  # numeric features used
    dropped: tuple  # features left out (and why)
    n_rows: int
    n_deals: int
    base_rate: float

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """The design matrix of ``frame`` (rows in order) for this model."""
        cols = [np.ones(len(frame))]
        for feat in self.numeric:
            cols.append(frame[feat].to_numpy(dtype="float64"))
        for feat, (ref, *kept) in self.levels.items():
            values = _levels(frame[feat])
            for lv in kept:
                cols.append((values == lv).astype("float64"))
        return np.column_stack(cols)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Win probability of each row of ``frame`` (NaN where a numeric feature is missing)."""
        x = self.design(frame)
        return expit(x @ np.asarray(self.result.params))

    def to_frame(self) -> pd.DataFrame:
        """Coefficients: term, coef, se (clustered by deal), z, p_value, odds_ratio, low, high (95%)."""
        r = self.result
        ci = np.asarray(r.conf_int())
        out = pd.DataFrame({"term": list(self.columns), "coef": np.asarray(r.params),
                            "se": np.asarray(r.bse), "z": np.asarray(r.tvalues),
                            "p_value": np.asarray(r.pvalues)})
        out["odds_ratio"] = np.exp(out["coef"])
        out["low"], out["high"] = np.exp(ci[:, 0]), np.exp(ci[:, 1])
        return out

    def summary(self) -> str:
        return (f"Logit on {self.n_rows:,} snapshot rows of {self.n_deals:,} deals, "
                f"{len(self.columns) - 1} terms; base win rate {self.base_rate:.1%}")


def fit_win_model(train: pd.DataFrame, *, features=FEATURES, min_level_rows: int = 30,
                  prior_deals_per_level: int = 1) -> WinModel:
    """Fit the win-probability Logit (statsmodels) on snapshot rows with a ``won`` column.

    Categorical features become dummies (the most frequent level is the reference;
    levels with fewer than ``min_level_rows`` rows are pooled as "other"). Features that
    are entirely missing or constant in ``train`` are dropped and listed in ``dropped``;
    rows with a missing numeric feature (e.g. no amount) are left out. Standard errors are
    clustered by deal (a deal appears in several snapshots).

    A weak prior keeps effects finite: every category level gets
    ``prior_deals_per_level`` won and as many lost pseudo-deals (numeric features at their
    training means). Without it, a level whose training deals all ended the same way
    (every deal seen in Invoicing was won) would get an infinite coefficient and a
    meaningless standard error; with thousands of real rows the pseudo-deals change
    nothing else. ``n_rows``, ``n_deals`` and ``base_rate`` count real rows only.
    """
    import statsmodels.api as sm

    if "won" not in train.columns or train.empty:
        raise CrmDataError("no closed deals to learn win probabilities from (no snapshot rows with "
                           "an outcome); the export needs won and lost deals with close dates")
    dropped, numeric, levels = [], [], {}
    for feat in features:
        if feat not in train.columns:
            dropped.append(f"{feat} (not available)")
            continue
        if feat in CATEGORICAL:
            values = _levels(train[feat])
            if values.isna().all():
                dropped.append(f"{feat} (not available)")
                continue
            counts = values.value_counts()
            kept = [lv for lv in counts.index if counts[lv] >= min_level_rows]
            if (len(kept) < len(counts) and counts[~counts.index.isin(kept)].sum() >= min_level_rows
                    and "other" not in kept):  # a literal "other" level already takes the rare ones
                kept.append("other")
            if len(kept) < 2:
                dropped.append(f"{feat} (a single value)")
                continue
            levels[feat] = (kept[0], *kept[1:])
        else:
            col = train[feat].astype("float64")
            if col.isna().all():
                dropped.append(f"{feat} (not available)")
            elif col.dropna().nunique() < 2:
                dropped.append(f"{feat} (no variation)")
            else:
                numeric.append(feat)
    ok = train[numeric].notna().all(axis=1) if numeric else pd.Series(True, index=train.index)
    rows = train.loc[ok]
    y = rows["won"].to_numpy(dtype="float64")
    if y.min() == y.max():
        raise CrmDataError("every closed deal in the training window has the same outcome; a win "
                           "probability cannot be learned")
    model = WinModel(None, (), levels, tuple(numeric), tuple(dropped), 0, 0, 0.0)
    x = model.design(_pooled(rows, levels))
    columns = ["const", *numeric] + [f"{f}[{lv}]" for f, (ref, *kept) in levels.items() for lv in kept]
    groups = pd.factorize(rows["deal_id"])[0]
    x_fit, y_fit, g_fit = x, y, groups
    k = int(prior_deals_per_level)
    if k > 0 and levels:
        pseudo = []
        for feat, (ref, *kept) in levels.items():
            for lv in (ref, *kept):
                row = {f: rows[f].mean() for f in numeric}
                row.update({f: lvs[0] for f, lvs in levels.items()})
                row[feat] = lv
                pseudo.append(row)
        px = model.design(pd.DataFrame(pseudo))
        px = np.repeat(px, 2 * k, axis=0)
        py = np.tile(np.r_[np.ones(k), np.zeros(k)], len(pseudo))
        x_fit = np.vstack([x, px])
        y_fit = np.concatenate([y, py])
        g_fit = np.concatenate([groups, groups.max() + 1 + np.arange(len(py))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.Logit(y_fit, x_fit).fit(disp=0, maxiter=100, cov_type="cluster",
                                         cov_kwds={"groups": g_fit})
    return WinModel(res, tuple(columns), levels, tuple(numeric), tuple(dropped), int(len(rows)),
                    int(rows["deal_id"].nunique()), float(y.mean()))


def _levels(values: pd.Series) -> pd.Series:
    return values.astype("str")


def _pooled(frame: pd.DataFrame, levels: dict) -> pd.DataFrame:
    """``frame`` with categorical values outside a model's kept levels replaced by "other"."""
    out = frame.copy()
    for feat, (ref, *kept) in levels.items():
        values = _levels(out[feat])
        known = set([ref, *kept])
        out[feat] = values.where(values.isin(known), "other" if "other" in known else ref)
    return out


# ----------------------------------------------------------------------------- evaluation
def auc(y, p) -> float:
    """Area under the ROC curve: the chance a random won row scores above a random lost one (ties count half)."""
    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    n1, n0 = y.sum(), (1 - y).sum()
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = sps.rankdata(p)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def calibration_table(y, p, groups=None, *, bins: int = 10, level: float = 0.95) -> pd.DataFrame:
    """Predicted vs observed win rate in equal-sized bins of the predicted probability (deciles by default).

    Columns: ``bin`` (1 = lowest probabilities), ``rows``, ``deals`` (distinct ``groups``),
    ``predicted`` (mean probability), ``observed`` (share won), ``difference`` (observed -
    predicted), ``se`` (of the observed share, clustered by ``groups`` when given),
    ``low``/``high`` (normal interval of the observed share).
    """
    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    g = np.arange(len(y)) if groups is None else pd.factorize(np.asarray(groups))[0]
    order = np.argsort(p, kind="stable")
    b = np.empty(len(p), dtype=int)
    b[order] = np.arange(len(p)) * bins // max(len(p), 1)
    z = sps.norm.ppf(0.5 + level / 2)
    rows = []
    for k in range(bins):
        sel = b == k
        n = int(sel.sum())
        if n == 0:
            continue
        obs = y[sel].mean()
        dev = pd.Series(y[sel] - obs).groupby(g[sel]).sum().to_numpy()
        c = len(dev)
        se = math.sqrt((dev ** 2).sum() * (c / (c - 1) if c > 1 else 1.0)) / n
        rows.append(dict(bin=k + 1, rows=n, deals=c, predicted=float(p[sel].mean()), observed=float(obs),
                         difference=float(obs - p[sel].mean()), se=se, low=max(obs - z * se, 0.0),
                         high=min(obs + z * se, 1.0)))
    return pd.DataFrame(rows)


def calibration_slope(y, p, groups=None) -> dict:
    """Calibration slope and calibration-in-the-large of probabilities ``p`` against outcomes ``y`` (Cox 1958).

    The slope is the coefficient b of the logistic regression logit P(y) = a + b logit(p):
    1 when the probabilities are as spread as the outcomes support, below 1 when they are
    too extreme (the usual sign of an overfitted model), above 1 when too timid. The
    calibration-in-the-large ``offset`` is c in logit P(y) = c + logit(p) (slope fixed at
    1): 0 when the probabilities are right on average, positive when they are too low.
    Standard errors are clustered by ``groups`` (rows of the same deal share one outcome).

    Returns a dict: ``slope``, ``slope_se``, ``offset``, ``offset_se`` (NaN when the
    outcomes are all alike or there are fewer than two distinct probabilities).
    """
    import statsmodels.api as sm

    y = np.asarray(y, dtype="float64")
    lp = np.log(np.clip(np.asarray(p, dtype="float64"), 1e-9, 1 - 1e-9))
    lp = lp - np.log(np.clip(1 - np.asarray(p, dtype="float64"), 1e-9, 1 - 1e-9))
    out = dict(slope=math.nan, slope_se=math.nan, offset=math.nan, offset_se=math.nan)
    if len(y) < 3 or y.min() == y.max() or np.unique(lp).size < 2:
        return out
    g = np.arange(len(y)) if groups is None else pd.factorize(np.asarray(groups))[0]
    kw = dict(cov_type="cluster", cov_kwds={"groups": g})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.GLM(y, np.column_stack([np.ones(len(y)), lp]), family=sm.families.Binomial()).fit(**kw)
        large = sm.GLM(y, np.ones((len(y), 1)), offset=lp, family=sm.families.Binomial()).fit(**kw)
    out.update(slope=float(fit.params[1]), slope_se=float(fit.bse[1]), offset=float(large.params[0]),
               offset_se=float(large.bse[0]))
    return out


@dataclass(frozen=True, eq=False)
class Evaluation:
    """How the model did on held-out snapshots: AUC, Brier score, calibration (by decile, slope and in the large)."""

    auc: float
    brier: float
    brier_base: float  # predicting the training base rate for every row
    brier_stage: float  # the CRM's stage probabilities (NaN without a stages table)
    auc_stage: float
    calibration: pd.DataFrame = field(repr=False)
    n_rows: int
    n_deals: int
    won_share: float
    slope: float = math.nan  # calibration slope (1: right spread), see calibration_slope
    slope_se: float = math.nan
    offset: float = math.nan  # calibration in the large on the logit scale (0: right on average)
    offset_se: float = math.nan

    @property
    def brier_skill(self) -> float:
        """1 - Brier / Brier of the base rate: the share of the base rate's error removed."""
        return 1 - self.brier / self.brier_base if self.brier_base else math.nan

    def to_frame(self) -> pd.DataFrame:
        """One row per measure: measure, model, base_rate, stage_probability."""
        return pd.DataFrame({
            "measure": ["AUC", "Brier score"],
            "model": [self.auc, self.brier],
            "base_rate": [0.5, self.brier_base],
            "stage_probability": [self.auc_stage, self.brier_stage],
        })

    def summary(self) -> str:
        return (f"AUC {self.auc:.3f}, Brier {self.brier:.3f} (base rate {self.brier_base:.3f}) on "
                f"{self.n_rows:,} held-out rows of {self.n_deals:,} deals")


def evaluate(model: WinModel, test: pd.DataFrame, *, stage_probability: pd.Series | None = None,
             bins: int = 10) -> Evaluation:
    """Score ``model`` on held-out snapshot rows: AUC, Brier score (model, base rate, stage probabilities) and calibration by decile."""
    p = model.predict(_pooled(test, model.levels))
    ok = ~np.isnan(p)
    y = test["won"].to_numpy(dtype="float64")[ok]
    p = p[ok]
    deals = test["deal_id"].to_numpy()[ok]
    brier = float(np.mean((p - y) ** 2)) if len(y) else math.nan
    brier_base = float(np.mean((model.base_rate - y) ** 2)) if len(y) else math.nan
    b_stage = a_stage = math.nan
    if stage_probability is not None and "stage" in test.columns:
        sp = test["stage"].map(stage_probability).to_numpy(dtype="float64")[ok]
        good = ~np.isnan(sp)
        if good.any():
            b_stage = float(np.mean((sp[good] - y[good]) ** 2))
            a_stage = auc(y[good], sp[good])
    cal = calibration_table(y, p, deals, bins=bins)
    slope = calibration_slope(y, p, deals)
    return Evaluation(auc(y, p), brier, brier_base, b_stage, a_stage, cal, int(len(y)),
                      int(pd.Series(deals).nunique()), float(y.mean()) if len(y) else math.nan, **slope)


# ----------------------------------------------------------------------------- the whole procedure
@dataclass(frozen=True, eq=False)
class WinProbability:
    """The held-out evaluation and the model refitted on all data, ready to score open deals."""

    evaluation: Evaluation
    tested: WinModel  # fitted before the split, evaluated after it
    model: WinModel  # refitted on every snapshot up to as_of - label_wait_days
    split: pd.Timestamp
    as_of: pd.Timestamp
    label_wait_days: int
    every_days: int
    train_rows: int
    test_rows: int
    seconds: float
    deals_total: int = 0  # deals in the data
    deals_sampled: int | None = None  # the random sample of deals the rows come from (None: all)

    def summary(self) -> str:
        text = f"{self.model.summary()}; held out from {self.split.date()}: {self.evaluation.summary()}"
        if self.deals_sampled is not None:
            text += f"; rows from a random sample of {self.deals_sampled:,} of {self.deals_total:,} deals"
        return text


def win_probability_model(deals: pd.DataFrame, as_of, *, history=None, activities=None,
                          stages: pd.DataFrame | None = None, holdout_days: int = 365,
                          label_wait_days: int = 120, every_days: int = 7,
                          amount_col: str = AMOUNT_COL, prior_deals: float = 10.0,
                          features=FEATURES, bins: int = 10, max_deals: int | None = MAX_DEALS,
                          seed: int = 0) -> WinProbability:
    """Fit the win-probability model with a time split, evaluate it on the held-out period, and refit it on all data.

    Parameters
    ----------
    holdout_days : the last ``holdout_days`` before as_of are held out (split = as_of -
        holdout_days).
    label_wait_days : a snapshot is used only when its deals had this many days to close
        (most deals close well within it; deals still open at the label time are left
        out, so the wait keeps that selection small).
    every_days : days between snapshots.
    stages : the ``stages`` table; its probabilities are scored on the same held-out rows
        for comparison.
    max_deals, seed : with more deals than ``max_deals``, the training and test rows come
        from a random sample of that many deals (seeded); the owners' win rates still count
        every deal. Tens of thousands of deals pin the coefficients down to a few hundredths
        already (see :class:`WinProbability`), and the rows of a million deals at weekly
        snapshots would not fit in memory. None: every deal.
    """
    from .forecast import one_blas_thread

    with one_blas_thread():
        return _win_probability_model(deals, as_of, history=history, activities=activities, stages=stages,
                                      holdout_days=holdout_days, label_wait_days=label_wait_days,
                                      every_days=every_days, amount_col=amount_col,
                                      prior_deals=prior_deals, features=features, bins=bins,
                                      max_deals=max_deals, seed=seed)


def _win_probability_model(deals, as_of, *, history, activities, stages, holdout_days, label_wait_days,
                           every_days, amount_col, prior_deals, features, bins, max_deals,
                           seed) -> WinProbability:
    t0 = time.perf_counter()
    as_of = ensure_instant(as_of)
    split = as_of - pd.Timedelta(days=int(holdout_days))
    wait = pd.Timedelta(days=int(label_wait_days))
    first = deals["created_at"].min()
    if pd.isna(first):
        raise CrmDataError("deals has no creation dates")
    times = _grid(first + pd.Timedelta(days=int(every_days)), as_of - wait, every_days)
    if not times:
        raise CrmConfigError(f"the history is too short for a win-probability model with a "
                             f"{label_wait_days}-day wait for outcomes")
    train_t = [t for t in times if t <= split - wait]
    test_t = [t for t in times if t >= split]
    only = None
    if max_deals is not None and deals["deal_id"].nunique() > int(max_deals):
        ids = pd.Series(deals["deal_id"].dropna().unique())
        only = ids.sample(int(max_deals), random_state=np.random.default_rng(seed)).to_numpy()
    kw = dict(history=history, activities=activities, amount_col=amount_col, prior_deals=prior_deals,
              only=only)
    train = snapshot_frame(deals, train_t, label_at=split, **kw) if train_t else pd.DataFrame()
    test = snapshot_frame(deals, test_t, label_at=as_of, **kw) if test_t else pd.DataFrame()
    if train.empty or test.empty:
        raise CrmConfigError(
            f"not enough history for a time split: the model needs snapshots before "
            f"{(split - wait).date()} to learn from and after {split.date()} to test on; lower "
            f"holdout_days or label_wait_days")
    tested = fit_win_model(train, features=features)
    stage_p = _stage_probability(stages)
    ev = evaluate(tested, test, stage_probability=stage_p, bins=bins)
    full = snapshot_frame(deals, times, label_at=as_of, **kw)
    model = fit_win_model(full, features=features)
    return WinProbability(ev, tested, model, split, as_of, int(label_wait_days), int(every_days),
                          int(len(train)), int(len(test)), time.perf_counter() - t0,
                          int(deals["deal_id"].nunique()), None if only is None else int(len(only)))


def score_open_deals(deals: pd.DataFrame, model: WinModel, as_of, *, history=None, activities=None,
                     amount_col: str = AMOUNT_COL, prior_deals: float = 10.0) -> pd.DataFrame:
    """Every deal open at as_of with its features and ``p_win`` from ``model`` (NaN when a feature such as the amount is missing)."""
    as_of = ensure_instant(as_of)
    f = deal_features(deals, [as_of], history=history, activities=activities, amount_col=amount_col,
                      prior_deals=prior_deals)
    f["p_win"] = model.predict(_pooled(f, model.levels))
    extra = [c for c in ("name", "stage", "expected_close_at", "pipeline") if c in deals.columns]
    info = deals.set_index("deal_id")[[c for c in extra if c != "stage"]]
    f = f.join(info, on="deal_id")
    f[amount_col] = f["amount"]
    return f.drop(columns=["snapshot"]).sort_values("p_win", ascending=False, kind="stable") \
        .reset_index(drop=True)


def _stage_probability(stages: pd.DataFrame | None) -> pd.Series | None:
    if stages is None or "probability" not in stages.columns:
        return None
    s = stages.dropna(subset=["probability"]).drop_duplicates("stage")
    return s.set_index("stage")["probability"].astype("float64")


# ----------------------------------------------------------------------------- Monte Carlo
CHUNK_CELLS = 4_000_000  # draws x deals simulated at once (32 MB of float64 per array)


@dataclass(frozen=True, eq=False)
class PipelineSimulation:
    """Simulated won revenue of the open deals: ``n_draws`` x deals outcomes, seeded.

    The outcomes are drawn in blocks of deals (each block from its own seeded stream, so
    any sum over deals is the same however it is asked for) and summed as they are drawn:
    the memory stays a few blocks whatever the number of open deals, where the whole
    draws x deals matrix of a million-deal pipeline would need tens of gigabytes.
    """

    deals: pd.DataFrame = field(repr=False)  # deal_id, amount, p_win, expected_close_at, period, ...
    n_draws: int
    seed: int
    parameter_uncertainty: bool
    levels: tuple = (0.8, 0.95)
    _value: np.ndarray = field(repr=False, default=None)  # amount, 0 where it or p_win is missing
    _p: np.ndarray = field(repr=False, default=None)  # p_win per deal (no model)
    _x: np.ndarray | None = field(repr=False, default=None)  # model design per deal
    _betas: np.ndarray | None = field(repr=False, default=None)  # (n_draws, k) drawn coefficients
    _memo: dict = field(repr=False, default_factory=dict)  # a mask's digest -> its totals per draw

    def _blocks(self):
        """(deal slice, won revenue of those deals per draw) block by block, in deal order."""
        n = len(self.deals)
        size = max(1, CHUNK_CELLS // max(self.n_draws, 1))
        for i, lo in enumerate(range(0, n, size)):
            sl = slice(lo, min(lo + size, n))
            rng = np.random.default_rng([self.seed, i])
            if self._betas is None:
                won = rng.random((self.n_draws, sl.stop - sl.start)) < self._p[sl][None, :]
                yield sl, won * self._value[sl]
                continue
            # won when u < expit(eta) = 1 / (1 + exp(-eta)), that is when u (1 + exp(-eta)) < 1:
            # the same draws decide the same outcomes, computed in place in four passes over
            # the block instead of scipy's expit and two new arrays (a third faster)
            e = self._betas @ self._x[sl].T
            u = rng.random((self.n_draws, sl.stop - sl.start))
            with np.errstate(over="ignore", invalid="ignore"):  # exp(-eta) = inf: lost (0 * inf: nan, lost)
                np.negative(e, out=e)
                np.exp(e, out=e)
                e += 1.0
                u *= e
                np.less(u, 1.0, out=u)  # 1.0 where won, 0.0 where lost
            u *= self._value[sl]
            yield sl, u

    def totals(self, masks) -> np.ndarray:
        """Simulated won revenue per draw of each group of deals: (n_draws, groups) for a
        (deals, groups) boolean ``masks`` (or a single mask: (n_draws,)).

        Drawing is the cost (draws x deals outcomes), so every group asked for at once is
        summed in one pass over the draws, and the totals of each group are remembered: a
        group asked for again (the deals due by the quarter's end after :meth:`by_period`
        summed them) costs no second pass.
        """
        import hashlib

        m = np.asarray(masks, dtype=bool)
        single = m.ndim == 1
        m = m[:, None] if single else m
        keys = [hashlib.blake2b(np.ascontiguousarray(m[:, j]).tobytes(), digest_size=16).digest()
                for j in range(m.shape[1])]
        todo = [j for j, k in enumerate(keys) if k not in self._memo]
        if todo:
            part = m[:, todo]
            out = np.zeros((self.n_draws, len(todo)))
            for sl, revenue in self._blocks():
                out += revenue @ part[sl]
            for i, j in enumerate(todo):
                self._memo[keys[j]] = out[:, i]
        found = np.column_stack([self._memo[k] for k in keys])
        return found[:, 0] if single else found

    @property
    def revenue(self) -> np.ndarray:
        """The whole (n_draws, deals) matrix of won revenue (for small pipelines and tests)."""
        return np.hstack([r for _, r in self._blocks()]) if len(self.deals) else np.zeros((self.n_draws, 0))

    def _interval(self, mask, totals: np.ndarray | None = None) -> dict:
        mask = np.asarray(mask, dtype=bool)
        totals = self.totals(mask) if totals is None else totals
        amount = self.deals["amount"].to_numpy(dtype="float64")
        p = self.deals["p_win"].to_numpy(dtype="float64")
        out = {"deals": int(mask.sum()), "value": float(np.nansum(amount[mask])),
               "expected": float(np.nansum(amount[mask] * p[mask])),
               "simulated_mean": float(totals.mean())}
        for lv in self.levels:
            lo, hi = np.quantile(totals, [(1 - lv) / 2, (1 + lv) / 2])
            out[f"lo_{lv * 100:.0f}"], out[f"hi_{lv * 100:.0f}"] = float(lo), float(hi)
        return out

    def by_period(self) -> pd.DataFrame:
        """Expected revenue per expected close period with Monte Carlo intervals (periods in order, "no date" last, then the total)."""
        d = self.deals
        keys = d[["period", "period_start"]].drop_duplicates().sort_values("period_start", na_position="last")
        masks = [(d["period"] == label).to_numpy() for label in keys["period"]] + [np.ones(len(d), bool)]
        # in the same pass: the deals due before each period's start, what until() asks at a
        # boundary (the end of the quarter, say)
        due = d["expected_close_at"]
        ahead = [(due.notna() & (due < start)).to_numpy() for start in keys["period_start"].dropna()]
        totals = self.totals(np.column_stack(masks + ahead))  # one pass over the draws for every group
        rows = [{"period": label, **self._interval(mask, totals[:, j]),
                 "overdue": int((d["overdue"] & (d["period"] == label)).sum())}
                for j, (label, mask) in enumerate(zip(keys["period"], masks, strict=False))]
        rows.append({"period": "all open deals", **self._interval(masks[-1], totals[:, len(masks) - 1]),
                     "overdue": int(d["overdue"].sum())})
        return pd.DataFrame(rows)

    def until(self, end: pd.Timestamp) -> dict:
        """Expected revenue and intervals of the deals expected to close before ``end`` (overdue ones included)."""
        d = self.deals
        mask = (d["expected_close_at"].notna() & (d["expected_close_at"] < end)).to_numpy()
        return self._interval(mask)

    def summary(self) -> str:
        tot = self._interval(np.ones(len(self.deals), bool))
        return (f"{tot['deals']} open deals: expected {tot['expected']:,.0f} (80% "
                f"{tot['lo_80']:,.0f} to {tot['hi_80']:,.0f}) from {self.n_draws:,} draws")


def simulate_pipeline(scored: pd.DataFrame, as_of, *, freq: str = "month", n_draws: int = 10_000,
                      seed: int = 0, model: WinModel | None = None, levels=(0.8, 0.95),
                      amount_col: str = AMOUNT_COL) -> PipelineSimulation:
    """Monte Carlo of the open pipeline: each deal is won with its probability in each of ``n_draws`` draws.

    Deals go to the period (week or month) of their expected close date; one already
    past due goes to the current period (``overdue``), one without a date to "no date".
    With ``model`` given, each draw also uses its own coefficients drawn from their
    (deal-clustered) sampling distribution, so the interval carries the model's
    uncertainty as well as the luck of individual deals. Vectorised in blocks of deals
    (see :class:`PipelineSimulation`); ``seed`` makes a re-run give the same numbers.
    Deals without an amount or a probability add nothing and are counted in ``deals`` only.
    """
    from ..metrics.forecast import FREQS
    from ..periods import period_containing

    if freq not in FREQS:
        raise CrmConfigError(f"freq must be one of {', '.join(FREQS)}, not {freq!r}")
    if int(n_draws) < 1:
        raise CrmConfigError("n_draws must be at least 1")
    as_of = ensure_instant(as_of)
    rng = np.random.default_rng(seed)
    d = scored.reset_index(drop=True)
    amount = d[amount_col].to_numpy(dtype="float64") if amount_col in d.columns else d["amount"].to_numpy(
        dtype="float64")
    p = d["p_win"].to_numpy(dtype="float64")
    n = len(d)
    x = betas = None
    if model is not None and n:
        x = np.asarray(model.design(_pooled(d, model.levels)), dtype="float64")
        beta = np.asarray(model.result.params)
        cov = np.asarray(model.result.cov_params())
        betas = rng.multivariate_normal(beta, cov, size=int(n_draws), method="cholesky") \
            if np.all(np.isfinite(cov)) else np.tile(beta, (int(n_draws), 1))
    value = np.where(np.isnan(amount) | np.isnan(p), 0.0, amount)
    now = period_containing(as_of - pd.Timedelta(microseconds=1), freq)
    exp = d["expected_close_at"] if "expected_close_at" in d.columns else pd.Series(pd.NaT, index=d.index)
    overdue = exp.notna() & (exp < as_of)  # still open, so it can only close from now on
    labels, starts = _close_periods(exp, overdue, now, freq)
    frame = pd.DataFrame({"deal_id": d["deal_id"].to_numpy(), "amount": amount, "p_win": p,
                          "expected_close_at": exp.to_numpy(), "period": labels,
                          "period_start": pd.Series(starts, dtype=f"datetime64[us, {as_of.tz}]"),
                          "overdue": overdue.to_numpy()})
    return PipelineSimulation(frame, int(n_draws), int(seed), model is not None, tuple(levels),
                              _value=value, _p=np.nan_to_num(p), _x=x, _betas=betas)


def _close_periods(exp: pd.Series, overdue: pd.Series, now, freq: str) -> tuple[list, list]:
    """Label and start of the period each deal is expected to close in (one per distinct date)."""
    from ..periods import period_containing

    seen: dict = {}
    labels, starts = [], []
    for when, late in zip(exp, overdue, strict=True):
        if pd.isna(when):
            labels.append("no date")
            starts.append(pd.NaT)
            continue
        if late:
            per = now
        else:
            per = seen.get(when)
            if per is None:
                per = seen[when] = period_containing(when, freq)
        labels.append(per.label)
        starts.append(per.start)
    return labels, starts


# ----------------------------------------------------------------------------- helpers
def _instants(at) -> list[pd.Timestamp]:
    if isinstance(at, (pd.Timestamp,)) or not hasattr(at, "__iter__"):
        return [ensure_instant(at, name="at")]
    return [ensure_instant(t, name="at") for t in at]


def _ns(values: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch as floats (NaN for missing)."""
    idx = pd.DatetimeIndex(values).as_unit("ns")
    out = idx.asi8.astype("float64")
    out[idx.isna()] = np.nan
    return out


def _grid(first: pd.Timestamp, last: pd.Timestamp, every_days: int) -> list[pd.Timestamp]:
    """Snapshot times: local midnights every ``every_days`` days counted back from ``last``."""
    if every_days < 1:
        raise CrmConfigError("every_days must be at least 1")
    out = []
    t = last
    while t > first:
        out.append(t)
        t = t - pd.Timedelta(days=int(every_days))
    return out[::-1]
