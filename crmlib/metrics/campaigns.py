"""Campaigns and marketing ROI (report 12): which campaigns and channels pay back.

Conventions shared by every function here:

* ``as_of`` is the instant "now"; a lead counts if created before it, a deal is won if
  it closed won before it (:func:`crmlib.metrics.pipeline.deal_status_at`).
* A lead has one ``campaign_id``: **first touch** gives a lead's deals to that
  campaign. **Last touch** (:func:`campaign_attribution`) gives a won deal to the most
  recent campaign lead of the deal's account created before the deal.
* Won revenue is the deals' ``amount_col`` (default ``amount_rep``, the amount in the
  reporting currency from :func:`crmlib.money.to_reporting`); campaign ``spend`` is in
  the reporting currency (the schema's definition).
* **ROI = (won revenue - spend) / spend**: revenue-based, not margin-based (it does not
  subtract the cost of what was sold), so it overstates the profit of a campaign.
* Rates (CTR, open rate, bounce rate) are fractions with their counts and 95% Wilson
  bounds (``*_low``, ``*_high``); a channel without sends has no bounce rate (NaN),
  never 0%.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CrmDataError
from ..lookup import isin
from ..periods import ensure_instant
from ..stats.intervals import wilson, wilson_frame
from .catalogue import metric
from .pipeline import deal_status_at

__all__ = [
    "MarketingRoi", "CrmRoi", "campaign_performance", "channel_performance", "negative_roi_campaigns",
    "high_bounce_channels", "marketing_roi", "mailing_list_growth", "campaign_attribution",
    "crm_roi", "crm_roi_sensitivity", "CRM_ROI_COST_LINES", "CRM_ROI_GAIN_LINES", "LEAD_COLUMNS",
    "CONTACT_COLUMNS",
]

LEAD_COLUMNS = ("lead_id", "created_at", "campaign_id", "deal_id", "email")  # what report 12 reads of leads
CONTACT_COLUMNS = ("email", "created_at", "account_id")  # ... and of contacts

AMOUNT_COL = "amount_rep"
_REACH = ("spend", "impressions", "clicks", "sends", "opens", "bounces")
_DAY = pd.Timedelta(days=1)


def _require(frame: pd.DataFrame, cols, table: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise CrmDataError(f"{table} lacks column(s) {', '.join(missing)} needed for the campaign report",
                           table=table, column=missing[0])


def _campaign_leads(leads: pd.DataFrame, as_of) -> pd.DataFrame:
    _require(leads, ("lead_id", "created_at", "campaign_id"), "leads")
    keep = (leads["created_at"] < as_of) & leads["campaign_id"].notna() & (leads["campaign_id"] != "")
    return leads.loc[keep]


def _won_deals(deals: pd.DataFrame, as_of, amount_col: str) -> pd.DataFrame:
    _require(deals, ("deal_id", amount_col), "deals")
    d = deal_status_at(deals, as_of)
    return d.loc[d["status_at"] == "won"]


def _lead_deals(camp_leads: pd.DataFrame, deals: pd.DataFrame, as_of, amount_col: str) -> pd.DataFrame:
    """One row per (campaign, deal) reached from the campaign's leads, with status_at and amount."""
    if "deal_id" not in camp_leads.columns:
        return pd.DataFrame(columns=["campaign_id", "deal_id", "status_at", amount_col])
    link = camp_leads.loc[camp_leads["deal_id"].notna() & (camp_leads["deal_id"] != ""),
                          ["campaign_id", "deal_id"]].drop_duplicates()
    d = deal_status_at(deals, as_of)[["deal_id", "status_at", amount_col]]
    return link.merge(d, on="deal_id", how="inner")


# ----------------------------------------------------------------------------- per campaign
@metric(report="12", unit="table")
def campaign_performance(campaigns: pd.DataFrame, leads: pd.DataFrame | None = None,
                         deals: pd.DataFrame | None = None, *, as_of: pd.Timestamp,
                         amount_col: str = AMOUNT_COL) -> pd.DataFrame:
    """Per campaign: spend, reach (impressions, clicks, CTR, sends, opens, bounce rate), leads, cost per lead, deals, won deals, won revenue (first touch), cost per acquisition and ROI = (won revenue - spend) / spend.

    Parameters
    ----------
    campaigns : the canonical ``campaigns`` table (campaigns started at or after
        ``as_of`` are left out).
    leads : the ``leads`` table (without it lead, deal and revenue columns are NaN).
    deals : the ``deals`` table with ``amount_col`` (without it deal columns are NaN).
    as_of : the instant "now".

    Returns
    -------
    One row per campaign: campaign_id, name, channel, spend, impressions, clicks,
    ctr (clicks / impressions) with ctr_low/ctr_high, sends, opens, open_rate
    (opens / (sends - bounces)), bounces, bounce_rate (bounces / sends) with
    bounce_rate_low/high, leads, cost_per_lead, deals, won_deals, won_revenue,
    cost_per_acquisition (spend / won deals), roi. Ratios whose denominator is 0 or
    missing are NaN.
    """
    as_of = ensure_instant(as_of)
    _require(campaigns, ("campaign_id",), "campaigns")
    c = campaigns.copy()
    if "started_at" in c.columns:
        c = c.loc[c["started_at"].isna() | (c["started_at"] < as_of)]
    for col in ("name", "channel"):
        if col not in c.columns:
            c[col] = pd.Series(pd.NA, index=c.index, dtype="str")
    for col in _REACH:
        c[col] = c[col].astype("float64") if col in c.columns else np.nan
    out = c[["campaign_id", "name", "channel", *_REACH]].reset_index(drop=True)
    out["leads"] = np.nan
    out["deals"] = np.nan
    out["won_deals"] = np.nan
    out["won_revenue"] = np.nan
    if leads is not None:
        cl = _campaign_leads(leads, as_of)
        out["leads"] = out["campaign_id"].map(cl.groupby("campaign_id").size()).fillna(0).astype("int64")
        if deals is not None:
            ld = _lead_deals(cl, deals, as_of, amount_col)
            won = ld.loc[ld["status_at"] == "won"]
            out["deals"] = out["campaign_id"].map(ld.groupby("campaign_id").size()).fillna(0).astype("int64")
            out["won_deals"] = out["campaign_id"].map(won.groupby("campaign_id").size()).fillna(0).astype("int64")
            out["won_revenue"] = out["campaign_id"].map(won.groupby("campaign_id")[amount_col].sum(min_count=1))
            out.loc[out["won_deals"] == 0, "won_revenue"] = 0.0
    return _ratios(out)


def _div(a: pd.Series, b: pd.Series) -> pd.Series:
    a, b = a.astype("float64"), b.astype("float64")
    return a / b.where(b > 0)


def _rate(out: pd.DataFrame, num: str, den: pd.Series, name: str) -> pd.DataFrame:
    ok = out[num].notna() & den.notna() & (den > 0)
    tmp = pd.DataFrame({"s": out[num].where(ok, 0).round().astype("int64"),
                        "n": den.where(ok, 0).round().astype("int64")})
    w = wilson_frame(tmp, "s", "n", name=name)
    for col in (name, f"{name}_low", f"{name}_high"):
        out[col] = w[col].where(ok)
    return out


def _ratios(out: pd.DataFrame) -> pd.DataFrame:
    out = _rate(out, "clicks", out["impressions"], "ctr")
    out = _rate(out, "opens", out["sends"] - out["bounces"].fillna(0), "open_rate")
    out = _rate(out, "bounces", out["sends"], "bounce_rate")
    out["cost_per_lead"] = _div(out["spend"], out["leads"])
    out["cost_per_acquisition"] = _div(out["spend"], out["won_deals"])
    out["roi"] = _div(out["won_revenue"] - out["spend"], out["spend"])
    cols = ["spend", "impressions", "clicks", "ctr", "ctr_low", "ctr_high", "sends", "opens", "open_rate",
            "bounces", "bounce_rate", "bounce_rate_low", "bounce_rate_high", "leads", "cost_per_lead",
            "deals", "won_deals", "won_revenue", "cost_per_acquisition", "roi"]
    keys = [k for k in ("campaign_id", "name", "channel", "campaigns") if k in out.columns]
    return out[keys + cols]


@metric(report="12", unit="table")
def channel_performance(performance: pd.DataFrame) -> pd.DataFrame:
    """Per channel: the campaign figures of :func:`campaign_performance` summed over the channel's campaigns, with CTR, open and bounce rates, cost per lead, cost per acquisition and ROI recomputed from the sums.

    A sum over campaigns that all lack a figure (no sends in a paid-ads channel) stays
    NaN, so its rates are NaN, not 0%. Campaigns without a channel form their own
    group (channel missing). Sorted by spend, largest first.
    """
    _require(performance, ("channel", *_REACH, "leads", "deals", "won_deals", "won_revenue"), "performance")
    sums = ["spend", *_REACH[1:], "leads", "deals", "won_deals", "won_revenue"]
    g = performance.groupby("channel", dropna=False, sort=False)
    out = g[sums].sum(min_count=1)
    out.insert(0, "campaigns", g.size())
    out = out.reset_index()
    return _ratios(out).sort_values("spend", ascending=False, na_position="last").reset_index(drop=True)


# ----------------------------------------------------------------------------- alerts
@metric(report="12", unit="flag")
def negative_roi_campaigns(performance: pd.DataFrame, *, threshold: float = 0.0, min_leads: int = 20,
                           min_spend_share: float = 0.02) -> pd.DataFrame:
    """Campaigns that lose money on the evidence: ROI below ``threshold`` while the campaign is not tiny (at least ``min_leads`` leads and at least ``min_spend_share`` of all campaigns' spend).

    The size conditions keep a campaign with a handful of leads or a token budget,
    whose ROI says little, out of the alert. Returns the matching rows of
    ``performance`` (sorted by ROI, worst first) with a ``loss`` column
    (spend - won revenue).
    """
    _require(performance, ("spend", "leads", "roi"), "performance")
    total = performance["spend"].sum(min_count=1)
    share = performance["spend"] / total if total and total > 0 else performance["spend"] * np.nan
    hit = (performance["roi"] < threshold) & (performance["leads"] >= min_leads) & (share >= min_spend_share)
    out = performance.loc[hit.fillna(False)].copy()
    out["spend_share"] = share[out.index]
    out["loss"] = out["spend"] - out["won_revenue"]
    return out.sort_values("roi").reset_index(drop=True)


@metric(report="12", unit="flag")
def high_bounce_channels(channels: pd.DataFrame, *, margin: float = 0.05, min_sends: int = 200,
                         alpha: float = 0.05) -> pd.DataFrame:
    """Channels whose bounce rate is far above the rest: the lower end of the channel's Wilson interval exceeds the pooled bounce rate of all other channels by more than ``margin`` (a fraction, 0.05 = 5 points), with at least ``min_sends`` sends.

    Returns one row per channel with sends: channel, sends, bounces, bounce_rate, low,
    high, others_rate (bounces / sends of the other channels pooled), excess
    (low - others_rate) and alert (True for the flagged channels), sorted by bounce
    rate, highest first.
    """
    _require(channels, ("channel", "sends", "bounces"), "channels")
    c = channels.loc[channels["sends"].notna() & (channels["sends"] > 0)]
    rows = []
    tot_s, tot_b = float(c["sends"].sum()), float(c["bounces"].fillna(0).sum())
    for r in c.itertuples(index=False):
        sends, bounces = int(round(r.sends)), int(round(0 if pd.isna(r.bounces) else r.bounces))
        p = wilson(bounces, sends, alpha=alpha)
        other_s, other_b = tot_s - sends, tot_b - bounces
        others = other_b / other_s if other_s > 0 else np.nan
        rows.append({"channel": r.channel, "sends": sends, "bounces": bounces, "bounce_rate": p.estimate,
                     "low": p.low, "high": p.high, "others_rate": others, "excess": p.low - others})
    out = pd.DataFrame(rows, columns=["channel", "sends", "bounces", "bounce_rate", "low", "high", "others_rate",
                                      "excess"])
    out["alert"] = (out["excess"] > margin) & (out["sends"] >= min_sends)
    return out.sort_values("bounce_rate", ascending=False).reset_index(drop=True)


# ----------------------------------------------------------------------------- period ROI
@dataclass(frozen=True)
class MarketingRoi:
    """Marketing spend against the won revenue it brought in one window."""

    start: pd.Timestamp | None
    end: pd.Timestamp
    spend: float
    leads: int
    won_deals: int
    won_revenue: float

    @property
    def roi(self) -> float:
        """(won revenue - spend) / spend; NaN without spend."""
        return (self.won_revenue - self.spend) / self.spend if self.spend > 0 else float("nan")

    @property
    def cost_per_lead(self) -> float:
        """Spend / campaign leads; NaN without leads."""
        return self.spend / self.leads if self.leads > 0 else float("nan")

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"start": self.start, "end": self.end, "spend": self.spend, "leads": self.leads,
                              "cost_per_lead": self.cost_per_lead, "won_deals": self.won_deals,
                              "won_revenue": self.won_revenue, "roi": self.roi}])


@metric(report="12", unit="ratio")
def marketing_roi(campaigns: pd.DataFrame, leads: pd.DataFrame, deals: pd.DataFrame, *, end: pd.Timestamp,
                  start: pd.Timestamp | None = None, amount_col: str = AMOUNT_COL) -> MarketingRoi:
    """Marketing ROI of a window: (won revenue of campaign-lead deals won in the window - campaign spend falling in the window) / that spend.

    With ``start=None`` the window is everything before ``end``: the full spend of the
    campaigns started before ``end`` against every deal won before ``end`` from their
    leads (first touch), i.e. the campaigns' ROI to date. With a ``start``, a campaign's
    spend is spread evenly over its days from started_at to ended_at (ended_at missing:
    up to ``end``) and the part falling in [start, end) counts; leads are those created
    in the window and revenue that of deals closed won in it. So a period's ROI compares
    the cash spent and booked in the same period, not a campaign's eventual return.
    """
    end = ensure_instant(end)
    _require(campaigns, ("campaign_id", "spend"), "campaigns")
    _require(leads, ("deal_id",), "leads")
    c = campaigns.loc[campaigns["spend"].notna()]
    if "started_at" in c.columns:
        c = c.loc[c["started_at"].isna() | (c["started_at"] < end)]
    cl = all_cl = _campaign_leads(leads, end)
    won = _won_deals(deals, end, amount_col)
    if start is None:
        spend = float(c["spend"].sum())
    else:
        start = ensure_instant(start)
        _require(c, ("started_at", "ended_at"), "campaigns")
        s0 = c["started_at"]
        s1 = c["ended_at"].fillna(end) + _DAY  # ended_at is the last day it ran
        length = (s1 - s0) / _DAY
        overlap = ((s1.clip(upper=end) - s0.clip(lower=start)) / _DAY).clip(lower=0)
        share = (overlap / length.where(length > 0)).fillna(0.0)
        spend = float((c["spend"] * share).sum())
        cl = cl.loc[cl["created_at"] >= start]
        won = won.loc[won["closed_at"] >= start]
    won = won.loc[isin(won["deal_id"], all_cl["deal_id"].dropna())]  # the deals of any campaign lead
    return MarketingRoi(start, end, spend, int(len(cl)), int(len(won)), float(won[amount_col].sum()))


# ----------------------------------------------------------------------------- mailing list
@metric(report="12", unit="count")
def mailing_list_growth(leads: pd.DataFrame | None = None, contacts: pd.DataFrame | None = None, *,
                        as_of: pd.Timestamp, freq: str = "M", start: pd.Timestamp | None = None) -> pd.DataFrame:
    """Mailing-list size over time: distinct lead and contact email addresses (trimmed, lower-cased) first seen before each period's end.

    An address counts from the earliest created_at of a lead or contact carrying it
    (created before ``as_of``). ``freq`` is ``"W"``, ``"M"`` or ``"Q"``. Returns one row
    per period (``period_start``) from ``start`` (default: the first address) to the
    period holding ``as_of``: new_emails, total_emails (cumulative) and growth (new /
    total at the period's start; NaN when that is 0).
    """
    as_of = ensure_instant(as_of)
    parts = []
    for name, t in (("leads", leads), ("contacts", contacts)):
        if t is not None and "email" in t.columns:
            _require(t, ("created_at",), name)
            parts.append(t.loc[t["created_at"] < as_of, ["email", "created_at"]])
    cols = ["period_start", "new_emails", "total_emails", "growth"]
    if not parts:
        return pd.DataFrame(columns=cols)
    e = pd.concat(parts, ignore_index=True)
    e["email"] = e["email"].str.strip().str.lower()
    e = e.loc[e["email"].notna() & (e["email"] != "")]
    first = e.groupby("email")["created_at"].min()
    if start is not None:
        before = int((first < ensure_instant(start)).sum())
        first = first[first >= ensure_instant(start)]
    else:
        before = 0
    code = {"W": "W-SUN", "M": "M", "Q": "Q"}[freq]
    tz = as_of.tz
    per = first.dt.tz_localize(None).dt.to_period(code) if tz is not None else first.dt.to_period(code)
    lo = per.min() if len(per) else pd.Period(as_of.tz_localize(None), code)
    hi = pd.Period(as_of.tz_localize(None) - pd.Timedelta(microseconds=1), code)
    idx = pd.period_range(lo, hi, freq=code)
    new = per.value_counts().reindex(idx, fill_value=0).astype("int64")
    total = new.cumsum() + before
    prior = total - new
    out = pd.DataFrame({"period_start": idx.start_time.tz_localize(tz) if tz is not None else idx.start_time,
                        "new_emails": new.to_numpy(), "total_emails": total.to_numpy()})
    out["growth"] = (new / prior.where(prior > 0)).to_numpy()
    return out[cols]


# ----------------------------------------------------------------------------- attribution
@metric(report="12", unit="money")
def campaign_attribution(leads: pd.DataFrame, deals: pd.DataFrame, *, as_of: pd.Timestamp,
                         contacts: pd.DataFrame | None = None, amount_col: str = AMOUNT_COL) -> pd.DataFrame:
    """Won deals and revenue per campaign under first-touch (the campaign of the deal's own lead) and last-touch (the account's most recent campaign lead created before the deal) attribution.

    A lead's account is its deal's account, else the account of a contact with the
    same email. Last touch looks at every campaign lead of the won deal's account
    created before the deal was created (and before ``as_of``) and takes the latest;
    a won deal without such a lead keeps its first-touch campaign. A won deal reached
    by several campaign leads counts once under first touch, for the earliest lead.
    Returns campaign_id, first_touch_deals, first_touch_revenue, last_touch_deals,
    last_touch_revenue (sorted by campaign_id).
    """
    as_of = ensure_instant(as_of)
    _require(leads, ("lead_id", "created_at", "campaign_id", "deal_id"), "leads")
    cl = _campaign_leads(leads, as_of)
    won = _won_deals(deals, as_of, amount_col)[["deal_id", "account_id", "created_at", amount_col]] \
        if "account_id" in deals.columns else \
        _won_deals(deals, as_of, amount_col).assign(account_id=pd.NA)[["deal_id", "account_id", "created_at",
                                                                       amount_col]]
    first = (cl.loc[isin(cl["deal_id"], won["deal_id"])].sort_values(["created_at", "lead_id"])
             .drop_duplicates("deal_id")[["deal_id", "campaign_id"]])
    first = first.merge(won, on="deal_id")
    # the account of every campaign lead
    acc = cl[["lead_id", "campaign_id", "created_at", "deal_id"]].merge(
        deals[["deal_id", "account_id"]] if "account_id" in deals.columns else
        pd.DataFrame(columns=["deal_id", "account_id"]), on="deal_id", how="left")
    if contacts is not None and {"email", "account_id"} <= set(contacts.columns) and "email" in cl.columns:
        ce = contacts.loc[contacts["email"].notna(), ["email", "account_id"]].copy()
        ce["email"] = ce["email"].str.strip().str.lower()
        ce = ce.drop_duplicates("email").rename(columns={"account_id": "contact_account"})
        em = cl[["lead_id", "email"]].copy()
        em["email"] = em["email"].str.strip().str.lower()
        acc = acc.merge(em.merge(ce, on="email", how="left")[["lead_id", "contact_account"]], on="lead_id",
                        how="left")
        acc["account_id"] = acc["account_id"].fillna(acc["contact_account"])
    acc = acc.loc[acc["account_id"].notna(), ["account_id", "campaign_id", "created_at"]]
    acc = acc.rename(columns={"campaign_id": "touch", "created_at": "touch_at"})
    cand = first.merge(acc, on="account_id", how="left")
    cand = cand.loc[cand["touch_at"].notna() & (cand["touch_at"] < cand["created_at"])]
    last = cand.sort_values("touch_at").drop_duplicates("deal_id", keep="last")[["deal_id", "touch"]]
    first = first.merge(last, on="deal_id", how="left")
    first["last_campaign"] = first["touch"].fillna(first["campaign_id"])
    ft = first.groupby("campaign_id")[amount_col].agg(["size", "sum"])
    lt = first.groupby("last_campaign")[amount_col].agg(["size", "sum"])
    ids = sorted(set(cl["campaign_id"]))
    out = pd.DataFrame({"campaign_id": pd.Series(ids, dtype="str")})
    out["first_touch_deals"] = out["campaign_id"].map(ft["size"]).fillna(0).astype("int64")
    out["first_touch_revenue"] = out["campaign_id"].map(ft["sum"]).fillna(0.0)
    out["last_touch_deals"] = out["campaign_id"].map(lt["size"]).fillna(0).astype("int64")
    out["last_touch_revenue"] = out["campaign_id"].map(lt["sum"]).fillna(0.0)
    return out


# ----------------------------------------------------------------------------- CRM ROI
#: cost lines of a CRM: money lines, or hours valued at ``hourly_rate`` (the ``_hours`` ones)
CRM_ROI_COST_LINES = {
    "subscription": "subscription (licences)", "training": "training",
    "productivity_loss_hours": "lost productivity during roll-out", "customisation": "customisation",
    "procurement_hours": "procurement time", "storage": "storage", "upgrades": "upgrades",
}
#: gain lines: revenue x attributable_share, and hours_saved x hourly_rate
CRM_ROI_GAIN_LINES = {"revenue": "attributable revenue", "hours_saved": "time saved"}


@dataclass(frozen=True)
class CrmRoi:
    """The CRM's return on investment: (gain - cost) / cost, with its lines."""

    cost: float
    gain: float
    lines: pd.DataFrame  # kind (cost/gain), line, amount

    @property
    def roi(self) -> float:
        return (self.gain - self.cost) / self.cost if self.cost > 0 else float("nan")

    def to_frame(self) -> pd.DataFrame:
        return self.lines


@metric(report="12", unit="ratio")
def crm_roi(lines: Mapping[str, float]) -> CrmRoi:
    """CRM return on investment = (gain - cost) / cost, where cost is subscription + training + lost productivity during roll-out + customisation + procurement time + storage + upgrades, and gain is revenue x attributable share + hours saved x hourly rate.

    ``lines`` holds every key of :data:`CRM_ROI_COST_LINES` and :data:`CRM_ROI_GAIN_LINES`
    plus ``attributable_share`` (fraction of revenue the CRM is credited with) and
    ``hourly_rate`` (money per hour, values the ``*_hours`` lines and hours saved).
    Money lines are in the reporting currency over the same horizon. A missing or
    negative line is an error (an unknown line is not silently taken as 0).
    """
    need = [*CRM_ROI_COST_LINES, *CRM_ROI_GAIN_LINES, "attributable_share", "hourly_rate"]
    missing = [k for k in need if k not in lines or lines[k] is None or pd.isna(lines[k])]
    if missing:
        raise CrmDataError(f"CRM ROI needs the line(s) {', '.join(missing)}: give each a value (0 if none)")
    bad = [k for k in need if float(lines[k]) < 0]
    if bad:
        raise CrmDataError(f"CRM ROI lines cannot be negative: {', '.join(bad)}")
    v = {k: float(lines[k]) for k in need}
    rate = v["hourly_rate"]
    rows = []
    for key, label in CRM_ROI_COST_LINES.items():
        rows.append(("cost", label, v[key] * rate if key.endswith("_hours") else v[key]))
    rows.append(("gain", CRM_ROI_GAIN_LINES["revenue"], v["revenue"] * v["attributable_share"]))
    rows.append(("gain", CRM_ROI_GAIN_LINES["hours_saved"], v["hours_saved"] * rate))
    frame = pd.DataFrame(rows, columns=["kind", "line", "amount"])
    return CrmRoi(float(frame.loc[frame["kind"] == "cost", "amount"].sum()),
                  float(frame.loc[frame["kind"] == "gain", "amount"].sum()), frame)


@metric(report="12", unit="table")
def crm_roi_sensitivity(lines: Mapping[str, float], ranges: Mapping[str, tuple[float, float]]) -> pd.DataFrame:
    """CRM ROI when one uncertain line at a time moves to its low or high value (the rest at base), plus the pessimistic and optimistic cases where every uncertain line moves the way that lowers or raises ROI.

    ``ranges`` maps a line of :func:`crm_roi` to ``(low, high)``. Returns one row per
    uncertain line and the two combined cases: line, low, base, high, roi_low,
    roi_base, roi_high (ROI with the line at low / base / high), sorted by swing
    (|roi_high - roi_low|), largest first, the combined cases last.
    """
    base = dict(lines)
    roi0 = crm_roi(base).roi
    rows, worst, best = [], dict(base), dict(base)
    for key, (lo, hi) in ranges.items():
        if key not in base:
            raise CrmDataError(f"sensitivity range for {key!r}, which is not a CRM ROI line")
        r_lo, r_hi = crm_roi({**base, key: lo}).roi, crm_roi({**base, key: hi}).roi
        rows.append({"line": key, "low": float(lo), "base": float(base[key]), "high": float(hi),
                     "roi_low": r_lo, "roi_base": roi0, "roi_high": r_hi})
        worst[key], best[key] = (lo, hi) if r_lo <= r_hi else (hi, lo)
    out = pd.DataFrame(rows, columns=["line", "low", "base", "high", "roi_low", "roi_base", "roi_high"])
    out = out.reindex((out["roi_high"] - out["roi_low"]).abs().sort_values(ascending=False).index)
    combined = pd.DataFrame([{"line": "all uncertain lines", "low": np.nan, "base": np.nan, "high": np.nan,
                              "roi_low": crm_roi(worst).roi, "roi_base": roi0, "roi_high": crm_roi(best).roi}])
    return pd.concat([out, combined], ignore_index=True)
