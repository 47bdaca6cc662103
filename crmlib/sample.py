"""The sample CRM: a seeded synthetic export whose behaviour follows known parameters.

:func:`generate` simulates about three years of a B2B software seller (users in teams,
leads from five sources, deals moving through a five-stage pipeline, activities, repeat
orders, service tickets, surveys, campaigns, targets and exchange rates) and returns the
raw export tables, exactly as they are written to CSV (every value text, dirty rows
included), together with the *truth*: the parameters planted and the values they
realised, computed from the simulation's own state (never by re-reading the files).
:func:`write_sample` writes one CSV per table, ``truth.json`` and ``export.yaml``;
:func:`load_truth` reads the truth back.

Conventions the truth follows (the project's metric definitions):

* time: ``as_of`` is a Sunday, the end of an ISO week; ``as_of_end`` = as_of + 1 day at
  00:00 UTC. An event "has happened at as_of" when its time is before ``as_of_end``; the
  simulation makes no event at or after ``as_of_end`` (only planned times may lie after
  it, and the planted ``future_date`` dirty rows). Inside the simulation a time is a float
  number of days relative to ``as_of_end`` (negative = past), floored to whole seconds.
* deal status at as_of: won/lost if ``closed_at < as_of_end``, else open. Stage at as_of:
  the last stage_history row with ``entered_at < as_of_end``.
* money: a deal's EUR value is its amount times the USD->EUR rate of the latest fx row
  dated on or before the deal's ``created_at`` (EUR deals: rate 1).
* historical stage norm: the 90th percentile of completed stage visits (entering a
  stage to entering the next one, both before as_of_end); a stalled deal is an open deal
  whose time in its current stage exceeds that norm.
* open task at as_of: type task or meeting, due_at set, created before as_of_end,
  completed_at empty or at/after as_of_end; next task: open with due_at >= as_of_end;
  overdue: open with due_at < as_of_end.

Scale. The committed default (``size="default"``) is 3,250 deals over three years, about
5,000 leads, 1,550 customers, 32,000 activities and 1,650 tickets: the most that fits the
5 MB budget of data/sample while keeping every statistical requirement (at least 600
email and 1,000 paid-ads leads, at least 1,500 BG/NBD customers, six Inside Sales reps
logging 40-180 calls a week for 52 weeks, which alone are ~22,000 activity rows). The
phone and email integrations went live 52 weeks before as_of: calls and emails exist only
since then; before, meetings, tasks and notes were logged by hand (sparsely).
``size="small"`` (800 deals) keeps every planted fact, but these are weaker there: the
customer-value fits (about 350 customers), the activity-outcome link (few Inside Sales
deals per rep-week), the retention groups, the campaign ROIs (a campaign may win nothing)
and the goals (reps without a win in the current month are off pace too). Per-rep and
per-week rates (calls per rep-week, inbound calls per week) do not scale with ``size``.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import brentq
from scipy.special import expit
from scipy import stats
from scipy.stats import norm

from .schema import TABLES

__all__ = ["generate", "write_sample", "load_truth", "AS_OF", "SIZES"]

# ---------------------------------------------------------------- fixed calendar
AS_OF = pd.Timestamp("2026-09-27")  # a Sunday: the end of ISO week 2026-W39
AS_OF_END = AS_OF + pd.Timedelta(days=1)  # Monday 00:00 UTC; day 0 of the simulation clock
EXTRACTED_AT = AS_OF_END + pd.Timedelta(hours=6)
HISTORY_WEEKS = 156  # bookings from Monday 2023-10-02 on
CALL_WEEKS = 52  # the phone and email integrations went live 52 weeks before as_of_end
START = -7.0 * HISTORY_WEEKS
CALL_START = -7.0 * CALL_WEEKS
_BASE = np.datetime64(AS_OF_END.strftime("%Y-%m-%dT%H:%M:%S"), "s")
DAY_S = 86400.0

SIZES = {"default": 3250, "small": 800}
DIRTY_RATE = 0.02

# ---------------------------------------------------------------- planted parameters
LEAD_SOURCES = ("email", "paid_ads", "organic", "referral", "events")
#: leads of each source in the default sample (organic makes up 60% of all leads); scaled with the deals
LEADS_DEFAULT = {"email": 615, "paid_ads": 1015, "referral": 250, "events": 110}
ORGANIC_SHARE = 0.60
LEAD_TO_DEAL = {"email": 0.40, "paid_ads": 0.12, "organic": 0.36, "referral": 0.55, "events": 0.30}
LEAD_TO_WON = {"email": 0.17, "paid_ads": 0.03, "organic": 0.16, "referral": 0.30, "events": 0.10}
OUTBOUND_WIN = 0.62
UPSELL_WIN = 0.60
UPSELL_SHARE = 0.05
OPEN_SHARE = 0.09
ORGANIC_SIZE_FACTOR = 0.85
REFERRAL_CYCLE_FACTOR = 0.70
USD_SHARE = 0.05

#: pipeline "Sales": (stage, probability, median days, lognormal sigma)
STAGES = (("Qualification", 0.1, 7.0, 0.60), ("Needs Analysis", 0.2, 10.0, 0.55),
          ("Proposal", 0.4, 12.0, 0.50), ("Negotiation", 0.6, 9.0, 0.50),
          ("Invoicing", 0.9, 3.4, 0.13))
STAGE_NAMES = tuple(s[0] for s in STAGES)
WON_STAGE, LOST_STAGE = "Closed Won", "Closed Lost"
LOST_AT = (0.40, 0.28, 0.18, 0.11, 0.03)  # stage after which a lost deal is lost
OPEN_AT = (0.30, 0.25, 0.20, 0.15, 0.10)  # current stage of open deals
LOST_REASONS = (("Price", 0.25), ("Competitor", 0.20), ("No budget", 0.15), ("Timing", 0.15),
                ("No decision", 0.13), ("Product fit", 0.08), ("None", 0.04))
SEGMENTS = {"SMB": 6000.0, "Mid-Market": 18000.0, "Enterprise": 50000.0}  # median deal EUR
AMOUNT_SIGMA = 0.80
CAP = 50
CAP_OWNER_OPEN = 60

SEASONAL = {1: 0.80, 2: 0.90, 3: 1.20, 4: 0.90, 5: 0.95, 6: 1.15,
            7: 0.85, 8: 0.70, 9: 1.10, 10: 1.00, 11: 1.05, 12: 1.40}
TREND_PER_YEAR = 0.15

BEST_CALLS = (100, 125)
MIN_MEETINGS = 5

SPEED_MEDIAN_MIN, SPEED_SIGMA = 45.0, 1.8
INBOUND_PER_WEEK = 53
MISSED_BASE, MISSED_BAD, MISSED_CAP = 0.12, 0.40, 0.22
CALLBACK_SHARE, CALLBACK_MEDIAN_MIN = 0.85, 90.0

BGNBD = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
GG = {"p": 6.0, "q": 4.0, "gamma": 15.0}
SPEND_SCALE = 1000.0  # EUR per Gamma-Gamma unit: gamma in EUR = 15 x 1000
PRODUCTS = {"Core": 0.70, "Pro": 0.65, "Analytics": 0.55, "Integrations": 0.50,
            "Support": 0.80, "Training": 0.35}  # margin = 1 - cost / revenue
PRODUCT_MIX = {"Core": 0.35, "Pro": 0.25, "Analytics": 0.08, "Integrations": 0.07,
               "Support": 0.15, "Training": 0.10}
PAIR = ("Analytics", "Integrations")
PAIR_SHARE = 0.09

SLA_HOURS = {"urgent": 8, "high": 24, "normal": 72, "low": 120}
SLA_TARGET, SLA_BREACH_WEEK_MET = 0.91, 0.35
RECURRING_CATEGORY = "integration"
NPS_PROMOTER, NPS_DETRACTOR = 0.45, 0.20

TEAM_INSIDE, TEAM_EAST, TEAM_WEST, TEAM_AM = ("Inside Sales", "Field Sales East",
                                              "Field Sales West", "Account Management")
SALES_TEAMS = (TEAM_INSIDE, TEAM_EAST, TEAM_WEST, TEAM_AM)


# ---------------------------------------------------------------- context and small helpers
@dataclass(frozen=True)
class _Ctx:
    """One run: the number of deals, the seed and the derived scale."""

    n_deals: int
    seed: int
    size: str | int

    def rng(self, part: str) -> np.random.Generator:
        """An independent random stream per part, so parts do not shift each other."""
        return np.random.default_rng([self.seed, zlib.crc32(part.encode())])

    def scaled(self, x: float, low: int = 1) -> int:
        return max(low, int(round(x * self.n_deals / SIZES["default"])))


def _ctx(size, seed) -> _Ctx:
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)} or a number of deals, not {size!r}")
        n = SIZES[size]
    elif isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        n = int(size)
        if n < 400:
            raise ValueError(f"size must be at least 400 deals (the planted facts need them), not {n}")
    else:
        raise ValueError(f"size must be 'default', 'small' or a number of deals, not {size!r}")
    return _Ctx(n_deals=n, seed=int(seed), size=size if isinstance(size, str) else int(size))


def _q(t):
    """Times floored to whole seconds (what the CSV can hold)."""
    return np.floor(np.asarray(t, dtype=float) * DAY_S) / DAY_S


def _t(day: str) -> float:
    """A calendar date as simulation time (days relative to as_of_end)."""
    return (pd.Timestamp(day) - AS_OF_END) / pd.Timedelta(days=1)


def _dt64(t) -> np.ndarray:
    return _BASE + np.round(np.asarray(t, float) * DAY_S).astype("int64").astype("timedelta64[s]")


def _ts_text(t) -> np.ndarray:
    """Times as '%Y-%m-%d %H:%M:%S' (empty for NaN)."""
    t = np.asarray(t, dtype=float)
    out = np.full(t.shape, "", dtype=object)
    ok = ~np.isnan(t)
    if ok.any():
        s = np.datetime_as_string(_dt64(t[ok]), unit="s")
        out[ok] = np.char.replace(s, "T", " ")
    return out


def _date_text(t) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    out = np.full(t.shape, "", dtype=object)
    ok = ~np.isnan(t)
    if ok.any():
        out[ok] = np.datetime_as_string(_dt64(np.floor(t[ok])).astype("datetime64[D]"), unit="D")
    return out


def _month_of(t) -> np.ndarray:
    """'YYYY-MM' of each time."""
    return np.datetime_as_string(_dt64(t).astype("datetime64[M]"), unit="M")


def _week_of(t) -> np.ndarray:
    """Start (Monday, as simulation time) of the ISO week of each time."""
    return np.floor(np.asarray(t, float) / 7.0) * 7.0


def _num_text(x, decimals: int = 2) -> np.ndarray:
    """Numbers with at most ``decimals`` decimals, no trailing zeros (empty for NaN)."""
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape, "", dtype=object)
    ok = ~np.isnan(x)
    if ok.any():
        r = np.round(x[ok], decimals)
        whole = r == np.round(r)
        txt = np.where(whole, np.char.mod("%d", np.round(r).astype("int64")),
                       np.char.rstrip(np.char.rstrip(np.char.mod(f"%.{decimals}f", r), "0"), "."))
        out[ok] = txt
    return out


def _ids(prefix: str, numbers, width: int) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(np.asarray(numbers).astype(str), width))


def _lognormal(rng, median, sigma, size=None):
    return median * np.exp(sigma * rng.standard_normal(size))


_HOURS = np.array([0, 0, 0, 0, 0, 0, 0, 1, 6, 10, 12, 11, 7, 8, 11, 10, 8, 5, 2, 1, 0, 0, 0, 0], float)
_HOURS /= _HOURS.sum()


def _time_of_day(rng, n):
    """A time of day in working hours, as a fraction of a day (peaks late morning, mid afternoon)."""
    return (rng.choice(24, size=n, p=_HOURS) + rng.random(n)) / 24.0


def _is_weekday(day) -> np.ndarray:
    return (np.floor(np.asarray(day, float)).astype("int64") % 7) < 5  # day 0 is a Monday


def _business(rng, t, lo, hi):
    """Move times to a working hour of a weekday when that stays inside [lo, hi)."""
    t = np.asarray(t, float)
    day = np.floor(t)
    wd = day.astype("int64") % 7
    day = np.where(wd == 5, day - 1, np.where(wd == 6, day + 1, day))
    cand = day + _time_of_day(rng, len(t))
    ok = (cand >= lo) & (cand < hi)
    return np.where(ok, cand, t)


def _months(lo: float, hi: float) -> pd.DataFrame:
    """Calendar months overlapping [lo, hi): month, start, end (simulation time), month number."""
    first = pd.Timestamp(_dt64(lo).astype("datetime64[M]").astype("datetime64[s]").item())
    rows = []
    m = first
    while _t(m) < hi:
        nxt = m + pd.offsets.MonthBegin(1)
        rows.append({"month": m.strftime("%Y-%m"), "start": _t(m), "end": _t(nxt), "m": m.month})
        m = nxt
    return pd.DataFrame(rows)


def _daily_weights(lo: float, hi: float, *, weekend: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Days in [lo, hi) and their weight under the planted trend and monthly seasonality.

    The expected share of events in a calendar month is proportional to
    ``(1 + TREND_PER_YEAR x years since history start, at mid-month) x SEASONAL[month]``,
    spread evenly over the month's weekdays (weekends get ``weekend`` of a weekday).
    """
    days = np.arange(np.ceil(lo), np.floor(hi))
    months = _months(lo, hi)
    mon = _month_of(days)
    w = np.zeros(len(days))
    for r in months.itertuples():
        full = np.arange(r.start, r.end)
        per_day = np.where(_is_weekday(full), 1.0, weekend).sum()
        years = ((r.start + r.end) / 2 - START) / 365.25
        level = (1 + TREND_PER_YEAR * max(years, 0.0)) * SEASONAL[r.m] / per_day
        sel = mon == r.month
        w[sel] = level * np.where(_is_weekday(days[sel]), 1.0, weekend)
    return days, w / w.sum()


def _sample_days(rng, n, lo, hi, *, weekend=0.0, hours=True, systematic=False):
    """n times in [lo, hi) under the planted trend x seasonality; ``systematic`` spreads them over
    the weighted calendar evenly (stratified draws, in random order) instead of independently."""
    days, w = _daily_weights(lo, hi, weekend=weekend)
    if systematic:
        u = rng.permutation((rng.random() + np.arange(n)) / n)
        d = days[np.minimum(np.searchsorted(np.cumsum(w), u), len(days) - 1)]
    else:
        d = rng.choice(days, size=n, p=w)
    return d + (_time_of_day(rng, n) if hours else rng.random(n))


def _exact_k(rng, x, k):
    """Exactly ``k`` of ``len(x)`` items chosen, item i with odds proportional to exp(x_i).

    Conditional Bernoulli sampling: Bernoulli(expit(a + x)) with ``a`` set so the expected
    number is ``k``, redrawn until exactly ``k`` are chosen.
    """
    x = np.asarray(x, float)
    n = len(x)
    if k <= 0:
        return np.zeros(n, bool)
    if k >= n:
        return np.ones(n, bool)
    a = brentq(lambda a: expit(a + x).sum() - k, -40, 40)
    p = expit(a + x)
    for _ in range(400):
        draws = rng.random((64, n)) < p
        hit = np.flatnonzero(draws.sum(axis=1) == k)
        if len(hit):
            return draws[hit[0]]
    keys = np.log(rng.random(n)) / p  # fallback: weighted sampling without replacement
    out = np.zeros(n, bool)
    out[np.argsort(-keys)[:k]] = True
    return out


def _lognorm_q(median, sigma, q):
    return median * np.exp(sigma * norm.ppf(q))


# ---------------------------------------------------------------- users
_FIRST = ("Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karin",
          "Lukas", "Maria", "Nils", "Olga", "Paul", "Rita", "Simon", "Tara", "Uwe", "Vera", "Willem",
          "Xenia", "Yusuf", "Zoe", "Amir", "Bianca", "Carlos", "Dana", "Erik", "Fatima", "Georg",
          "Hanna", "Ivan", "Julia", "Kemal", "Lea", "Marco", "Nora", "Oscar", "Petra", "Rafael",
          "Sofia", "Tomas", "Ulla", "Viktor", "Wanda", "Yara", "Adam", "Bea", "Chris", "Dora",
          "Elias", "Frida", "Gabriel", "Helena", "Igor", "Jana", "Kai", "Laura", "Mia", "Noah")
_LAST = ("Berg", "Novak", "Schmidt", "Rossi", "Dubois", "Jansen", "Kowalski", "Lindqvist", "Meyer",
         "Nielsen", "Olsen", "Petrov", "Quinn", "Richter", "Santos", "Torres", "Ulrich", "Vogel",
         "Weber", "Young", "Zimmer", "Adler", "Brandt", "Costa", "Dietrich", "Engel", "Fischer",
         "Garcia", "Hansen", "Ivanova", "Jung", "Keller", "Lang", "Moreau", "Nagel", "Ortiz",
         "Peters", "Roth", "Schulz", "Thomas", "Unger", "Vidal", "Wolf", "Yilmaz", "Arnold",
         "Bauer", "Conti", "Dahl", "Eriksen", "Frank", "Gruber", "Horvat", "Ibsen", "Jovanovic",
         "Krause", "Lorenz", "Martin", "Neumann", "Otto", "Pohl", "Ramos", "Sauer", "Tanaka",
         "Urban", "Varga", "Walter", "Ziegler", "Baker", "Clarke", "Evans", "Hughes", "Murphy",
         "Price", "Reed", "Shaw", "Turner", "Ward", "Wood", "Khan", "Singh", "Ali", "Chen", "Kim")


def _users(ctx) -> pd.DataFrame:
    """About 50 users: a director, managers, sales reps in four teams, support agents, marketing.

    Reps carry a skill (a logit shift of their win probability, planted as rep effects).
    Two former reps left during the history; a few people joined during it.
    """
    rng = ctx.rng("users")
    plan = [("Sales Leadership", "director", 1), (TEAM_INSIDE, "manager", 1), (TEAM_INSIDE, "rep", 6),
            (TEAM_EAST, "manager", 1), (TEAM_EAST, "rep", 10), (TEAM_WEST, "manager", 1),
            (TEAM_WEST, "rep", 10), (TEAM_AM, "manager", 1), (TEAM_AM, "rep", 6),
            ("Support", "manager", 1), ("Support", "agent", 10), ("Marketing", "manager", 1),
            ("Marketing", "marketer", 1)]
    team, role = [], []
    for t, r, n in plan:
        team += [t] * n
        role += [r] * n
    n = len(team)
    names = set()
    while len(names) < n:
        names.add(f"{rng.choice(_FIRST)} {rng.choice(_LAST)}")
    names = sorted(names)
    rng.shuffle(names)
    hired = _q(START - rng.uniform(60, 1500, n))
    left = np.full(n, np.inf)
    team_a, role_a = np.array(team), np.array(role)
    east = np.flatnonzero((team_a == TEAM_EAST) & (role_a == "rep"))
    west = np.flatnonzero((team_a == TEAM_WEST) & (role_a == "rep"))
    am = np.flatnonzero((team_a == TEAM_AM) & (role_a == "rep"))
    agents = np.flatnonzero(team_a == "Support")
    left[east[-1]] = _t("2025-03-31")  # left; replaced by a new hire
    left[west[-1]] = _t("2025-11-28")
    hired[east[-2]] = _t("2024-03-04") + 0.375
    hired[west[-2]] = _t("2025-01-06") + 0.375
    hired[am[-1]] = _t("2024-09-02") + 0.375
    hired[agents[-1]] = _t("2025-04-01") + 0.375
    skill = np.where(role_a == "rep", rng.normal(0.0, 0.4, n), 0.0)
    users = pd.DataFrame({"user_id": _ids("U", np.arange(1, n + 1), 3), "name": names, "team": team,
                          "role": role, "hired": hired, "left": left, "skill": np.round(skill, 3)})
    users["active"] = ~np.isfinite(users["left"])
    return users


def _reps(users, team=None) -> pd.DataFrame:
    r = users[users["role"] == "rep"]
    return r if team is None else r[r["team"] == team]


# ---------------------------------------------------------------- deals
def _deal_plan(ctx) -> tuple[pd.DataFrame, dict]:
    """Which deals exist: source, type, open or closed, and the number of won deals per group.

    Leads per source: LEADS_DEFAULT scaled with the number of deals, organic = 60% of all leads;
    lead -> deal is Binomial(leads, LEAD_TO_DEAL); the number of leads whose deal is won at
    as_of is exactly round(LEAD_TO_WON x leads), so each source's lead -> won rate is realised
    up to rounding (which deals win is still random).
    """
    rng = ctx.rng("plan")
    n = ctx.n_deals
    leads = {s: ctx.scaled(k) for s, k in LEADS_DEFAULT.items()}
    other = sum(leads.values())
    leads["organic"] = int(round(other * ORGANIC_SHARE / (1 - ORGANIC_SHARE)))
    leads = {s: leads[s] for s in LEAD_SOURCES}
    deals = {s: int(rng.binomial(leads[s], LEAD_TO_DEAL[s])) for s in LEAD_SOURCES}
    n_up = int(round(UPSELL_SHARE * n))
    deals["outbound"] = n - sum(deals.values()) - n_up
    deals["upsell"] = n_up
    n_open = max(int(round(OPEN_SHARE * n)), 110)
    won = {s: min(int(round(LEAD_TO_WON[s] * leads[s])), deals[s]) for s in LEAD_SOURCES}
    opens = {g: min(int(round(n_open * deals[g] / n)), deals[g] - won[g]) for g in LEAD_SOURCES}
    opens["upsell"] = int(round(n_open * deals["upsell"] / n))
    opens["outbound"] = n_open - sum(opens.values())
    won["outbound"] = int(rng.binomial(deals["outbound"] - opens["outbound"], OUTBOUND_WIN))
    won["upsell"] = int(rng.binomial(deals["upsell"] - opens["upsell"], UPSELL_WIN))
    rows = []
    for g, k in deals.items():
        rows += [{"group": g, "open": i < opens[g]} for i in range(k)]
    d = pd.DataFrame(rows)
    d["source"] = np.where(d["group"] == "upsell", "outbound", d["group"])
    d["deal_type"] = np.where(d["group"] == "upsell", "upsell", "new")
    d["region"] = rng.choice(["East", "West"], size=len(d))
    return d, {"leads": leads, "deals": deals, "won": won, "open": opens}


SEGMENT_SHARES = (0.45, 0.37, 0.18)


def _segments(ctx, d) -> np.ndarray:
    """Segment of each deal (45% SMB, 37% Mid-Market, 18% Enterprise), assigned by stratified
    draws along the close dates of each source group, so every month closes a similar mix."""
    rng = ctx.rng("segments")
    seg = np.empty(len(d), dtype=object)
    key = np.where(d["open"], np.inf, d["closed"].to_numpy())
    cum = np.cumsum(SEGMENT_SHARES)
    for g in d["group"].unique():
        rows = np.flatnonzero((d["group"] == g).to_numpy())
        rows = rows[np.argsort(key[rows] + 1e-6 * rng.random(len(rows)), kind="stable")]
        block = 11  # each run of 11 consecutive closes gets the shares by systematic sampling
        u = (np.arange(len(rows)) % block + rng.random()) / block
        for b in range(0, len(rows), block):
            u[b:b + block] = rng.permutation(u[b:b + block])
        seg[rows] = np.array(list(SEGMENTS))[np.minimum(np.searchsorted(cum, u), 2)]
    return seg


def _teams(ctx, d) -> np.ndarray:
    """Inbound small deals go to Inside Sales, the rest to the field team of the region; upsells to AM."""
    rng = ctx.rng("teams")
    inside_ok = d["source"].isin(["email", "paid_ads", "organic"]) & (d["segment"] != "Enterprise")
    field = np.where(d["region"] == "East", TEAM_EAST, TEAM_WEST)
    team = np.where(inside_ok & (rng.random(len(d)) < 0.85), TEAM_INSIDE, field)
    return np.where(d["deal_type"] == "upsell", TEAM_AM, team)


def _pick_owner(rng, users, team, t_ref) -> np.ndarray:
    """A rep of each row's team who is employed at t_ref (uniformly among them)."""
    owner = np.full(len(team), -1)
    for tm in np.unique(team):
        reps = _reps(users, tm)
        rows = np.flatnonzero(team == tm)
        elig = ((reps["hired"].to_numpy()[None, :] <= t_ref[rows, None] - 14)
                & (reps["left"].to_numpy()[None, :] > t_ref[rows, None]))
        w = elig / elig.sum(axis=1, keepdims=True)
        pick = (rng.random(len(rows))[:, None] > np.cumsum(w, axis=1)).sum(axis=1)
        owner[rows] = reps.index.to_numpy()[pick]
    return owner


def _activity_effect(calls, meetings):
    """Logit shift of the win probability of an Inside Sales deal closing in a rep-week.

    Best when the rep made 100-125 calls and at least 5 meetings that week; below 100 calls
    the effect falls with fewer calls, above 125 it falls faster (burnout).
    """
    calls = np.asarray(calls, float)
    many = np.asarray(meetings) >= MIN_MEETINGS
    best = (calls >= BEST_CALLS[0]) & (calls <= BEST_CALLS[1])
    base = np.where(best, 0.2, np.where(calls < BEST_CALLS[0], -0.5 - 0.01 * (BEST_CALLS[0] - calls),
                                        -0.8 - 0.03 * (calls - BEST_CALLS[1])))
    return base + np.where(many, np.where(best, 1.8, 0.2), 0.0)


def _inside_plan(ctx, users) -> pd.DataFrame:
    """Calls and meetings of each Inside Sales rep in each of the last 52 weeks."""
    rng = ctx.rng("inside-plan")
    reps = _reps(users, TEAM_INSIDE)
    mu = np.array([40.0, 44, 50, 60, 98, 118])[rng.permutation(len(reps))]
    mm = np.linspace(2.5, 6.5, len(reps))[rng.permutation(len(reps))]
    weeks = CALL_START + 7.0 * np.arange(CALL_WEEKS)
    rows = []
    for i, uid in enumerate(reps.index):
        calls = np.clip(np.round(rng.normal(mu[i], 32, CALL_WEEKS)), 40, 180).astype(int)
        meet = np.clip(rng.poisson(mm[i], CALL_WEEKS), 0, 9)
        rows.append(pd.DataFrame({"owner": uid, "week": weeks, "calls": calls, "meetings": meet}))
    plan = pd.concat(rows, ignore_index=True)
    plan["effect"] = _activity_effect(plan["calls"], plan["meetings"])
    return plan


def _outcomes(ctx, d, users, plan, counts) -> np.ndarray:
    """Won or lost for every closed deal: exactly the planned number per group, chosen with
    odds exp(rep skill + activity effect of the owner's week for Inside Sales deals)."""
    rng = ctx.rng("outcomes")
    x = users["skill"].to_numpy()[d["owner"].to_numpy()]
    key = pd.MultiIndex.from_arrays([plan["owner"], plan["week"]])
    eff = pd.Series(plan["effect"].to_numpy(), index=key)
    wk = _week_of(d["closed"].to_numpy())
    look = pd.MultiIndex.from_arrays([d["owner"].to_numpy(), wk])
    act = eff.reindex(look).to_numpy()
    x = x + np.nan_to_num(act, nan=0.0)
    won = np.zeros(len(d), bool)
    month = _month_of(np.nan_to_num(d["closed"].to_numpy()))
    for g, k in counts["won"].items():
        rows = np.flatnonzero((d["group"] == g).to_numpy() & ~d["open"].to_numpy())
        # the group's wins spread over close months in proportion to its closes there
        months, size = np.unique(month[rows], return_counts=True)
        share = _allocate(k, dict(zip(months, size)), at_least_one=False)
        for m in months:
            sub = rows[month[rows] == m]
            won[sub] = _exact_k(rng, x[sub], share[m])
    return won


def _closed_times(ctx, d) -> np.ndarray:
    """Close times of closed deals, drawn from the planted trend x seasonality (weekdays)."""
    rng = ctx.rng("closes")
    t = np.full(len(d), np.nan)
    closed = ~d["open"].to_numpy()
    up = (d["deal_type"] == "upsell").to_numpy()
    a, b = closed & ~up, closed & up
    t[a] = _sample_days(rng, int(a.sum()), START, 0.0, systematic=True)
    t[b] = _sample_days(rng, int(b.sum()), START + 180, 0.0, systematic=True)
    return _q(t)


def _paths(ctx, d) -> tuple[np.ndarray, np.ndarray]:
    """Stage durations (days) of every deal and the number of open-pipeline stages it visited.

    Closed deals: won ones pass all five stages; lost ones leave after a drawn stage. Open
    deals: prior stages from the stage distributions, the current one below the stage's
    p75 (normal) -- the stalled ones and the invoice deal are set later.
    Referral deals run REFERRAL_CYCLE_FACTOR times faster.
    """
    rng = ctx.rng("paths")
    n = len(d)
    med = np.array([s[2] for s in STAGES])
    sig = np.array([s[3] for s in STAGES])
    dur = med * np.exp(sig * rng.standard_normal((n, 5)))
    fac = np.where(d["source"] == "referral", REFERRAL_CYCLE_FACTOR, 1.0)
    dur *= fac[:, None]
    won = d["won"].to_numpy()
    is_open = d["open"].to_numpy()
    k = np.where(won, 5, rng.choice(5, size=n, p=LOST_AT) + 1)
    k_open = rng.choice(5, size=n, p=OPEN_AT) + 1
    k = np.where(is_open, k_open, k)
    p75 = _lognorm_q(med, sig, 0.75)
    cur = rng.uniform(0.03, 0.97, n) * p75[k - 1]
    rows = np.flatnonzero(is_open)
    dur[rows, k[rows] - 1] = cur[rows]
    dur[np.arange(5)[None, :] >= k[:, None]] = np.nan
    return dur, k


def _stalled(ctx, d, dur, k) -> tuple[np.ndarray, int]:
    """Pick the stalled open deals (2-4 x the stage p90 in their stage) and the invoice deal."""
    rng = ctx.rng("stalled")
    med = np.array([s[2] for s in STAGES])
    sig = np.array([s[3] for s in STAGES])
    p90 = _lognorm_q(med, sig, 0.9)
    is_open = d["open"].to_numpy()
    cand = np.flatnonzero(is_open & (d["group"] == "outbound").to_numpy())
    inv = int(rng.choice(cand))
    k[inv] = 5
    pri = med * np.exp(sig * rng.standard_normal(5))
    dur[inv, :4] = pri[:4]
    dur[inv, 4] = 10.0
    others = np.setdiff1d(np.flatnonzero(is_open), [inv])
    n_st = max(5, int(round(0.03 * is_open.sum())))
    st = rng.choice(others, size=n_st, replace=False)
    dur[st, k[st] - 1] = rng.uniform(2.0, 4.0, n_st) * p90[k[st] - 1]
    return np.sort(np.append(st, inv)), inv


def _calibrate_referral(d, dur):
    """Scale referral won deals' stage times so their median cycle is exactly 0.7 x the others'."""
    won = d["won"].to_numpy()
    ref = won & (d["source"] == "referral").to_numpy()
    oth = won & ~ref
    if ref.sum() < 5:
        return dur
    cyc = np.nansum(dur, axis=1)
    f = REFERRAL_CYCLE_FACTOR * np.median(cyc[oth]) / np.median(cyc[ref])
    dur = dur.copy()
    dur[ref] *= f
    return dur


def _timeline(d, dur, k) -> pd.DataFrame:
    """created_at and the entry time of each visited stage (backwards from the close or as_of_end)."""
    closed = d["closed"].to_numpy()
    is_open = d["open"].to_numpy()
    total = np.nansum(dur, axis=1)
    end = np.where(is_open, 0.0, closed)
    created = _q(end - total)
    cum = np.concatenate([np.zeros((len(d), 1)), np.nancumsum(dur, axis=1)[:, :-1]], axis=1)
    entered = _q(created[:, None] + cum)
    entered[np.arange(5)[None, :] >= k[:, None]] = np.nan
    entered[:, 0] = created
    # the invoice deal and all open deals: the current stage entered exactly at -time in stage
    rows = np.flatnonzero(is_open)
    entered[rows, k[rows] - 1] = _q(-dur[rows, k[rows] - 1])
    return created, entered


def _simulate_deals(ctx, users):
    """Deals with owners, outcomes, timelines and stalled ones; ids in order of creation."""
    d, counts = _deal_plan(ctx)
    d["closed"] = _closed_times(ctx, d)
    d["segment"] = _segments(ctx, d)
    d["team"] = _teams(ctx, d)
    rng = ctx.rng("owners")
    t_ref = np.where(d["open"], 0.0, d["closed"])
    d["owner"] = _pick_owner(rng, users, d["team"].to_numpy(), t_ref)
    plan = _inside_plan(ctx, users)
    d["won"] = _outcomes(ctx, d, users, plan, counts)
    _cover_current_month(ctx, d, users)
    dur, k = _paths(ctx, d)
    stalled, inv = _stalled(ctx, d, dur, k)
    dur = _calibrate_referral(d, dur)
    created, entered = _timeline(d, dur, k)
    d["created"] = created
    d["k"] = k
    d["status"] = np.where(d["open"], "open", np.where(d["won"], "won", "lost"))
    d["stalled"] = False
    d.loc[stalled, "stalled"] = True
    d["invoice"] = False
    d.loc[inv, "invoice"] = True
    order = np.argsort(d["created"].to_numpy(), kind="stable")
    d = d.iloc[order].reset_index(drop=True)
    entered = entered[order]
    width = max(4, len(str(int(ctx.n_deals * 1.1))))
    d["deal_id"] = _ids("D", np.arange(1, len(d) + 1), width)
    _over_cap(ctx, d, users)
    return d, entered, plan, counts


def _cover_current_month(ctx, d, users):
    """Give every active rep at least one deal won in the current month (targets need a pace)."""
    rng = ctx.rng("cover")
    start = _t(AS_OF.replace(day=1))
    cur = d["won"].to_numpy() & (d["closed"].to_numpy() >= start)
    reps = _reps(users)
    reps = reps[reps["active"]]
    for uid in rng.permutation(reps.index.to_numpy()):
        if (cur & (d["owner"].to_numpy() == uid)).any():
            continue
        counts = pd.Series(d["owner"].to_numpy()[cur]).value_counts()
        donors = counts[counts >= 2].index.to_numpy()
        if not len(donors):
            return
        same = donors[users.loc[donors, "team"].to_numpy() == users.at[uid, "team"]]
        if users.at[uid, "team"] == TEAM_INSIDE and not len(same):
            continue
        pool = same if len(same) else donors[users.loc[donors, "team"].to_numpy() != TEAM_INSIDE]
        if not len(pool):
            continue
        donor = rng.choice(pool)
        row = rng.choice(np.flatnonzero(cur & (d["owner"].to_numpy() == donor)))
        d.loc[row, "owner"] = uid


def _over_cap(ctx, d, users):
    """Move open deals of other field reps to one Field Sales West rep until he carries 60."""
    rng = ctx.rng("cap")
    west = _reps(users, TEAM_WEST)
    cap_owner = int(west[west["active"]].index[0])
    is_open = d["open"].to_numpy()
    field = d["team"].isin([TEAM_EAST, TEAM_WEST]).to_numpy()
    have = int((is_open & (d["owner"] == cap_owner)).sum())
    need = max(0, CAP_OWNER_OPEN - have)
    pool = np.flatnonzero(is_open & field & (d["owner"] != cap_owner).to_numpy() & ~d["invoice"].to_numpy())
    take = rng.choice(pool, size=min(need, len(pool)), replace=False)
    d.loc[take, "owner"] = cap_owner
    d.attrs["cap_owner"] = cap_owner


# ---------------------------------------------------------------- names, accounts, people
_ON = ("b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "r", "s", "st", "t",
       "tr", "v", "w", "z")
_VO = ("a", "e", "i", "o", "u", "ar", "en", "or", "el", "an")
INDUSTRIES = {"Software": ("Systems", "Software", "Labs", "Digital"),
              "Manufacturing": ("Industries", "Werke", "Tools", "Works"),
              "Retail": ("Retail", "Stores", "Market"), "Logistics": ("Logistics", "Freight", "Transport"),
              "Healthcare": ("Health", "Medical", "Care"), "Finance": ("Capital", "Finance", "Partners"),
              "Energy": ("Energy", "Power", "Solar"), "Media": ("Media", "Studios", "Publishing")}
_TLD = (".com", ".de", ".io", ".eu")


def _company_names(rng, n) -> pd.DataFrame:
    """n companies with unique names (also after normalising case, punctuation and legal forms)."""
    syl = np.array([o + v for o in _ON for v in _VO])
    cores: list[str] = []
    seen: set[str] = set()
    while len(cores) < n:
        idx = rng.integers(0, len(syl), size=(2 * n + 10, 3))
        for w in ("".join(x) for x in syl[idx]):
            if w not in seen and 6 <= len(w) <= 8:
                seen.add(w)
                cores.append(w.capitalize())
                if len(cores) == n:
                    break
    ind = rng.choice(list(INDUSTRIES), size=n)
    suffix = [rng.choice(INDUSTRIES[i]) for i in ind]
    tld = rng.choice(_TLD, size=n)
    return pd.DataFrame({"core": cores, "name": [f"{c} {s}" for c, s in zip(cores, suffix)],
                         "industry": ind, "domain": [c.lower() + t for c, t in zip(cores, tld)]})


def _people(rng, company_idx, domains, phone_pool) -> pd.DataFrame:
    """One person per entry of company_idx: a name unique within the company, an email and a phone."""
    n = len(company_idx)
    first = rng.choice(len(_FIRST), n)
    last = rng.choice(len(_LAST), n)
    key = pd.DataFrame({"c": company_idx, "f": first, "l": last})
    dup = key.duplicated()
    while dup.any():
        m = int(dup.sum())
        key.loc[dup, "f"] = rng.choice(len(_FIRST), m)
        key.loc[dup, "l"] = rng.choice(len(_LAST), m)
        dup = key.duplicated()
    f = np.array(_FIRST)[key["f"]]
    ln = np.array(_LAST)[key["l"]]
    email = [f"{a.lower()}.{b.lower()}@{domains[c]}" for a, b, c in zip(f, ln, company_idx)]
    return pd.DataFrame({"name": [f"{a} {b}" for a, b in zip(f, ln)], "email": email,
                         "phone": phone_pool(n)})


def _phone_pool(rng):
    """Unique, valid phone numbers (unique in their last nine digits too)."""
    draws = rng.integers(2_000_000, 9_999_999, 400_000)
    _, first = np.unique(draws, return_index=True)
    numbers = iter(draws[np.sort(first)])
    prefixes = ("+49 30 ", "+49 89 ", "+49 40 ", "+44 20 ", "+33 14 ", "+31 20 ", "+43 15 ")

    def take(n):
        pre = rng.choice(prefixes, size=n)
        return [f"{p}{next(numbers)}" for p in pre]

    return take


def _accounts(ctx, d):
    """Accounts of the deals: every won new-business deal makes a customer; lost and open deals
    sometimes reuse a prospect account; upsells go to earlier customers."""
    rng = ctx.rng("accounts")
    n = len(d)
    acc_of = np.full(n, -1)
    seg, reg, first_t, cust_t, src0 = [], [], [], [], []
    pools: dict[tuple, list[int]] = {}
    nb = np.flatnonzero((d["deal_type"] == "new").to_numpy())
    for i in nb:  # deals are in order of creation
        key = (d.at[i, "segment"], d.at[i, "region"])
        st = d.at[i, "status"]
        reuse = {"won": 0.10, "lost": 0.30, "open": 0.15}[st]
        pool = pools.setdefault(key, [])
        if pool and rng.random() < reuse:
            a = pool[int(rng.integers(len(pool)))]
        else:
            a = len(seg)
            seg.append(key[0]); reg.append(key[1]); first_t.append(d.at[i, "created"])
            cust_t.append(np.nan); src0.append(d.at[i, "source"])
            pool.append(a)
        acc_of[i] = a
        if st == "won":
            cust_t[a] = d.at[i, "closed"]
            pool.remove(a)
    cust_t = np.array(cust_t)
    cust = np.flatnonzero(~np.isnan(cust_t))
    for i in np.flatnonzero((d["deal_type"] == "upsell").to_numpy()):
        elig = cust[cust_t[cust] < d.at[i, "created"] - 30]
        acc_of[i] = int(rng.choice(elig)) if len(elig) else int(rng.choice(cust))
    d["acc"] = acc_of
    d["segment"] = np.array(seg)[acc_of]
    d["region"] = np.array(reg)[acc_of]
    acc = pd.DataFrame({"segment": seg, "region": reg, "first": first_t, "customer_since": cust_t,
                        "source": src0})
    return acc


def _account_details(ctx, d, acc, users, names):
    """Ids, names, industries, owners and creation times of the accounts."""
    rng = ctx.rng("account-details")
    n = len(acc)
    acc["name"] = names["name"].to_numpy()[:n]
    acc["core"] = names["core"].to_numpy()[:n]
    acc["industry"] = names["industry"].to_numpy()[:n]
    acc["domain"] = names["domain"].to_numpy()[:n]
    lead_based = d[d["source"] != "outbound"].groupby("acc")["created"].min()
    lag = np.where(acc.index.isin(lead_based.index), 0.0, rng.uniform(1, 60, n))
    acc["created"] = _q(acc["first"].to_numpy() - lag)
    last_owner = d.sort_values("created").groupby("acc")["owner"].last()
    am = _reps(users, TEAM_AM)
    am = am[am["active"]].index.to_numpy()
    acc["owner"] = np.where(acc["customer_since"].notna(), rng.choice(am, n),
                            last_owner.reindex(acc.index).to_numpy())
    acc = acc.sort_values("created", kind="stable")
    nums = np.sort(rng.choice(np.arange(1000, 60000), size=n, replace=False))
    acc["account_id"] = _ids("", nums, 7)
    acc = acc.sort_index()
    # the HTML-escaping test needs one account named with markup (an ordinary clean row)
    html = int(acc.index[(acc["customer_since"].notna() & (acc["source"] == "outbound")).to_numpy()][0])
    acc.loc[html, "name"] = "Smith & Sons <b>bold</b>"
    acc.loc[html, "core"] = "Smith & Sons"
    acc.attrs["html"] = html
    return acc


# ---------------------------------------------------------------- money
def _fx(ctx) -> pd.DataFrame:
    """Monthly USD -> EUR rates (first of each month) from 2022-10 to the month of as_of."""
    rng = ctx.rng("fx")
    months = pd.date_range("2022-10-01", AS_OF.replace(day=1), freq="MS")
    steps = rng.normal(0, 0.012, len(months))
    rate = np.round(0.92 * np.exp(np.cumsum(steps) - steps[0]), 4)
    return pd.DataFrame({"currency": "USD", "date": [_t(m) for m in months], "rate": rate})


def _rate_at(fx, t) -> np.ndarray:
    """The rate of the latest fx row dated on or before t."""
    i = np.searchsorted(fx["date"].to_numpy(), np.asarray(t, float), side="right") - 1
    if (i < 0).any():
        raise AssertionError("a deal is older than the first exchange rate")
    return fx["rate"].to_numpy()[i]


def _amounts(ctx, d, fx):
    """Deal amounts: lognormal by segment, organic 15% smaller (calibrated exactly on the mean),
    5% in USD; the invoice deal is exactly 200,000 EUR.

    The normal scores are drawn stratified within (status, close month, segment), so every
    month's won deals span the whole size distribution and monthly bookings follow the planted
    trend and seasonality closely (the amounts are still lognormal).
    """
    rng = ctx.rng("amounts")
    n = len(d)
    med = d["segment"].map(SEGMENTS).to_numpy()
    month = np.where(d["open"], "open", _month_of(np.nan_to_num(d["closed"].to_numpy())))
    strata = pd.Series(d["status"].to_numpy() + "|" + month + "|" + d["segment"].to_numpy())
    size = strata.map(strata.value_counts()).to_numpy()
    slot = pd.Series(rng.random(n)).groupby(strata).rank(method="first").to_numpy() - 1
    z = norm.ppf((slot + rng.random(n)) / size)
    eur = med * np.exp(AMOUNT_SIGMA * z)
    up = (d["deal_type"] == "upsell").to_numpy()
    eur = np.where(up, eur * 0.4, eur)
    org = (d["source"] == "organic").to_numpy()
    eur = np.where(org, eur * ORGANIC_SIZE_FACTOR, eur)
    inv = d["invoice"].to_numpy()
    usd = (rng.random(n) < USD_SHARE) & ~inv
    rate = np.where(usd, _rate_at(fx, d["created"].to_numpy()), 1.0)
    for _ in range(3):
        native = np.maximum(np.round(eur / rate, -1), 500.0)
        native[inv] = 200000.0
        val = native * rate
        ratio = val[org].mean() / val[~org].mean()
        eur = np.where(org, eur * ORGANIC_SIZE_FACTOR / ratio, eur)
    d["amount"] = native
    d["currency"] = np.where(usd, "USD", "EUR")
    d["eur"] = native * rate


# ---------------------------------------------------------------- leads
def _leads(ctx, d, acc, users, counts, names_extra, people):
    """Every lead-source deal has its lead (created before the deal); the rest of each source's
    leads never convert. Statuses, owners and the people behind the leads."""
    rng = ctx.rng("leads")
    conv = d[d["source"] != "outbound"]
    lag = np.clip(_lognormal(rng, 2.0, 1.0, len(conv)), 0.004, 30)
    rows = [pd.DataFrame({"source": conv["source"].to_numpy(), "created": _q(conv["created"].to_numpy() - lag),
                          "deal": conv.index.to_numpy(), "owner": conv["owner"].to_numpy(),
                          "acc": conv["acc"].to_numpy()})]
    for s in LEAD_SOURCES:
        m = counts["leads"][s] - int((conv["source"] == s).sum())
        t = _q(_sample_days(rng, m, START, 0.0, weekend=0.35, hours=False))
        rows.append(pd.DataFrame({"source": s, "created": t, "deal": -1, "owner": -1, "acc": -1}))
    leads = pd.concat(rows, ignore_index=True)
    free = (leads["deal"] < 0).to_numpy()
    team = np.where(leads["source"].isin(["referral", "events"]),
                    np.where(rng.random(len(leads)) < 0.5, TEAM_EAST, TEAM_WEST),
                    np.where(rng.random(len(leads)) < 0.85, TEAM_INSIDE,
                             np.where(rng.random(len(leads)) < 0.5, TEAM_EAST, TEAM_WEST)))
    own = _pick_owner(rng, users, team[free], np.minimum(leads["created"].to_numpy()[free], -1.0))
    leads.loc[free, "owner"] = own
    leads["converted"] = np.where(free, np.nan, d["created"].to_numpy()[np.maximum(leads["deal"], 0)])
    age = -leads["created"].to_numpy()
    status = np.where(~free, "converted", np.where(age < 7, "new", np.where(age < 30, "working",
                      np.where(rng.random(len(leads)) < 0.12, "working", "disqualified"))))
    leads["status"] = status
    reasons = np.array(["No budget", "Not a fit", "No response", "Wrong contact", "Chose competitor"])
    leads["reason"] = np.where(status == "disqualified", rng.choice(reasons, len(leads)), "")
    leads = leads.sort_values("created", kind="stable").reset_index(drop=True)
    width = max(4, len(str(int(len(leads) * 1.1))))
    leads["lead_id"] = _ids("L", np.arange(1, len(leads) + 1), width)
    # people: converted leads are people at their account; the others at their own company
    comp = np.where(leads["acc"] >= 0, leads["acc"], -1)
    free = (leads["acc"] < 0).to_numpy()
    k = len(acc)
    comp = comp.astype(int)
    comp[free] = k + np.arange(int(free.sum()))
    domains = np.concatenate([acc["domain"].to_numpy(), names_extra["domain"].to_numpy()])
    company = np.concatenate([acc["name"].to_numpy(), names_extra["name"].to_numpy()])
    ppl = _people(rng, comp, domains, people)
    leads["company"] = company[comp]
    leads["email"] = ppl["email"].to_numpy()
    leads["person"] = ppl["name"].to_numpy()
    leads["phone"] = np.where(rng.random(len(leads)) < 0.35, ppl["phone"].to_numpy(), "")
    return leads


def _contacts(ctx, acc, leads, people):
    """Contacts: the person of every converted lead, one person for accounts without a lead,
    and a second contact at a third of the customers."""
    rng = ctx.rng("contacts")
    conv = leads[leads["acc"] >= 0]
    a = pd.DataFrame({"acc": conv["acc"].to_numpy(), "name": conv["person"].to_numpy(),
                      "email": conv["email"].to_numpy(),
                      "phone": np.where(conv["phone"] != "", conv["phone"], people(len(conv))),
                      "created": conv["converted"].to_numpy()})
    need = np.setdiff1d(acc.index.to_numpy(), conv["acc"].to_numpy())
    extra = acc.index[acc["customer_since"].notna() & (rng.random(len(acc)) < 0.03)].to_numpy()
    more = np.concatenate([need, extra])
    taken = pd.DataFrame({"c": a["acc"], "e": a["email"]})
    ppl = _people(rng, more, acc["domain"].to_dict(), people)
    clash = ppl["email"].isin(taken["e"]) | ppl["email"].duplicated()
    while clash.any():
        again = _people(rng, more[clash.to_numpy()], acc["domain"].to_dict(), people)
        ppl.loc[clash, ["name", "email", "phone"]] = again.to_numpy()
        clash = ppl["email"].isin(taken["e"]) | ppl["email"].duplicated()
    base = acc["created"].to_numpy()[more]
    late = np.isin(np.arange(len(more)), np.arange(len(need), len(more)))
    t = np.where(late, base + rng.uniform(5, 400, len(more)), base + rng.uniform(0, 2, len(more)))
    t = np.minimum(t, -rng.uniform(0.5, 30, len(more)))
    b = pd.DataFrame({"acc": more, "name": ppl["name"].to_numpy(), "email": ppl["email"].to_numpy(),
                      "phone": ppl["phone"].to_numpy(), "created": np.maximum(t, base)})
    c = pd.concat([a, b], ignore_index=True)
    c["created"] = _q(c["created"])
    c["phone"] = np.where(rng.random(len(c)) < 0.55, c["phone"], "")
    span = -c["created"].to_numpy()
    c["updated"] = _q(c["created"] + span * rng.beta(2.0, 1.2, len(c)))
    c = c.sort_values("created", kind="stable").reset_index(drop=True)
    c["contact_id"] = _ids("C", np.arange(1, len(c) + 1), max(4, len(str(int(len(c) * 1.1)))))
    return c


# ---------------------------------------------------------------- campaigns
CHANNEL_SOURCE = {"email": "email", "paid_ads": "paid_ads", "social": "organic", "events": "events",
                  "webinar": "events"}
CAMPAIGNS_PER_CHANNEL = {"email": 5, "paid_ads": 5, "social": 4, "events": 3, "webinar": 3}
CHANNEL_BOUNCE = {"email": 0.02, "events": 0.19, "webinar": 0.03}


def _campaigns(ctx, leads, d):
    """About 20 campaigns that tile the history per channel; leads get the campaign of their
    channel running when they came in (organic leads only sometimes, via social). A campaign
    whose leads won nothing is merged into its neighbour, so every campaign has won revenue."""
    rng = ctx.rng("campaigns")
    rows = []
    lo = float(min(leads["created"].min(), START)) - 1
    for ch, k in CAMPAIGNS_PER_CHANNEL.items():
        edges = np.linspace(lo, 0.0, k + 1)
        edges[1:-1] += rng.uniform(-20, 20, k - 1)
        for j in range(k):
            end = edges[j + 1] if j < k - 1 else rng.uniform(30, 90)
            rows.append({"channel": ch, "start": np.floor(edges[j]), "end": np.floor(end) - 1 / DAY_S})
    camp = pd.DataFrame(rows)
    u = rng.random(len(leads))
    won_eur = np.where(leads["deal"] >= 0, d["eur"].to_numpy()[leads["deal"].clip(lower=0)], 0.0)
    won_eur = np.where(d["status"].to_numpy()[leads["deal"].clip(lower=0)] == "won", won_eur, 0.0)
    while True:
        cid = _assign_campaigns(camp, leads, u)
        rev = pd.Series(won_eur).groupby(cid).sum().reindex(camp.index).fillna(0.0)
        per_channel = camp["channel"].map(camp["channel"].value_counts())
        empty = list(camp.index[(rev.to_numpy() <= 0) & (per_channel.to_numpy() > 1)])
        if not empty:
            break
        i = empty[0]
        same = camp.index[(camp["channel"] == camp.at[i, "channel"]) & (camp.index != i)]
        j = same[np.argmin(np.abs(camp.loc[same, "start"].to_numpy() - camp.at[i, "start"]))]
        camp.loc[j, "start"] = min(camp.at[i, "start"], camp.at[j, "start"])
        camp.loc[j, "end"] = max(camp.at[i, "end"], camp.at[j, "end"])
        camp = camp.drop(index=i)
    camp["revenue"] = rev.to_numpy()
    camp["leads"] = pd.Series(cid).value_counts().reindex(camp.index).fillna(0).to_numpy()
    order = np.argsort(camp["start"].to_numpy(), kind="stable")
    ids = pd.Series(_ids("CMP", np.arange(1, len(camp) + 1), 2), index=camp.index[order])
    camp["campaign_id"] = ids.reindex(camp.index).to_numpy()
    words = {"email": "Newsletter", "paid_ads": "Search Ads", "social": "Social Push",
             "events": "Trade Fair", "webinar": "Webinar"}
    camp["name"] = [f"{words[c]} {_month_of([s])[0]}" for c, s in zip(camp["channel"], camp["start"])]
    leads["campaign"] = np.where(cid >= 0, ids.reindex(cid.clip(min=0)).to_numpy(), "")
    return camp.iloc[order].reset_index(drop=True)


def _assign_campaigns(camp, leads, u) -> np.ndarray:
    """Index of each lead's campaign (-1: none): the campaign of the lead's channel running when
    it came in; organic leads only a quarter of the time (social); events leads to the events or
    webinar campaign running then."""
    cid = np.full(len(leads), -1)
    t = leads["created"].to_numpy()
    src = leads["source"].to_numpy()
    for r in camp.itertuples():
        hit = (src == CHANNEL_SOURCE[r.channel]) & (t >= r.start) & (t <= r.end) & (cid < 0)
        if r.channel == "social":
            hit &= u < 0.25
        if r.channel == "events":
            hit &= u < 0.5
        cid[hit] = r.Index
    return cid


def _campaign_money(ctx, camp):
    """Spend and reach of each campaign, set from the won revenue of its leads: every campaign
    pays back except one paid-ads campaign whose spend is far above its leads' won revenue."""
    rng = ctx.rng("campaign-money")
    paid = camp.index[camp["channel"] == "paid_ads"]
    neg = int(paid[len(paid) // 2])
    spend = camp["revenue"] * rng.uniform(0.15, 0.45, len(camp))
    spend = np.where(camp["revenue"] > 0, spend, 0.0)
    spend[neg] = max(5.0 * camp.at[neg, "revenue"], 60000.0)
    camp["spend"] = np.round(spend, 2)
    camp.attrs["negative"] = str(camp.at[neg, "campaign_id"])
    ld = np.maximum(camp["leads"].to_numpy(), 1)
    n = len(camp)
    show = camp["channel"].isin(["paid_ads", "social", "webinar"]).to_numpy()
    imp = np.where(show, np.round(ld * rng.uniform(700, 1500, n)), np.nan)
    clicks = np.where(show, np.round(imp * rng.uniform(0.008, 0.02, n)), np.nan)
    mail = camp["channel"].isin(list(CHANNEL_BOUNCE)).to_numpy()
    sends = np.where(mail, np.round(ld * rng.uniform(60, 120, n)), np.nan)
    bounce = camp["channel"].map(CHANNEL_BOUNCE).to_numpy(dtype=float) * rng.uniform(0.85, 1.15, n)
    bounces = np.where(mail, np.round(sends * bounce), np.nan)
    opens = np.where(mail, np.round((sends - bounces) * rng.uniform(0.18, 0.32, n)), np.nan)
    mclicks = np.where(mail & ~show, np.round(opens * rng.uniform(0.08, 0.15, n)), clicks)
    camp["impressions"], camp["clicks"], camp["sends"] = imp, mclicks, sends
    camp["opens"], camp["bounces"] = opens, bounces


# ---------------------------------------------------------------- stage history
def _stage_history(d, entered) -> pd.DataFrame:
    """One row per stage a deal entered, plus Closed Won/Lost at the close of closed deals."""
    ii, jj = np.nonzero(~np.isnan(entered))
    h = pd.DataFrame({"deal": ii, "stage": np.array(STAGE_NAMES)[jj], "entered": entered[ii, jj]})
    closed = np.flatnonzero(~d["open"].to_numpy())
    fin = pd.DataFrame({"deal": closed, "stage": np.where(d["won"].to_numpy()[closed], WON_STAGE, LOST_STAGE),
                        "entered": d["closed"].to_numpy()[closed]})
    h = pd.concat([h, fin], ignore_index=True).sort_values(["deal", "entered"], kind="stable")
    h["deal_id"] = d["deal_id"].to_numpy()[h["deal"]]
    return h.reset_index(drop=True)


def _visits(h) -> pd.DataFrame:
    """Completed stage visits (entering a stage to entering the next one) before as_of_end."""
    h = h[h["entered"] < 0].sort_values(["deal", "entered"], kind="stable")
    nxt = h["entered"].shift(-1)
    same = h["deal"].eq(h["deal"].shift(-1))
    v = pd.DataFrame({"deal": h["deal"], "stage": h["stage"], "days": (nxt - h["entered"]).where(same)})
    return v[v["days"].notna() & v["stage"].isin(STAGE_NAMES)]


# ---------------------------------------------------------------- activities
_ACT_COLS = ("type", "owner", "deal", "lead", "acc", "created", "due", "completed", "direction",
             "outcome", "duration")


def _act_cols(n, **cols) -> dict:
    """Columns of n activities (defaults: no links, no times, no outcome)."""
    base = {"type": "", "owner": -1, "deal": -1, "lead": -1, "acc": -1, "created": np.nan, "due": np.nan,
            "completed": np.nan, "direction": "", "outcome": "", "duration": np.nan}
    base.update(cols)
    return {k: np.asarray(v) if np.ndim(v) else np.full(n, v, dtype=object if isinstance(v, str) else None)
            for k, v in base.items()}


def _acts(n, **cols) -> pd.DataFrame:
    return pd.DataFrame(_act_cols(n, **cols))


def _call_outcomes(rng, n):
    out = rng.choice(["answered", "no_answer", "voicemail"], size=n, p=[0.38, 0.40, 0.22])
    dur = np.where(out == "answered", np.round(_lognormal(rng, 150, 0.7, n)),
                   np.where(out == "voicemail", np.round(rng.uniform(15, 45, n)), np.nan))
    return out, dur


def _first_touches(ctx, leads) -> pd.DataFrame:
    """The first outbound call or email to each lead (speed to lead: lognormal delay), logged for
    touches since the phone and email integrations went live."""
    rng = ctx.rng("first-touch")
    n = len(leads)
    delay = _lognormal(rng, SPEED_MEDIAN_MIN, SPEED_SIGMA, n) / 1440.0
    t = _q(leads["created"].to_numpy() + np.maximum(delay, 20 / DAY_S))
    keep = (t < 0) & (t >= CALL_START)
    t = t[keep]
    call = rng.random(len(t)) < 0.6
    out, dur = _call_outcomes(rng, len(t))
    return _acts(len(t), type=np.where(call, "call", "email"), owner=leads["owner"].to_numpy()[keep],
                 lead=leads.index.to_numpy()[keep], created=t, direction="outbound",
                 outcome=np.where(call, out, ""), duration=np.where(call, dur, np.nan))


def _deal_activities(ctx, d) -> pd.DataFrame:
    """Meetings, tasks and notes during each deal's life, and emails and calls once the phone
    and email integrations log them (the last 52 weeks).

    Every task and meeting here is completed before as_of_end (open tasks are added apart).
    Inside Sales reps log no calls or meetings here in the call-logging year (their weekly
    calls and meetings are planned separately).
    """
    rng = ctx.rng("deal-acts")
    end = np.where(d["open"], -1e-3, d["closed"].to_numpy())
    start = d["created"].to_numpy()
    life = np.maximum(end - start, 0.01)
    logged = end >= CALL_START  # before the integrations, activities were logged by hand (sparsely)
    k = np.where(logged, np.minimum(1 + rng.poisson(life / 50.0), 3), np.minimum(rng.poisson(life / 70.0), 2))
    di = np.repeat(np.arange(len(d)), k)
    t = start[di] + rng.random(len(di)) * life[di]
    t = _business(rng, t, start[di], end[di])
    team = d["team"].to_numpy()[di]
    late = t >= CALL_START
    kinds = np.array(["email", "meeting", "task", "note", "call"])
    early_p, late_p = [0.0, 0.40, 0.35, 0.25, 0.0], [0.35, 0.15, 0.15, 0.10, 0.25]
    typ = np.where(late, rng.choice(kinds, len(di), p=late_p), rng.choice(kinds, len(di), p=early_p))
    inside_late = (team == TEAM_INSIDE) & (t + 4.5 >= CALL_START)  # a meeting's due date may fall later
    typ = np.where(inside_late & np.isin(typ, ["call", "meeting"]), "email", typ)
    t = _q(t)
    n = len(di)
    timed = np.isin(typ, ["task", "meeting"])
    due = np.where(timed, _q(t + rng.uniform(0.2, 4.0, n)), np.nan)
    done = np.clip(due + rng.normal(0, 0.3, n), t + 0.01, -60 / DAY_S)
    done = np.where(timed, _q(done), np.nan)
    out, cdur = _call_outcomes(rng, n)
    direction = np.where(typ == "call", "outbound",
                         np.where(typ == "email", np.where(rng.random(n) < 0.7, "outbound", "inbound"), ""))
    outcome = np.where(typ == "call", out, np.where(typ == "meeting", "held", ""))
    dur = np.where(typ == "call", cdur, np.where(typ == "meeting", rng.choice([1800, 2700, 3600], n), np.nan))
    return _acts(n, type=typ, owner=d["owner"].to_numpy()[di], deal=di, created=t, due=due,
                 completed=done, direction=direction, outcome=outcome, duration=dur)


def _open_tasks(ctx, d) -> pd.DataFrame:
    """Next and overdue tasks of the deals open at as_of (the planted task coverage)."""
    rng = ctx.rng("open-tasks")
    op = np.flatnonzero(d["open"].to_numpy())
    st = d["stalled"].to_numpy()[op]
    inv = d["invoice"].to_numpy()[op]
    has_next = np.where(st, False, rng.random(len(op)) < 0.72)
    has_over = np.where(inv, True, np.where(st, rng.random(len(op)) < 0.5, rng.random(len(op)) < 0.18))
    created = d["created"].to_numpy()[op]
    inside = (d["team"].to_numpy()[op] == TEAM_INSIDE)
    parts = []
    a = op[has_next]
    c0 = np.maximum(created[has_next], -10.0)
    ct = _q(c0 + rng.random(len(a)) * (-0.01 - c0))
    meet = (rng.random(len(a)) < 0.3) & ~inside[has_next]
    parts.append(_acts(len(a), type=np.where(meet, "meeting", "task"), owner=d["owner"].to_numpy()[a], deal=a,
                       created=ct, due=_q(rng.uniform(0.05, 14.0, len(a)))))
    b = op[has_over]
    c0 = np.maximum(created[has_over], -25.0)
    ct = _q(c0 + rng.random(len(b)) * (-2.0 - c0).clip(0.01))
    due = _q(ct + rng.random(len(b)) * (-0.05 - ct))
    parts.append(_acts(len(b), type="task", owner=d["owner"].to_numpy()[b], deal=b, created=ct,
                       due=np.maximum(due, ct + 60 / DAY_S)))
    return pd.concat(parts, ignore_index=True)


def _inbound_calls(ctx, acc) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Inbound calls of customers to their account managers over the call-logging year, with one
    bad week of 40% missed calls, and the callbacks of missed calls."""
    rng = ctx.rng("inbound")
    weeks = CALL_START + 7.0 * np.arange(CALL_WEEKS)
    bad = weeks[CALL_WEEKS - 15]
    cust = acc[acc["customer_since"].notna()]
    rows = []
    for w in weeks:
        n = int(np.clip(round(rng.normal(INBOUND_PER_WEEK, 4)), 50, 66))
        day = w + rng.choice(5, size=n, p=[0.28, 0.2, 0.18, 0.18, 0.16])
        t = np.sort(_q(day + _time_of_day(rng, n)))
        if w == bad:
            m = int(round(MISSED_BAD * n))
        else:
            m = min(int(rng.binomial(n, MISSED_BASE)), int(np.floor(MISSED_CAP * n)))
        missed = np.zeros(n, bool)
        missed[rng.choice(n, size=m, replace=False)] = True
        rows.append(pd.DataFrame({"created": t, "missed": missed}))
    calls = pd.concat(rows, ignore_index=True)
    pick = np.empty(len(calls), int)
    ct = calls["created"].to_numpy()
    since = cust["customer_since"].to_numpy()
    for i in range(len(calls)):
        pick[i] = cust.index[rng.choice(np.flatnonzero(since < ct[i] - 1))]
    owner = acc["owner"].to_numpy()[pick]
    dur = np.where(calls["missed"], np.nan, np.round(_lognormal(rng, 240, 0.6, len(calls))))
    inbound = _acts(len(calls), type="call", owner=owner, acc=pick, created=ct, direction="inbound",
                    outcome=np.where(calls["missed"], "missed", "answered"), duration=dur)
    mi = np.flatnonzero(calls["missed"].to_numpy() & (rng.random(len(calls)) < CALLBACK_SHARE))
    cb_t = _q(ct[mi] + _lognormal(rng, CALLBACK_MEDIAN_MIN, 1.0, len(mi)) / 1440.0)
    keep = cb_t < 0
    mi, cb_t = mi[keep], cb_t[keep]
    out = rng.choice(["answered", "voicemail", "no_answer"], len(mi), p=[0.7, 0.2, 0.1])
    cdur = np.where(out == "answered", np.round(_lognormal(rng, 200, 0.6, len(mi))),
                    np.where(out == "voicemail", np.round(rng.uniform(15, 45, len(mi))), np.nan))
    callbacks = _acts(len(mi), type="call", owner=owner[mi], acc=pick[mi], created=cb_t,
                      direction="outbound", outcome=out, duration=cdur)
    return inbound, callbacks, bad


def _inside_weeks(ctx, plan, d, other) -> pd.DataFrame:
    """The planned meetings and the rest of the planned calls of each Inside Sales rep-week."""
    rng = ctx.rng("inside-weeks")
    calls_have = other[(other["type"] == "call")].assign(week=lambda x: _week_of(x["created"]))
    have = calls_have.groupby(["owner", "week"]).size().to_dict()
    parts = []
    owner_all = d["owner"].to_numpy()
    created_all = d["created"].to_numpy()
    end_all = np.where(d["open"], 0.0, d["closed"].to_numpy())
    for r in plan.itertuples():
        w = r.week
        m = int(r.meetings)
        if m:
            due = _q(w + rng.integers(0, 5, m) + _time_of_day(rng, m))
            created = _q(np.maximum(due - rng.uniform(0.05, 2.0, m), w))
            created = np.minimum(created, due)
            length = rng.choice([1800, 2700, 3600], m)
            mine = np.flatnonzero((owner_all == r.owner) & (created_all <= w) & (end_all > w + 7))
            deal = rng.choice(mine, m) if len(mine) else np.full(m, -1)
            parts.append(_act_cols(m, type="meeting", owner=r.owner, deal=deal, created=created, due=due,
                               completed=_q(due + length / DAY_S), outcome="held", duration=length))
        k = int(r.calls) - int(have.get((r.owner, w), 0))
        if k > 0:
            t = _q(w + rng.integers(0, 5, k) + _time_of_day(rng, k))
            out, dur = _call_outcomes(rng, k)
            parts.append(_act_cols(k, type="call", owner=r.owner, created=t, direction="outbound",
                                   outcome=out, duration=dur))
    return pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in _ACT_COLS})


def _activities(ctx, d, leads, acc, plan):
    """All activities, in order of creation, with ids."""
    ft = _first_touches(ctx, leads)
    da = _deal_activities(ctx, d)
    ot = _open_tasks(ctx, d)
    inbound, callbacks, bad = _inbound_calls(ctx, acc)
    other = pd.concat([ft, da, ot, inbound, callbacks], ignore_index=True)
    iw = _inside_weeks(ctx, plan, d, other)
    a = pd.concat([other, iw], ignore_index=True)
    a = _distinct(a, ["type", "owner", "deal", "lead", "acc", "created", "direction", "outcome", "duration",
                      "due", "completed"], "created")
    a = a.sort_values("created", kind="stable").reset_index(drop=True)
    width = max(5, len(str(int(len(a) * 1.1))))
    a["activity_id"] = _ids("A", np.arange(1, len(a) + 1), width)
    a.attrs["bad_week"] = bad
    return a


def _distinct(df, cols, time_col, step=1 / DAY_S):
    """Nudge a time by whole seconds until no two rows agree in every column (no accidental
    bulk duplicates in the clean data)."""
    df = df.copy()
    for _ in range(20):
        dup = df.duplicated(subset=list(cols))
        if not dup.any():
            return df
        df.loc[dup, time_col] = df.loc[dup, time_col] - step * (1 + np.arange(int(dup.sum())) % 7)
    raise AssertionError("could not make rows distinct")


# ---------------------------------------------------------------- orders (BG/NBD + Gamma-Gamma)
def _customers(d) -> pd.DataFrame:
    """Customers: accounts with a won new-business deal; acquired on that deal's close day."""
    won = d[(d["status"] == "won") & (d["deal_type"] == "new")]
    c = won[["acc", "closed", "source", "eur"]].rename(columns={"closed": "t0"}).copy()
    c["deal"] = won.index.to_numpy()
    c["day0"] = np.floor(c["t0"].to_numpy())
    c["month"] = _month_of(c["day0"].to_numpy())
    return c.reset_index(drop=True)


def _purchase_rates(ctx, cust, weak_month) -> pd.DataFrame:
    """Draw lambda ~ Gamma(r, alpha) and p ~ Beta(a, b) for every customer; then hand the lowest
    p draws to the referral customers and the highest ones to the weak month's customers (a
    permutation of the same p draws, independent of lambda: the population stays a BG/NBD
    sample with the planted r, alpha, a, b). Dropout only acts after a repeat purchase, so the
    difference shows in later purchases (weeks 27-52 after acquisition), not in the first one.

    lambda is drawn by Latin hypercube within each group (referral, weak month, the rest), so
    the groups differ by their dropout only, not by the luck of their purchase rates.
    """
    rng = ctx.rng("bgnbd")
    n = len(cust)
    ref = (cust["source"] == "referral").to_numpy()
    weak = (cust["month"] == weak_month).to_numpy()
    group = np.where(ref, 1, np.where(weak, 2, 0))
    lam = np.empty(n)
    for g in (0, 1, 2):
        idx = np.flatnonzero(group == g)
        lam[idx] = rng.permutation(stats.gamma.ppf(_strata(rng, len(idx)), BGNBD["r"], scale=1.0 / BGNBD["alpha"]))
    p = np.sort(rng.beta(BGNBD["a"], BGNBD["b"], n))
    cust["p"] = p[_rank(rng.random(n) - 1.0 * ref + 1.0 * weak)]
    cust["lam"] = lam
    return cust


def _strata(rng, n) -> np.ndarray:
    """n uniforms, one in each of n equal strata of (0, 1), in increasing order (Latin hypercube
    draws: the sample follows its distribution closely, so the spend fit lands near the planted
    values)."""
    return (np.arange(n) + rng.random(n)) / n


def _rank(key) -> np.ndarray:
    """0-based rank of each key (ties in order)."""
    return np.argsort(np.argsort(key, kind="stable"), kind="stable")


def _repeat_purchases(ctx, cust) -> pd.DataFrame:
    """Repeat purchase days of each customer up to as_of_end: Poisson(lambda) while alive,
    dropping out after each purchase with probability p."""
    rng = ctx.rng("purchases")
    T = -cust["day0"].to_numpy() / 7.0
    n_arr = rng.poisson(cust["lam"].to_numpy() * T)
    J = rng.geometric(cust["p"].to_numpy())
    x = np.minimum(n_arr, J)
    ci = np.repeat(np.arange(len(cust)), n_arr)
    u = rng.random(len(ci)) * T[ci]
    frame = pd.DataFrame({"c": ci, "w": u}).sort_values(["c", "w"], kind="stable")
    frame["k"] = frame.groupby("c").cumcount()
    frame = frame[frame["k"].to_numpy() < x[frame["c"].to_numpy()]]
    day = np.floor(cust["day0"].to_numpy()[frame["c"]] + frame["w"].to_numpy() * 7.0)
    frame["day"] = day
    # one transaction per customer and day: a second one the same day moves to the next free day
    frame = frame.sort_values(["c", "day"], kind="stable")
    prev = cust["day0"].to_numpy()[frame["c"]]
    days = frame["day"].to_numpy().copy()
    cc = frame["c"].to_numpy()
    for i in range(len(days)):
        last = prev[i] if i == 0 or cc[i - 1] != cc[i] else days[i - 1]
        if days[i] <= last:
            days[i] = last + 1
    frame["day"] = days
    return frame[frame["day"] < 0][["c", "day"]].reset_index(drop=True)


def _spend(ctx, cust, rep) -> np.ndarray:
    """Value of each repeat transaction: Gamma(p, nu) with nu ~ Gamma(q, gamma) per customer
    (Latin hypercube draws of nu and of the Gamma(p) quantiles, randomly assigned), in
    SPEND_SCALE EUR units, rounded to whole EUR."""
    rng = ctx.rng("spend")
    nu = rng.permutation(stats.gamma.ppf(_strata(rng, len(cust)), GG["q"], scale=1.0 / GG["gamma"]))
    u = rng.permutation(_strata(rng, len(rep)))
    z = stats.gamma.ppf(u, GG["p"], scale=1.0 / nu[rep["c"].to_numpy()])
    return np.round(z * SPEND_SCALE)


def _order_lines(ctx, tx) -> pd.DataFrame:
    """Split each transaction into lines: usually one product, often the Analytics +
    Integrations pair, sometimes a second product; revenue split, cost from the margin."""
    rng = ctx.rng("lines")
    n = len(tx)
    names = list(PRODUCT_MIX)
    p1 = rng.choice(names, n, p=list(PRODUCT_MIX.values()))
    pair = rng.random(n) < PAIR_SHARE
    other = [x for x in names if x not in PAIR]
    second = rng.choice(other, n)
    add = ~pair & (rng.random(n) < 0.06) & (second != p1) & ~np.isin(p1, PAIR)
    a = np.where(pair, PAIR[0], p1)
    b = np.where(pair, PAIR[1], np.where(add, second, ""))
    share = np.where(b != "", rng.uniform(0.45, 0.8, n), 1.0)
    total = tx["revenue"].to_numpy()
    r1 = np.where(share < 1, np.round(total * share), total)
    lines = [pd.DataFrame({"tx": np.arange(n), "product": a, "revenue": r1})]
    two = b != ""
    lines.append(pd.DataFrame({"tx": np.flatnonzero(two), "product": b[two],
                               "revenue": np.round(total[two] - r1[two], 2)}))
    ol = pd.concat(lines, ignore_index=True).sort_values(["tx", "product"], kind="stable")
    margin = ol["product"].map(PRODUCTS).to_numpy()
    ol["cost"] = np.round(ol["revenue"].to_numpy() * (1 - margin) * rng.uniform(0.9, 1.1, len(ol)))
    ol["quantity"] = rng.choice([1, 1, 1, 2, 3, 5], len(ol))
    for col in ("acc", "day", "deal", "first"):
        ol[col] = tx[col].to_numpy()[ol["tx"].to_numpy()]
    return ol.reset_index(drop=True)


def _orders(ctx, d):
    """Orders: the first transaction of each customer is its won deal (revenue = deal EUR);
    repeat transactions follow BG/NBD in weeks and Gamma-Gamma in EUR."""
    cust = _customers(d)
    months = cust["month"].value_counts()
    months = months[(months.index >= "2024-10") & (months.index <= "2025-06")]
    weak = str(months.index[np.argmax(months.to_numpy())]) if len(months) else str(cust["month"].iloc[0])
    cust = _purchase_rates(ctx, cust, weak)
    rep = _repeat_purchases(ctx, cust)
    rep["revenue"] = _spend(ctx, cust, rep)
    first = pd.DataFrame({"c": np.arange(len(cust)), "day": cust["day0"].to_numpy(),
                          "revenue": np.round(cust["eur"].to_numpy(), 2)})
    tx = pd.concat([first.assign(first=True), rep.assign(first=False)], ignore_index=True)
    tx["acc"] = cust["acc"].to_numpy()[tx["c"]]
    tx["deal"] = np.where(tx["first"], cust["deal"].to_numpy()[tx["c"]], -1)
    tx = tx.sort_values(["day", "acc"], kind="stable").reset_index(drop=True)
    ol = _order_lines(ctx, tx)
    ol = ol.sort_values(["day", "tx"], kind="stable").reset_index(drop=True)
    ol["order_id"] = _ids("O", np.arange(1, len(ol) + 1), max(5, len(str(int(len(ol) * 1.1)))))
    return ol, cust, weak


# ---------------------------------------------------------------- tickets and surveys
TICKET_CATEGORIES = {"billing": 0.2, "login": 0.15, "bug": 0.22, "how-to": 0.25, "performance": 0.08,
                     "feature request": 0.06, RECURRING_CATEGORY: 0.04}
FIRST_RESPONSE_H = {"urgent": 0.5, "high": 1.0, "normal": 3.0, "low": 6.0}


def _ticket_frame(ctx, cust_acc, acc, breach_week) -> tuple[pd.DataFrame, np.ndarray]:
    """Which customer opens a ticket when, about what: customers in proportion to their tenure,
    five old customers with about ten tickets each of the recurring category, and an outage
    week with a burst of performance tickets. Returns the tickets and the recurring accounts."""
    rng = ctx.rng("tickets")
    n = ctx.scaled(1550, low=300)
    since = acc["customer_since"].to_numpy()
    ids = cust_acc
    tenure = -since[ids]
    a = rng.choice(ids, size=n, p=tenure / tenure.sum())
    t = since[a] + rng.random(n) * (-since[a])
    cat = rng.choice(list(TICKET_CATEGORIES), n, p=list(TICKET_CATEGORIES.values()))
    old = ids[since[ids] < START + 100]
    rec = rng.choice(old if len(old) >= 5 else ids, size=5, replace=False)
    k = max(5, ctx.scaled(10))
    ra = np.repeat(rec, k)
    rt = since[ra] + rng.random(len(ra)) * (-since[ra])
    m = max(10, ctx.scaled(30))
    ba = rng.choice(ids[since[ids] < breach_week], size=m)
    bt = breach_week + rng.integers(0, 5, m) + _time_of_day(rng, m)
    frame = pd.DataFrame({
        "acc": np.concatenate([a, ra, ba]),
        "created": np.concatenate([t, rt, bt]),
        "category": np.concatenate([cat, np.repeat(RECURRING_CATEGORY, len(ra)), np.repeat("performance", m)]),
    })
    created = frame["created"].to_numpy()
    frame["created"] = _q(_business(rng, created, np.maximum(created - 3, since[frame["acc"]]), -1e-3))
    frame = frame[frame["created"] < -1e-3]
    # the recurring category is recurring only for the planted accounts
    dupe = (frame["category"] == RECURRING_CATEGORY) & ~frame["acc"].isin(rec)
    frame.loc[dupe & frame.duplicated(["acc", "category"]), "category"] = "how-to"
    return frame.reset_index(drop=True), rec


def _tickets(ctx, acc, users):
    """Tickets with SLA compliance about 91% every week but one (an outage week far below 50%)."""
    rng = ctx.rng("ticket-times")
    breach = CALL_START + 7.0 * 20
    cust_acc = acc.index[acc["customer_since"].notna()].to_numpy()
    tk, rec = _ticket_frame(ctx, cust_acc, acc, breach)
    n = len(tk)
    out = tk["category"] == "performance"
    pr = rng.choice(list(SLA_HOURS), n, p=[0.05, 0.2, 0.45, 0.30])
    pr = np.where(out & (_week_of(tk["created"]) == breach), rng.choice(["urgent", "high"], n), pr)
    tk["priority"] = pr
    tk["channel"] = rng.choice(["email", "phone", "chat", "web"], n, p=[0.4, 0.2, 0.25, 0.15])
    sla = tk["priority"].map(SLA_HOURS).to_numpy() / 24.0
    tk["sla_due"] = _q(tk["created"] + sla)
    week = _week_of(tk["created"].to_numpy())
    met = np.ones(n, bool)
    for w in np.unique(week):
        rows = np.flatnonzero(week == w)
        if w == breach:
            k = len(rows) - int(round(SLA_BREACH_WEEK_MET * len(rows)))
        else:
            k = min(int(rng.binomial(len(rows), 1 - SLA_TARGET)), int(np.floor(0.2 * len(rows))))
        met[rng.choice(rows, size=k, replace=False)] = False
    sig = 0.8
    med = sla * np.exp(-sig * norm.ppf(0.93))
    cut = norm.cdf(np.log(sla / med) / sig)
    u = np.where(met, rng.uniform(0.02, 1.0, n) * cut, cut + rng.uniform(0.02, 1.0, n) * (0.995 - cut))
    res = med * np.exp(sig * norm.ppf(u))
    res = np.where(met, np.minimum(res, sla * 0.999), np.maximum(res, sla * 1.02))
    fr = np.minimum(_lognormal(rng, 1.0, 0.8, n) * tk["priority"].map(FIRST_RESPONSE_H).to_numpy() / 24.0,
                    res * 0.9)
    tk["first_response"] = _q(tk["created"] + fr)
    tk["resolved"] = _q(tk["created"] + res)
    tk.loc[tk["first_response"] >= 0, "first_response"] = np.nan
    tk.loc[tk["resolved"] >= 0, "resolved"] = np.nan
    solved = tk["resolved"].notna()
    tk["status"] = np.where(solved, np.where(tk["resolved"] < -7, "closed", "solved"),
                            np.where(tk["first_response"].notna(), "pending", "open"))
    tk["reopened"] = np.where(solved, rng.random(n) < 0.05, False)
    agents = users[users["role"] == "agent"]
    elig = ((agents["hired"].to_numpy()[None, :] <= tk["created"].to_numpy()[:, None])
            & (agents["left"].to_numpy()[None, :] > tk["created"].to_numpy()[:, None]))
    w = elig / elig.sum(axis=1, keepdims=True)
    pick = (rng.random(n)[:, None] > np.cumsum(w, axis=1)).sum(axis=1)
    tk["agent"] = agents.index.to_numpy()[pick]
    tk = _distinct(tk, ["acc", "created", "category", "priority", "channel"], "created")
    tk = tk.sort_values("created", kind="stable").reset_index(drop=True)
    tk["ticket_id"] = _ids("T", np.arange(1, len(tk) + 1), max(4, len(str(int(len(tk) * 1.1)))))
    return tk, breach, rec


def _surveys(ctx, acc, tk) -> pd.DataFrame:
    """NPS answers of customers (true promoter 45%, detractor 20%) and CSAT after 30% of tickets."""
    rng = ctx.rng("surveys")
    n = ctx.scaled(600, low=150)
    cust = acc.index[acc["customer_since"].notna()].to_numpy()
    since = acc["customer_since"].to_numpy()
    a = rng.choice(cust, n)
    lo = since[a] + np.minimum(7.0, -since[a] / 2)
    t = _q(_business(rng, lo + rng.random(n) * (-lo), since[a], -1e-3))
    kind = rng.choice(3, n, p=[NPS_PROMOTER, 1 - NPS_PROMOTER - NPS_DETRACTOR, NPS_DETRACTOR])
    score = np.where(kind == 0, rng.choice([9, 10], n, p=[0.45, 0.55]),
                     np.where(kind == 1, rng.choice([7, 8], n),
                              rng.choice(np.arange(7), n, p=[0.04, 0.04, 0.07, 0.1, 0.15, 0.25, 0.35])))
    nps = pd.DataFrame({"acc": a, "ticket": -1, "kind": "nps", "score": score, "answered": t})
    sol = tk.index[tk["resolved"].notna() & (rng.random(len(tk)) < 0.3)].to_numpy()
    at = _q(tk["resolved"].to_numpy()[sol] + _lognormal(rng, 0.3, 1.0, len(sol)))
    keep = at < 0
    sol, at = sol[keep], at[keep]
    met = tk["resolved"].to_numpy()[sol] <= tk["sla_due"].to_numpy()[sol]
    good = rng.choice(np.arange(1, 6), len(sol), p=[0.03, 0.05, 0.12, 0.35, 0.45])
    bad = rng.choice(np.arange(1, 6), len(sol), p=[0.15, 0.2, 0.25, 0.25, 0.15])
    csat = pd.DataFrame({"acc": tk["acc"].to_numpy()[sol], "ticket": sol, "kind": "csat",
                         "score": np.where(met, good, bad), "answered": at})
    sv = pd.concat([nps, csat], ignore_index=True)
    sv = _distinct(sv, ["acc", "ticket", "kind", "score", "answered"], "answered")
    sv = sv.sort_values("answered", kind="stable").reset_index(drop=True)
    sv["survey_id"] = _ids("S", np.arange(1, len(sv) + 1), max(4, len(str(len(sv)))))
    return sv


# ---------------------------------------------------------------- targets
def _working_days(lo: float, hi: float) -> int:
    days = np.arange(np.ceil(lo), np.ceil(hi))
    return int(_is_weekday(days).sum())


def _monthly_actuals(d, acts, leads) -> pd.Series:
    """Per sales rep and month: revenue (EUR), won deals, calls, meetings (held) and new leads."""
    frames = []
    won = d[d["status"] == "won"]
    frames.append(pd.DataFrame({"owner": won["owner"], "t": won["closed"], "metric": "revenue", "v": won["eur"]}))
    frames.append(pd.DataFrame({"owner": won["owner"], "t": won["closed"], "metric": "won_deals", "v": 1.0}))
    c = acts[acts["type"] == "call"]
    frames.append(pd.DataFrame({"owner": c["owner"], "t": c["created"], "metric": "calls", "v": 1.0}))
    m = acts[(acts["type"] == "meeting") & acts["completed"].notna()]
    frames.append(pd.DataFrame({"owner": m["owner"], "t": m["due"], "metric": "meetings", "v": 1.0}))
    frames.append(pd.DataFrame({"owner": leads["owner"], "t": leads["created"], "metric": "new_leads", "v": 1.0}))
    f = pd.concat(frames, ignore_index=True)
    f = f[f["t"] < 0]
    f["month"] = _month_of(f["t"].to_numpy())
    out = f.groupby(["owner", "metric", "month"])["v"].sum()
    return out


def _targets(ctx, d, acts, leads, users):
    """Monthly targets per rep and per sales team, set from the realised actuals: past months
    at 75-120% attainment; in the month of as_of every rep's run-rate projection is at least
    95% of target except the planted off-pace reps' revenue (below 50%).

    Every sales rep and team has revenue and won_deals targets for every month of the history;
    Inside Sales (reps and team) also has new_leads targets, and calls and meetings targets
    since the phone and email integrations went live.
    """
    rng = ctx.rng("targets")
    months = _months(START, 1.0)
    months = months[months["start"] >= START - 1]
    actual = _monthly_actuals(d, acts, leads).to_dict()
    cur = months.iloc[-1]
    elapsed = _working_days(cur["start"], 0.0) / _working_days(cur["start"], cur["end"])
    reps = _reps(users)
    reps = reps[reps["team"].isin(SALES_TEAMS)]
    rev_now = {u: actual.get((u, "revenue", cur["month"]), 0.0) for u in reps.index}
    pos = [u for u in reps.index
           if users.at[u, "active"] and rev_now[u] > 0 and users.at[u, "team"] != TEAM_INSIDE]
    off = sorted(rng.choice(pos, size=min(3, len(pos)), replace=False).tolist())
    rows = []
    for u in reps.index:
        team = users.at[u, "team"]
        metrics = TARGET_METRICS if team == TEAM_INSIDE else TARGET_METRICS[:2]
        for mt in metrics:
            mean = np.mean([actual.get((u, mt, mo), 0.0) for mo in months["month"]])
            for r in months.itertuples():
                if mt in ("calls", "meetings") and r.start < CALL_START:
                    continue
                if users.at[u, "hired"] > r.end - 14 or users.at[u, "left"] < r.start + 14:
                    continue
                v = actual.get((u, mt, r.month), 0.0)
                if r.month == cur["month"]:  # rounded so the pace stays on its side of the threshold
                    proj = v / elapsed
                    if mt == "revenue" and u in off:
                        tgt = _round_target(mt, proj / rng.uniform(0.30, 0.50), np.ceil)
                    else:
                        tgt = _round_target(mt, proj / rng.uniform(0.95, 1.25), np.floor)
                else:
                    tgt = _round_target(mt, max(v, 0.5 * mean) / rng.uniform(0.75, 1.20))
                rows.append({"owner": u, "team": "", "metric": mt, "start": r.start, "end": r.end - 1,
                             "month": r.month, "target": tgt})
    t = pd.DataFrame(rows)
    team_rows = _team_targets(rng, t, actual, users, cur, elapsed)
    t = pd.concat([t, team_rows], ignore_index=True)
    return t, off, cur, elapsed, actual


TARGET_METRICS = ("revenue", "won_deals", "calls", "meetings", "new_leads")


def _round_target(metric, v, how=np.round):
    """Revenue targets in whole hundreds (at least 100), counts in whole numbers (at least 1)."""
    if metric == "revenue":
        return float(max(100.0, how(v / 100.0) * 100.0))
    return float(max(1.0, how(v)))


def _team_targets(rng, t, actual, users, cur, elapsed):
    """Team targets: the sum of the members' targets in past months; in the current month the
    team's projection over 95-125%."""
    rows = []
    own = t.assign(team=users.loc[t["owner"], "team"].to_numpy())
    for (team, mt, month), g in own.groupby(["team", "metric", "month"]):
        if month == cur["month"]:
            members = users.index[(users["team"] == team) & (users["role"] == "rep")]
            v = sum(actual.get((u, mt, month), 0.0) for u in members)
            tgt = _round_target(mt, v / elapsed / rng.uniform(0.95, 1.25), np.floor)
        else:
            tgt = float(g["target"].sum())
        rows.append({"owner": -1, "team": team, "metric": mt, "start": g["start"].iloc[0],
                     "end": g["end"].iloc[0], "month": month, "target": tgt})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the simulation
@dataclass
class _World:
    users: pd.DataFrame
    deals: pd.DataFrame
    history: pd.DataFrame
    plan: pd.DataFrame
    counts: dict
    accounts: pd.DataFrame
    leads: pd.DataFrame
    contacts: pd.DataFrame
    campaigns: pd.DataFrame
    activities: pd.DataFrame
    orders: pd.DataFrame
    customers: pd.DataFrame
    weak_month: str
    tickets: pd.DataFrame
    breach_week: float
    recurring: np.ndarray
    surveys: pd.DataFrame
    targets: pd.DataFrame
    off_pace: list
    current: pd.Series
    elapsed: float
    actual: pd.Series
    fx: pd.DataFrame


def _simulate(ctx) -> _World:
    users = _users(ctx)
    d, entered, plan, counts = _simulate_deals(ctx, users)
    acc = _accounts(ctx, d)
    rng_names = ctx.rng("names")
    n_free = sum(counts["leads"].values()) - int((d["source"] != "outbound").sum())
    names = _company_names(rng_names, len(acc) + n_free)
    acc = _account_details(ctx, d, acc, users, names)
    fx = _fx(ctx)
    _amounts(ctx, d, fx)
    _name_deals(ctx, d, acc)
    people = _phone_pool(ctx.rng("phones"))
    extra = names.iloc[len(acc):].reset_index(drop=True)
    leads = _leads(ctx, d, acc, users, counts, extra, people)
    contacts = _contacts(ctx, acc, leads, people)
    camp = _campaigns(ctx, leads, d)
    _campaign_money(ctx, camp)
    hist = _stage_history(d, entered)
    acts = _activities(ctx, d, leads, acc, plan)
    orders, cust, weak = _orders(ctx, d)
    tk, breach, recurring = _tickets(ctx, acc, users)
    sv = _surveys(ctx, acc, tk)
    targets, off, cur, elapsed, actual = _targets(ctx, d, acts, leads, users)
    return _World(users, d, hist, plan, counts, acc, leads, contacts, camp, acts, orders, cust, weak, tk,
                  breach, recurring, sv, targets, off, cur, elapsed, actual, fx)


def _name_deals(ctx, d, acc):
    """Deal names ("<company> <product>"), lost reasons and expected close dates; one deal is
    named with a script tag (the HTML-escaping test) and some lost reasons are "None"."""
    rng = ctx.rng("deal-names")
    n = len(d)
    word = rng.choice(["Core", "Pro", "Suite", "Analytics", "Platform", "Rollout"], n)
    word = np.where(d["deal_type"] == "upsell", "Add-on", word)
    core = acc["core"].to_numpy()[d["acc"].to_numpy()]
    d["name"] = [f"{c} {w}" for c, w in zip(core, word)]
    lost = (d["status"] == "lost").to_numpy()
    reasons, p = zip(*LOST_REASONS)
    d["lost_reason"] = np.where(lost, rng.choice(reasons, n, p=p), "")
    plain = np.flatnonzero(lost & ~d["stalled"].to_numpy())
    d.loc[plain[0], "lost_reason"] = "None"
    script = int(plain[len(plain) // 2])
    d.loc[script, "name"] = "<script>alert(1)</script>"
    d.attrs["script"] = script
    med = np.array([s[2] for s in STAGES])
    rest = np.array([med[k:].sum() for k in range(1, 6)])
    k = d["k"].to_numpy()
    exp_close = np.where(d["stalled"], -rng.uniform(5, 40, n), rest[k - 1] * rng.uniform(0.7, 1.5, n) + 1)
    d["expected_close"] = np.where(d["open"], np.floor(exp_close), np.nan)


# ---------------------------------------------------------------- truth (from the simulation's state)
def _r(x, nd=4):
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else round(float(x), nd)


def _day_text(t) -> str:
    return str(_date_text([t])[0])


def _uid(w, idx) -> str:
    return str(w.users["user_id"].iat[int(idx)])


def _truth_sources(w) -> dict:
    d, leads = w.deals, w.leads
    status = np.where(leads["deal"] >= 0, d["status"].to_numpy()[leads["deal"].clip(lower=0)], "")
    cyc = d["closed"] - d["created"]
    out = {}
    n_all = len(leads)
    for s in LEAD_SOURCES + ("outbound",):
        ls = leads["source"] == s
        ds = d["source"] == s
        won = ds & (d["status"] == "won")
        row = {"deals": int(ds.sum()), "won_deals": int(won.sum()),
               "mean_deal_size_eur": _r(d.loc[ds, "eur"].mean(), 2),
               "median_cycle_days": _r(cyc[won].median(), 3)}
        if s != "outbound":
            n = int(ls.sum())
            k = int((ls.to_numpy() & (status == "won")).sum())
            row = {"leads": n, "lead_share": _r(n / n_all), "won_from_leads": k,
                   "lead_to_won_rate": _r(k / n), "planted_lead_to_won_rate": LEAD_TO_WON[s],
                   "planted_lead_to_deal_rate": LEAD_TO_DEAL[s], **row}
        out[s] = row
    org = d["source"] == "organic"
    won = d["status"] == "won"
    ref = won & (d["source"] == "referral")
    out["planted"] = {"organic_share_of_leads": ORGANIC_SHARE, "organic_size_factor": ORGANIC_SIZE_FACTOR,
                      "referral_cycle_factor": REFERRAL_CYCLE_FACTOR, "lead_to_won": dict(LEAD_TO_WON),
                      "outbound_win_rate": OUTBOUND_WIN, "upsell_win_rate": UPSELL_WIN}
    out["realised"] = {
        "organic_vs_other_mean_size_ratio": _r(d.loc[org, "eur"].mean() / d.loc[~org, "eur"].mean()),
        "referral_vs_other_median_cycle_ratio": _r(cyc[ref].median() / cyc[won & ~ref].median()),
    }
    out["definitions"] = {
        "lead_to_won_rate": "leads of the source whose deal_id is a deal won at as_of / leads of the source",
        "mean_deal_size_eur": "mean EUR amount over all deals of the source that exist at as_of (open, won, lost)",
        "median_cycle_days": "median of closed_at - created_at (days) over the source's won deals",
        "others": "for the ratios: all deals of every other source (outbound included)",
    }
    return out


def _stage_norms(w) -> pd.Series:
    v = _visits(w.history)
    return v.groupby("stage")["days"].quantile(0.9).reindex(list(STAGE_NAMES))


def _truth_stages(w) -> dict:
    v = _visits(w.history)
    g = v.groupby("stage")["days"]
    out = {}
    for name, prob, med, sig in STAGES:
        out[name] = {"probability": prob, "distribution": "lognormal", "median_days": med, "sigma": sig,
                     "p75_days": _r(_lognorm_q(med, sig, 0.75), 3), "p90_days": _r(_lognorm_q(med, sig, 0.9), 3),
                     "referral_deals_scaled_by": REFERRAL_CYCLE_FACTOR,
                     "completed_visits": int(g.size().get(name, 0)),
                     "realised_median_days": _r(g.median().get(name), 3),
                     "realised_p90_days": _r(g.quantile(0.9).get(name), 3)}
    return out


def _open_task_flags(w) -> pd.DataFrame:
    a = w.activities
    open_task = (a["type"].isin(["task", "meeting"]) & a["due"].notna() & (a["created"] < 0)
                 & (a["completed"].isna() | (a["completed"] >= 0)) & (a["deal"] >= 0))
    t = a[open_task]
    nxt = set(t.loc[t["due"] >= 0, "deal"])
    over = set(t.loc[t["due"] < 0, "deal"])
    d = w.deals
    op = d.index[d["status"] == "open"]
    return pd.DataFrame({"next": op.isin(list(nxt)), "overdue": op.isin(list(over))}, index=op)


def _truth_pipeline(w) -> dict:
    d = w.deals
    op = d[d["status"] == "open"].copy()
    op["stage"] = np.array(STAGE_NAMES)[op["k"].to_numpy() - 1]
    prob = dict((s[0], s[1]) for s in STAGES)
    op["weighted"] = op["eur"] * op["stage"].map(prob)
    h = w.history
    cur = h[h["entered"] < 0].groupby("deal")["entered"].max()
    op["days_in_stage"] = -cur.reindex(op.index).to_numpy()
    norms = _stage_norms(w)
    stalled = op.index[op["days_in_stage"] > op["stage"].map(norms).to_numpy()]
    planted = op.index[op["stalled"]]
    if set(stalled) != set(planted):
        raise AssertionError(f"stalled deals differ from the planted ones: {sorted(set(stalled) ^ set(planted))}")
    inv = op[op["invoice"]].iloc[0]
    by_owner = op.groupby("owner").size().sort_index()
    flags = _open_task_flags(w)
    ids = op["deal_id"]
    return {
        "as_of": AS_OF.strftime("%Y-%m-%d"),
        "open_deals": int(len(op)), "open_value_eur": _r(op["eur"].sum(), 2),
        "weighted_value_eur": _r(op["weighted"].sum(), 2),
        "by_stage": {s: {"count": int((op["stage"] == s).sum()),
                         "value_eur": _r(op.loc[op["stage"] == s, "eur"].sum(), 2),
                         "weighted_value_eur": _r(op.loc[op["stage"] == s, "weighted"].sum(), 2)}
                     for s in STAGE_NAMES},
        "by_owner_open_deals": {_uid(w, u): int(n) for u, n in by_owner.items()},
        "stage_norm_p90_days": {s: _r(v, 4) for s, v in norms.items()},
        "stalled_deal_ids": sorted(ids[stalled].tolist()),
        "stalled_days_over_planted_p90": "2-4x for the stalled deals; normal open deals below the planted p75",
        "invoice_deal": {"deal_id": str(inv["deal_id"]), "amount": 200000, "currency": "EUR",
                         "stage": "Invoicing", "days_in_stage": _r(inv["days_in_stage"], 6),
                         "owner_id": _uid(w, inv["owner"])},
        "cap": CAP,
        "over_cap_owners": [_uid(w, u) for u, n in by_owner.items() if n > CAP],
        "max_open_deals_other_owners": int(by_owner[by_owner <= CAP].max()),
        "share_without_next_task": _r((~flags["next"]).mean(), 6),
        "share_with_overdue_task": _r(flags["overdue"].mean(), 6),
        "deal_ids_without_next_task": sorted(ids[flags.index[~flags["next"]]].tolist()),
        "deal_ids_with_overdue_task": sorted(ids[flags.index[flags["overdue"]]].tolist()),
        "weighted_value_definition": "amount in EUR x the probability of the deal's stage (stages table)",
    }


def _truth_bookings(w) -> dict:
    d = w.deals
    won = d[d["status"] == "won"]
    months = _months(START, 0.0)
    level = []
    for r in months.itertuples():
        full = np.arange(r.start, r.end)
        cover = np.arange(max(r.start, START), min(r.end, 0.0))
        frac = _is_weekday(cover).sum() / _is_weekday(full).sum()
        years = ((r.start + r.end) / 2 - START) / 365.25
        level.append((1 + TREND_PER_YEAR * years) * SEASONAL[r.m] * frac)
    level = np.array(level)
    total = won["eur"].sum()
    by_month = won.groupby(_month_of(won["closed"].to_numpy()))["eur"].sum()
    by_week = won.groupby(_week_of(won["closed"].to_numpy()))["eur"].sum()
    weeks = START + 7.0 * np.arange(HISTORY_WEEKS)
    return {
        "what": "won revenue in EUR by closed_at (deals won at as_of)",
        "model": "expected bookings of a month = base_monthly_eur x (1 + trend_per_year x years from "
                 "history_start to mid-month) x seasonal_factors_by_month[month] (x the share of the "
                 "month's weekdays inside the history for the partial first and last months)",
        "trend_per_year": TREND_PER_YEAR,
        "seasonal_factors_by_month": {str(k): v for k, v in SEASONAL.items()},
        "history_start": _day_text(START),
        "base_monthly_eur": _r(total / level.sum(), 2),
        "won_deals": int(len(won)), "won_eur": _r(total, 2),
        "expected_monthly_eur": {m: _r(total * v / level.sum(), 2) for m, v in zip(months["month"], level)},
        "realised_monthly_eur": {m: _r(by_month.get(m, 0.0), 2) for m in months["month"]},
        "realised_weekly_eur": {_day_text(wk): _r(by_week.get(wk, 0.0), 2) for wk in weeks},
        "driver": "won deals' close dates are drawn from this intensity; deals are created a cycle "
                  "earlier, so creation follows the same pattern about 1-2 months earlier",
    }


def _truth_reps(w) -> dict:
    d = w.deals
    closed = d[d["status"] != "open"]
    g = closed.groupby("owner")["status"]
    reps = _reps(w.users)
    return {
        "kind": "logit shift of a rep's win probability (closed deals)", "sd": 0.4,
        "by_owner": {r.user_id: _r(r.skill, 3) for r in reps.itertuples()},
        "realised_win_rate": {_uid(w, u): {"won": int((s == "won").sum()), "lost": int((s == "lost").sum()),
                                           "rate": _r((s == "won").mean())} for u, s in g},
        "teams": {u: t for u, t in zip(reps["user_id"], reps["team"])},
    }


def _truth_activity(w) -> dict:
    plan = w.plan
    d = w.deals
    a = w.activities
    calls = a[a["type"] == "call"].groupby(["owner", _week_of(a.loc[a["type"] == "call", "created"])]).size()
    meet = a[(a["type"] == "meeting") & a["completed"].notna()]
    meet = meet.groupby(["owner", _week_of(meet["due"])]).size()
    key = pd.MultiIndex.from_arrays([plan["owner"], plan["week"]])
    got_calls = calls.reindex(key).fillna(0).to_numpy()
    got_meet = meet.reindex(key).fillna(0).to_numpy()
    if not (np.array_equal(got_calls, plan["calls"]) and np.array_equal(got_meet, plan["meetings"])):
        raise AssertionError("the Inside Sales activity plan was not realised")
    closed = d[d["status"] != "open"]
    cw = closed.assign(week=_week_of(closed["closed"].to_numpy()))
    wins = cw.groupby(["owner", "week"])["status"].agg(lambda s: int((s == "won").sum()))
    n = cw.groupby(["owner", "week"]).size()
    plan = plan.assign(won=wins.reindex(key).fillna(0).to_numpy(), closed=n.reindex(key).fillna(0).to_numpy())
    best = plan["calls"].between(*BEST_CALLS) & (plan["meetings"] >= MIN_MEETINGS)
    zones = {"best": best,
             "calls_in_range_fewer_meetings": plan["calls"].between(*BEST_CALLS) & ~best,
             "calls_below_range": plan["calls"] < BEST_CALLS[0],
             "calls_above_range": plan["calls"] > BEST_CALLS[1]}
    realised = {}
    for z, m in zones.items():
        won, cl = plan.loc[m, "won"].sum(), plan.loc[m, "closed"].sum()
        realised[z] = {"rep_weeks": int(m.sum()), "closed_deals": int(cl), "won": int(won),
                       "win_rate": _r(won / cl if cl else np.nan)}
    return {
        "team": TEAM_INSIDE, "owners": sorted({_uid(w, u) for u in plan["owner"]}),
        "weeks": {"first": _day_text(plan["week"].min()), "last": _day_text(plan["week"].max())},
        "best_calls_per_week": list(BEST_CALLS), "min_meetings_per_week": MIN_MEETINGS,
        "calls_per_week_range": [int(plan["calls"].min()), int(plan["calls"].max())],
        "meetings_per_week_range": [int(plan["meetings"].min()), int(plan["meetings"].max())],
        "logit_effect": "best zone +2.0; 100-125 calls with < 5 meetings +0.2; below 100 calls "
                        "-0.5 - 0.01 x (100 - calls); above 125 calls -0.8 - 0.03 x (calls - 125); "
                        "outside the best zone +0.2 with >= 5 meetings; added to the rep's skill",
        "definitions": {"calls": "call activities owned by the rep with created_at in the ISO week",
                        "meetings": "meeting activities owned by the rep, completed, with due_at in the ISO week "
                                    "(created_at and completed_at fall in the same week)",
                        "win_rate": "won / (won + lost) over the rep's deals with closed_at in that week"},
        "realised": realised,
    }


def _truth_response(w) -> dict:
    a, leads = w.activities, w.leads
    ft = a[(a["lead"] >= 0) & a["type"].isin(["call", "email"]) & (a["direction"] == "outbound")]
    first = ft.groupby("lead")["created"].min()
    delay = (first - leads["created"].reindex(first.index)) * 1440.0
    return {
        "delay": {"distribution": "lognormal", "median_minutes": SPEED_MEDIAN_MIN, "sigma": SPEED_SIGMA},
        "channel": "first outbound call (60%, once calls are logged) or email linked by lead_id",
        "leads": int(len(leads)), "touched": int(len(first)),
        "realised_median_minutes": _r(delay.median(), 3),
        "share_within_5_min": _r((delay <= 5).mean()), "share_within_1_h": _r((delay <= 60).mean()),
        "share_within_1_day": _r((delay <= 1440).mean()),
    }


def _truth_missed(w) -> dict:
    a = w.activities
    inb = a[(a["type"] == "call") & (a["direction"] == "inbound")]
    wk = _week_of(inb["created"].to_numpy())
    rate = (inb["outcome"] == "missed").groupby(wk).mean()
    bad = w.activities.attrs["bad_week"]
    others = rate.drop(bad)
    miss = inb[inb["outcome"] == "missed"]
    cb = a[(a["type"] == "call") & (a["direction"] == "outbound") & (a["acc"] >= 0)]
    m = pd.merge_asof(miss[["created", "acc"]].sort_values("created"),
                      cb[["created", "acc"]].rename(columns={"created": "cb"}).sort_values("cb"),
                      left_on="created", right_on="cb", by="acc", direction="forward")
    gap = (m["cb"] - m["created"]) * 1440.0
    ok = gap <= 7 * 1440
    base_calls = inb[wk != bad]
    return {
        "window_start": _day_text(CALL_START), "calls": int(len(inb)),
        "calls_per_week_mean": _r(len(inb) / CALL_WEEKS, 2),
        "baseline_rate": MISSED_BASE,
        "realised_baseline_rate": _r((base_calls["outcome"] == "missed").mean()),
        "bad_week_start": _day_text(bad), "bad_week_planted_rate": MISSED_BAD,
        "bad_week_rate": _r(rate[bad]), "max_other_week_rate": _r(others.max()),
        "callback_share": _r(ok.mean()), "callback_median_delay_minutes": _r(gap[ok].median(), 2),
        "weekly_missed_rate": {_day_text(k): _r(v) for k, v in rate.items()},
        "definitions": {"missed": "inbound call with outcome 'missed'",
                        "callback": "an outbound call with the same account_id within 7 days after the "
                                    "missed call",
                        "week": "ISO week (Monday start) of created_at"},
    }


def _transactions(w) -> pd.DataFrame:
    o = w.orders
    return o.groupby(["acc", "day"]).agg(revenue=("revenue", "sum"), products=("product", frozenset)).reset_index()


def _truth_customers(w) -> dict:
    cust = w.customers
    tx = _transactions(w)
    rep = tx.groupby("acc").size() - 1
    T = -cust["day0"].to_numpy() / 7.0
    o = w.orders
    rev = o.groupby("acc")["revenue"].sum().sort_values(ascending=False)
    top = int(np.ceil(0.2 * len(rev)))
    n_tx = len(tx)
    has = lambda p: tx["products"].map(lambda s: p in s)  # noqa: E731
    pa, pb = has(PAIR[0]).mean(), has(PAIR[1]).mean()
    pab = tx["products"].map(lambda s: PAIR[0] in s and PAIR[1] in s).mean()
    ret = _retention(cust, tx, w.weak_month)
    return {
        "clv": {**BGNBD, "p": GG["p"], "q": GG["q"], "gamma": GG["gamma"] * SPEND_SCALE,
                "gamma_units": "EUR (15 x spend scale 1000)", "spend_scale_eur": SPEND_SCALE,
                "time_unit": "week", "calibration_end": AS_OF_END.strftime("%Y-%m-%d"),
                "customers": int(len(cust)), "transactions": int(n_tx),
                "transaction": "all order lines of one account with the same ordered_at (a day)",
                "first_purchase": "the order of the customer's first won deal (revenue = deal amount in EUR); "
                                  "BG/NBD counts repeat transactions after it, Gamma-Gamma describes the value "
                                  "of repeat transactions",
                "T": "weeks from the first purchase day to calibration_end",
                "realised": {"mean_repeat_transactions": _r(rep.mean()), "share_with_repeat": _r((rep > 0).mean()),
                             "mean_T_weeks": _r(T.mean(), 2),
                             "mean_repeat_value_eur": _r(tx.merge(cust[["acc", "day0"]], on="acc")
                                                          .query("day > day0")["revenue"].mean(), 2)}},
        "cross_sell_pair": {"products": list(PAIR), "lift": _r(pab / (pa * pb), 3), "support": _r(pab),
                            "definition": "lift = P(both in a transaction) / (P(A) P(B)) over transactions"},
        "revenue_top20_share": _r(rev.iloc[:top].sum() / rev.sum()),
        "revenue_top20_definition": "order revenue (EUR, all time to as_of) of the ceil(20%) customers with "
                                    "the most revenue / all order revenue",
        "retention": {"better_source": "referral", "weak_month": w.weak_month,
                      "method": "dropout probabilities p drawn from Beta(a, b) for all customers, then the lowest "
                                "draws given to referral customers and the highest ones to the weak month's "
                                "customers (a permutation independent of lambda: the population stays BG/NBD); "
                                "dropout acts after repeat purchases, so it shows in weeks 27-52 and in the "
                                "number of repeat purchases, not in the first repeat",
                      "cohort": "customers by the month of their first purchase (first won deal)",
                      "realised": ret,
                      "mean_p": {"referral": _r(cust.loc[cust["source"] == "referral", "p"].mean()),
                                 "weak_month": _r(cust.loc[cust["month"] == w.weak_month, "p"].mean()),
                                 "all": _r(cust["p"].mean())}},
        "products": {p: {"margin": m} for p, m in PRODUCTS.items()},
    }


def _retention(cust, tx, weak_month) -> dict:
    """Among customers acquired at least 52 weeks before as_of_end: the share buying again
    within 52 weeks of their first purchase and within weeks 27-52, by group."""
    old = cust[cust["day0"] <= -364][["acc", "day0", "source", "month"]]
    rep = tx.merge(old, on="acc")
    age = rep["day"] - rep["day0"]
    any52 = rep[(age > 0) & (age <= 364)].groupby("acc").size().reindex(old["acc"]).fillna(0).to_numpy()
    late = rep[(age > 182) & (age <= 364)].groupby("acc").size().reindex(old["acc"]).fillna(0).to_numpy()
    groups = {"referral": (old["source"] == "referral").to_numpy(),
              "other_sources": (old["source"] != "referral").to_numpy(),
              "weak_month": (old["month"] == weak_month).to_numpy(),
              "other_months": (old["month"] != weak_month).to_numpy()}
    return {g: {"customers": int(m.sum()), "repeat_within_52_weeks": _r((any52[m] > 0).mean()),
                "buying_in_weeks_27_52": _r((late[m] > 0).mean()),
                "repeat_purchases_per_customer_52_weeks": _r(any52[m].mean())}
            for g, m in groups.items()}


def _sla_weekly(tk) -> pd.DataFrame:
    resolved = tk["resolved"].notna()
    due_passed = tk["sla_due"] < 0
    counted = resolved | due_passed
    met = resolved & (tk["resolved"] <= tk["sla_due"])
    f = pd.DataFrame({"week": _week_of(tk["created"].to_numpy()), "counted": counted, "met": met & counted})
    g = f.groupby("week").agg(n=("counted", "sum"), met=("met", "sum"))
    g["rate"] = g["met"] / g["n"]
    return g


def _truth_service(w) -> dict:
    tk, sv = w.tickets, w.surveys
    g = _sla_weekly(tk)
    other = g.drop(w.breach_week)
    other = other[other["n"] >= 1]
    rec_acc = w.recurring
    acc_ids = w.accounts["account_id"]
    rc = tk[tk["category"] == RECURRING_CATEGORY].groupby("acc").size()
    nps = sv[sv["kind"] == "nps"]["score"]
    csat = sv[sv["kind"] == "csat"]["score"]
    return {
        "service": {
            "tickets": int(len(tk)), "sla_hours_by_priority": dict(SLA_HOURS),
            "sla_compliance_planted": SLA_TARGET,
            "sla_compliance": _r(g["met"].sum() / g["n"].sum()),
            "sla_breach_week": _day_text(w.breach_week),
            "sla_breach_week_compliance": _r(g.at[w.breach_week, "rate"]),
            "min_other_week_compliance": _r(other["rate"].min()),
            "sla_definition": "met = resolved_at <= sla_due_at; a ticket unresolved at as_of counts as "
                              "breached once sla_due_at < as_of_end and is left out before; week = ISO week "
                              "of created_at",
            "recurring_category": RECURRING_CATEGORY,
            "recurring_accounts": sorted(acc_ids.loc[list(rec_acc)].tolist()),
            "recurring_tickets_per_account": {str(acc_ids.at[a]): int(rc.get(a, 0)) for a in rec_acc},
            "max_recurring_tickets_other_accounts": int(rc.drop(list(rec_acc), errors="ignore").max()
                                                        if len(rc.drop(list(rec_acc), errors="ignore")) else 0),
        },
        "nps": {"promoter_share": NPS_PROMOTER, "detractor_share": NPS_DETRACTOR,
                "true_nps": round(100 * (NPS_PROMOTER - NPS_DETRACTOR), 1), "answers": int(len(nps)),
                "realised_promoter_share": _r((nps >= 9).mean()),
                "realised_detractor_share": _r((nps <= 6).mean())},
        "csat": {"answers": int(len(csat)), "mean_score": _r(csat.mean(), 3),
                 "planted": "after ~30% of resolved tickets; lower when the SLA was breached"},
    }


def _truth_campaigns(w) -> dict:
    c = w.campaigns
    roi = (c["revenue"] - c["spend"]) / c["spend"].where(c["spend"] > 0)
    mail = c[c["sends"].notna()]
    bounce = mail.groupby("channel")["bounces"].sum() / mail.groupby("channel")["sends"].sum()
    return {
        "negative_roi_campaign_id": c.attrs["negative"],
        "high_bounce_channel": str(bounce.idxmax()),
        "bounce_rate_by_channel": {k: _r(v) for k, v in bounce.items()},
        "roi_by_campaign": {i: _r(v) for i, v in zip(c["campaign_id"], roi)},
        "won_revenue_eur_by_campaign": {i: _r(v, 2) for i, v in zip(c["campaign_id"], c["revenue"])},
        "definitions": {"won_revenue": "EUR amount of deals won at as_of whose lead has the campaign_id "
                                       "(first touch)", "roi": "(won revenue - spend) / spend",
                        "bounce_rate": "bounces / sends over the channel's campaigns"},
    }


def _truth_goals(w) -> dict:
    cur, el = w.current, w.elapsed
    t = w.targets
    now = t[(t["month"] == cur["month"]) & (t["owner"] >= 0)]
    rows, off_by_metric = {}, {}
    for r in now.itertuples():
        v = w.actual.get((r.owner, r.metric, cur["month"]), 0.0)
        share = v / el / r.target
        if share < 0.9:
            off_by_metric.setdefault(r.metric, []).append(_uid(w, r.owner))
        if r.metric == "revenue":
            rows[_uid(w, r.owner)] = {"actual": _r(v, 2), "target": r.target, "projection": _r(v / el, 2),
                                      "projection_share_of_target": _r(share)}
    return {
        "period": "month", "period_start": _day_text(cur["start"]), "period_end": _day_text(cur["end"] - 1),
        "working_days_elapsed": _working_days(cur["start"], 0.0),
        "working_days_total": _working_days(cur["start"], cur["end"]),
        "share_elapsed": _r(el, 6),
        "projection": "actual to date (events before as_of_end) / share of the period's working days "
                      "(Mon-Fri, no holidays) elapsed by as_of",
        "metric": "revenue", "off_pace_threshold": 0.6, "on_pace_threshold": 0.9,
        "off_pace_owners": sorted(u for u, x in rows.items() if x["projection_share_of_target"] < 0.6),
        "planted_off_pace_owners": sorted(_uid(w, u) for u in w.off_pace),
        "min_share_other_owners": _r(min([x["projection_share_of_target"] for u, x in rows.items()
                                          if x["projection_share_of_target"] >= 0.6] or [np.nan])),
        "off_pace_by_metric": {m: sorted(v) for m, v in off_by_metric.items()},
        "revenue_by_owner": rows,
        "actuals": {"revenue": "EUR of deals won (closed_at) in the period, by deal owner",
                    "won_deals": "deals won in the period", "calls": "call activities by created_at",
                    "meetings": "completed meetings by due_at", "new_leads": "leads by created_at and owner"},
        "owners_with_targets": "sales reps (Inside Sales, Field Sales East/West, Account Management) for the "
                               "months they were employed: revenue and won_deals every month; Inside Sales "
                               "also new_leads every month and calls and meetings since the integrations; the "
                               "four sales teams the same metrics as their reps",
    }


def _truth(ctx, w) -> dict:
    d = w.deals
    cust = _truth_customers(w)
    svc = _truth_service(w)
    return {
        "generator": {"seed": ctx.seed, "size": ctx.size, "deals": int(len(d))},
        "as_of": AS_OF.strftime("%Y-%m-%d"), "as_of_end": AS_OF_END.strftime("%Y-%m-%d %H:%M:%S"),
        "extracted_at": EXTRACTED_AT.strftime("%Y-%m-%d %H:%M:%S"), "history_start": _day_text(START),
        "call_logging_start": _day_text(CALL_START), "timezone": "UTC", "currency": "EUR",
        "definitions": {
            "status": "won/lost if closed_at < as_of_end, else open",
            "stage_at_as_of": "last stage_history row with entered_at < as_of_end",
            "stage_norm": "90th percentile of completed stage visits before as_of_end",
            "open_task": "type task or meeting, due_at set, created_at < as_of_end, completed_at empty or >= "
                         "as_of_end; next task: due_at >= as_of_end; overdue: due_at < as_of_end",
            "eur": "amount x rate_to_reporting of the latest USD row dated on or before created_at",
        },
        "sources": _truth_sources(w),
        "stages": _truth_stages(w),
        "pipeline": _truth_pipeline(w),
        "bookings": _truth_bookings(w),
        "rep_effects": _truth_reps(w),
        "activity_outcome": _truth_activity(w),
        "lead_response": _truth_response(w),
        "missed_calls": _truth_missed(w),
        "clv": cust["clv"], "cross_sell_pair": cust["cross_sell_pair"],
        "revenue_top20_share": cust["revenue_top20_share"],
        "revenue_top20_definition": cust["revenue_top20_definition"],
        "retention": cust["retention"], "products": cust["products"],
        "service": svc["service"], "nps": svc["nps"], "csat": svc["csat"],
        "campaigns": _truth_campaigns(w),
        "goals": _truth_goals(w),
        "special_rows": {"html_deal_id": str(d["deal_id"].iat[d.attrs["script"]]),
                         "html_account_id": str(w.accounts["account_id"].iat[w.accounts.attrs["html"]]),
                         "none_lost_reason_deal_ids": sorted(d.loc[d["lost_reason"] == "None", "deal_id"])},
    }


# ---------------------------------------------------------------- export: text tables
def _ref(ids, idx) -> np.ndarray:
    """Ids of integer references (-1 -> empty)."""
    idx = np.asarray(idx, dtype=int)
    out = np.full(len(idx), "", dtype=object)
    ok = idx >= 0
    out[ok] = np.asarray(ids, dtype=object)[idx[ok]]
    return out


def _frame(table: str, cols: dict) -> pd.DataFrame:
    names = TABLES[table].column_names
    if list(cols) != names:
        raise AssertionError(f"{table}: columns {list(cols)} are not the canonical {names}")
    n = max(len(v) for v in cols.values() if np.ndim(v))
    arrays = {k: np.broadcast_to(np.asarray(v, dtype=object), (n,)).astype(str) for k, v in cols.items()}
    return pd.DataFrame({k: pd.array(v, dtype="str") for k, v in arrays.items()})


def _text_tables(w) -> dict[str, pd.DataFrame]:
    """Every table as the export writes it (text), clean rows only, canonical column order."""
    u, d, acc, c, leads = w.users, w.deals, w.accounts, w.contacts, w.leads
    uid, did, aid, lid = u["user_id"].to_numpy(), d["deal_id"].to_numpy(), acc["account_id"].to_numpy(), \
        leads["lead_id"].to_numpy()
    stage = np.where(d["open"], np.array(STAGE_NAMES)[d["k"].to_numpy() - 1],
                     np.where(d["won"], WON_STAGE, LOST_STAGE))
    t = {}
    t["users"] = _frame("users", {
        "user_id": uid, "name": u["name"], "team": u["team"], "role": u["role"],
        "active": np.where(u["active"], "true", "false"), "hired_at": _date_text(u["hired"])})
    t["accounts"] = _frame("accounts", {
        "account_id": aid, "name": acc["name"], "industry": acc["industry"], "segment": acc["segment"],
        "region": acc["region"], "owner_id": _ref(uid, acc["owner"]), "created_at": _date_text(acc["created"])})
    t["accounts"] = t["accounts"].iloc[np.argsort(acc["created"].to_numpy(), kind="stable")].reset_index(drop=True)
    t["contacts"] = _frame("contacts", {
        "contact_id": c["contact_id"], "account_id": _ref(aid, c["acc"]), "name": c["name"], "email": c["email"],
        "phone": c["phone"], "created_at": _date_text(c["created"]), "updated_at": _date_text(c["updated"])})
    t["leads"] = _frame("leads", {
        "lead_id": lid, "created_at": _ts_text(leads["created"]), "source": leads["source"],
        "campaign_id": leads["campaign"], "owner_id": _ref(uid, leads["owner"]), "status": leads["status"],
        "converted_at": _ts_text(leads["converted"]), "deal_id": _ref(did, leads["deal"]),
        "disqualified_reason": leads["reason"], "email": leads["email"], "phone": leads["phone"],
        "company": leads["company"]})
    t["deals"] = _frame("deals", {
        "deal_id": did, "name": d["name"], "account_id": _ref(aid, d["acc"]), "owner_id": _ref(uid, d["owner"]),
        "pipeline": "Sales", "stage": stage, "status": d["status"], "amount": _num_text(d["amount"]),
        "currency": d["currency"], "source": d["source"], "created_at": _ts_text(d["created"]),
        "closed_at": _ts_text(np.where(d["open"], np.nan, d["closed"])),
        "expected_close_at": _date_text(d["expected_close"]), "lost_reason": d["lost_reason"],
        "deal_type": d["deal_type"], "forecast_category": ""})
    h = w.history
    t["stage_history"] = _frame("stage_history", {"deal_id": h["deal_id"], "stage": h["stage"],
                                                  "entered_at": _ts_text(h["entered"])})
    rows = [(s[0], i + 1, s[1], "false", "false") for i, s in enumerate(STAGES)]
    rows += [(WON_STAGE, 6, 1.0, "true", "true"), (LOST_STAGE, 7, 0.0, "true", "false")]
    st = pd.DataFrame(rows, columns=["stage", "order", "probability", "is_closed", "is_won"])
    t["stages"] = _frame("stages", {"pipeline": "Sales", "stage": st["stage"], "order": st["order"],
                                    "probability": _num_text(st["probability"]), "is_closed": st["is_closed"],
                                    "is_won": st["is_won"]})
    a = w.activities
    t["activities"] = _frame("activities", {
        "activity_id": a["activity_id"], "type": a["type"], "owner_id": _ref(uid, a["owner"]),
        "deal_id": _ref(did, a["deal"]), "lead_id": _ref(lid, a["lead"]), "account_id": _ref(aid, a["acc"]),
        "created_at": _ts_text(a["created"]), "due_at": _ts_text(a["due"]),
        "completed_at": _ts_text(a["completed"]),
        "direction": a["direction"], "outcome": a["outcome"], "duration_s": _num_text(a["duration"], 0)})
    o = w.orders
    t["orders"] = _frame("orders", {
        "order_id": o["order_id"], "account_id": _ref(aid, o["acc"]), "deal_id": _ref(did, o["deal"]),
        "ordered_at": _date_text(o["day"]), "product": o["product"], "quantity": _num_text(o["quantity"], 0),
        "revenue": _num_text(o["revenue"]), "cost": _num_text(o["cost"]), "currency": "EUR"})
    cp = w.campaigns
    t["campaigns"] = _frame("campaigns", {
        "campaign_id": cp["campaign_id"], "name": cp["name"], "channel": cp["channel"],
        "started_at": _date_text(cp["start"]), "ended_at": _date_text(cp["end"]), "spend": _num_text(cp["spend"]),
        "impressions": _num_text(cp["impressions"], 0), "clicks": _num_text(cp["clicks"], 0),
        "sends": _num_text(cp["sends"], 0), "opens": _num_text(cp["opens"], 0),
        "bounces": _num_text(cp["bounces"], 0)})
    tk = w.tickets
    t["tickets"] = _frame("tickets", {
        "ticket_id": tk["ticket_id"], "account_id": _ref(aid, tk["acc"]), "created_at": _ts_text(tk["created"]),
        "first_response_at": _ts_text(tk["first_response"]), "resolved_at": _ts_text(tk["resolved"]),
        "status": tk["status"], "priority": tk["priority"], "channel": tk["channel"], "category": tk["category"],
        "agent_id": _ref(uid, tk["agent"]), "sla_due_at": _ts_text(tk["sla_due"]),
        "reopened": np.where(tk["reopened"], "true", "false")})
    sv = w.surveys
    t["surveys"] = _frame("surveys", {
        "survey_id": sv["survey_id"], "account_id": _ref(aid, sv["acc"]),
        "ticket_id": _ref(tk["ticket_id"].to_numpy(), sv["ticket"]), "kind": sv["kind"],
        "score": _num_text(sv["score"], 0), "answered_at": _ts_text(sv["answered"])})
    tg = w.targets.sort_values(["start", "team", "owner", "metric"], kind="stable")
    t["targets"] = _frame("targets", {
        "owner_id": _ref(uid, tg["owner"]), "team": tg["team"], "metric": tg["metric"],
        "period_start": _date_text(tg["start"]), "period_end": _date_text(tg["end"]),
        "target": _num_text(tg["target"])})
    fx = w.fx
    t["fx_rates"] = _frame("fx_rates", {"currency": fx["currency"], "date": _date_text(fx["date"]),
                                        "rate_to_reporting": _num_text(fx["rate"], 4)})
    _check_times(t)
    for name, df in t.items():
        key = TABLES[name].key
        content = df.drop(columns=[key]) if key else df
        if content.duplicated().any() or (key and df[key].duplicated().any()):
            raise AssertionError(f"clean {name} has rows that look duplicated")
    return {name: t[name] for name in TABLES}


def _check_times(tables):
    """Every event time of the clean data lies before as_of_end (only planned times may be later)."""
    end = AS_OF_END.strftime("%Y-%m-%d %H:%M:%S")
    for name, df in tables.items():
        for col in TABLES[name].event_time_columns:
            v = df[col][df[col] != ""]
            late = v >= end[: len(v.iat[0])] if len(v) else v.astype(bool)
            if late.any():
                raise AssertionError(f"{name}.{col} has {int(late.sum())} times at or after as_of_end")


# ---------------------------------------------------------------- export: dirty rows
QUARANTINE_KINDS = ("duplicate_id", "bulk_duplicate", "double_submission", "close_before_create",
                    "unknown_stage", "future_date", "negative_amount", "zero_amount_won")
FLAG_KINDS = ("invalid_email", "invalid_phone", "duplicate_contact", "orphan")
DIRTY_KINDS = {
    "leads": {"duplicate_id": 1, "bulk_duplicate": 1, "double_submission": 2, "future_date": 1,
              "invalid_email": 2, "invalid_phone": 1},
    "contacts": {"duplicate_id": 1, "bulk_duplicate": 1, "future_date": 1, "invalid_email": 2,
                 "invalid_phone": 2, "duplicate_contact": 2, "orphan": 1},
    "accounts": {"duplicate_id": 2, "bulk_duplicate": 2, "future_date": 1, "orphan": 1},
    "deals": {"duplicate_id": 1, "bulk_duplicate": 1, "close_before_create": 1, "unknown_stage": 1,
              "future_date": 1, "negative_amount": 1, "zero_amount_won": 1, "orphan": 1},
    "activities": {"duplicate_id": 1, "bulk_duplicate": 1, "future_date": 1, "orphan": 1},
    "orders": {"duplicate_id": 1, "bulk_duplicate": 1, "future_date": 1, "negative_amount": 1, "orphan": 1},
    "tickets": {"duplicate_id": 1, "bulk_duplicate": 1, "future_date": 1, "orphan": 1},
}
ORPHAN_COLUMN = {"contacts": "account_id", "accounts": "owner_id", "deals": "account_id",
                 "activities": "deal_id", "orders": "deal_id", "tickets": "account_id"}
FUTURE_COLUMNS = {"leads": ("created_at",), "contacts": ("created_at", "updated_at"), "accounts": ("created_at",),
                  "deals": ("created_at",), "activities": ("created_at",), "orders": ("ordered_at",),
                  "tickets": ("created_at",)}


def _allocate(n: int, weights: dict, at_least_one: bool = True) -> dict:
    """n split over kinds in proportion to weights (largest remainder), each kind at least once if
    n allows (and ``at_least_one``)."""
    kinds = list(weights)
    w = np.array([weights[k] for k in kinds], float)
    raw = n * w / w.sum()
    k = np.floor(raw).astype(int)
    if at_least_one and n >= len(kinds):
        k = np.maximum(k, 1)
    while k.sum() > n:
        k[np.argmax(k)] -= 1
    order = np.argsort(-(raw - np.floor(raw)))
    i = 0
    while k.sum() < n:
        k[order[i % len(kinds)]] += 1
        i += 1
    return dict(zip(kinds, k.tolist()))


class _Dirt:
    """Dirty rows of one table: flags change rows in place, quarantine kinds add rows after a base row."""

    def __init__(self, name, df, rng, next_id, eligible):
        self.name, self.df, self.rng = name, df.copy(), rng
        self.key = TABLES[name].key
        self.next_id = next_id
        self.eligible = eligible  # kind -> boolean mask over clean rows
        self.used = np.zeros(len(df), bool)
        self.extras: list[tuple[int, dict, str, str]] = []  # base position, row, kind, partner key
        self.flags: list[tuple[int, str, str]] = []  # position, kind, partner key

    def pick(self, kind, k):
        mask = self.eligible.get(kind, np.ones(len(self.df), bool)) & ~self.used
        pos = self.rng.choice(np.flatnonzero(mask), size=k, replace=False)
        self.used[pos] = True
        return pos

    def row(self, pos) -> dict:
        return self.df.iloc[int(pos)].to_dict()


def _future(rng) -> str:
    t = EXTRACTED_AT + pd.Timedelta(days=float(rng.uniform(300, 430)))
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _bad_email(rng, email: str) -> str:
    local, dom = email.split("@", 1)
    first = local.split(".")[0]
    forms = (f"{local}@@{dom.split('.')[0]}", f"{first} at {dom}", f"{local}@{dom.split('.')[0]}",
             f"{local}.{dom}")
    return forms[int(rng.integers(len(forms)))]


def _case_variant(rng, email: str) -> str:
    local, dom = email.split("@", 1)
    forms = (".".join(p.capitalize() for p in local.split(".")) + "@" + dom.capitalize(), email.upper(),
             " " + email + " ", local.capitalize() + "@" + dom.upper())
    return forms[int(rng.integers(len(forms)))]


def _apply_kind(dt: _Dirt, kind: str, k: int, ctx_ids: dict):
    """Plant k dirty rows of one kind (duplicate_contact: k/2 pairs, both rows flagged)."""
    rng = dt.rng
    key = dt.key
    for pos in dt.pick(kind, k // 2 if kind == "duplicate_contact" else k):
        r = dt.row(pos)
        base_key = r[key]
        if kind == "invalid_email":
            dt.df.iat[pos, dt.df.columns.get_loc("email")] = _bad_email(rng, r["email"])
            dt.flags.append((pos, kind, ""))
        elif kind == "invalid_phone":
            bad = str(rng.choice(["12", "call me", "0", "+49", "phone"]))
            dt.df.iat[pos, dt.df.columns.get_loc("phone")] = bad
            dt.flags.append((pos, kind, ""))
        elif kind == "duplicate_contact":
            cand = np.flatnonzero(~dt.used & (np.arange(len(dt.df)) < pos) & (dt.df["email"] != "").to_numpy())
            j = int(rng.choice(cand))
            dt.used[j] = True
            other = dt.row(j)
            for col, val in (("email", _case_variant(rng, other["email"])), ("name", other["name"]),
                             ("account_id", other["account_id"])):
                dt.df.iat[pos, dt.df.columns.get_loc(col)] = val
            dt.flags.append((pos, kind, other[key]))
            dt.flags.append((j, kind, r[key]))
        elif kind == "orphan":
            col = ORPHAN_COLUMN[dt.name]
            dt.df.iat[pos, dt.df.columns.get_loc(col)] = ctx_ids["orphan"][col]()
            dt.flags.append((pos, kind, ""))
        else:
            dt.extras.append((pos, _quarantine_row(dt, kind, r, rng), kind, base_key))


def _quarantine_row(dt: _Dirt, kind: str, r: dict, rng) -> dict:
    r = dict(r)
    if kind == "duplicate_id":
        return r
    r[dt.key] = dt.next_id()
    if kind == "bulk_duplicate":
        return r
    if kind == "double_submission":
        t = pd.Timestamp(r["created_at"]) + pd.Timedelta(seconds=int(rng.integers(60, 300)))
        r.update(created_at=t.strftime("%Y-%m-%d %H:%M:%S"), status="new", converted_at="", deal_id="",
                 disqualified_reason="")
    elif kind == "close_before_create":
        t = pd.Timestamp(r["created_at"]) - pd.Timedelta(days=float(rng.uniform(1, 30)))
        r["closed_at"] = t.strftime("%Y-%m-%d %H:%M:%S")
    elif kind == "unknown_stage":
        r["stage"] = str(rng.choice(["Verbal Commit", "Contract Review", "On Hold"]))
    elif kind == "future_date":
        for col in FUTURE_COLUMNS[dt.name]:
            r[col] = _future(rng)[:10] if col == "ordered_at" else _future(rng)
        if dt.name == "contacts":
            r["updated_at"] = r["created_at"]
        if dt.name == "deals":
            r.update(status="open", stage="Qualification", closed_at="", lost_reason="", expected_close_at="")
        if dt.name == "leads":
            r.update(status="new", converted_at="", deal_id="", disqualified_reason="")
        if dt.name == "activities":
            r.update(due_at="", completed_at="")
        if dt.name == "tickets":
            r.update(first_response_at="", resolved_at="", status="open", sla_due_at="", reopened="false")
    elif kind == "negative_amount":
        col = "amount" if dt.name == "deals" else "revenue"
        r[col] = "-" + r[col]
        if dt.name == "orders":
            r["cost"] = "-" + r["cost"]
    elif kind == "zero_amount_won":
        r["amount"] = "0"
    return r


def _eligible(name, df, w) -> dict:
    """Which clean rows each dirty kind may touch: never a row a planted truth depends on."""
    n = len(df)
    e = {}
    if name in ("leads", "contacts"):
        e["invalid_email"] = (df["email"] != "").to_numpy()
        e["invalid_phone"] = (df["phone"] != "").to_numpy()
        e["duplicate_contact"] = (df["email"] != "").to_numpy() & (np.arange(n) >= 20)  # a partner comes before
    if name == "deals":
        special = df["deal_id"].isin(w.deals.loc[w.deals["stalled"] | (w.deals["lost_reason"] == "None"),
                                                 "deal_id"]) | (df["name"] == "<script>alert(1)</script>")
        e["orphan"] = ((df["status"] == "lost") & ~special).to_numpy()
        e["close_before_create"] = (df["status"] != "open").to_numpy() & ~special.to_numpy()
        e["unknown_stage"] = (df["status"] == "open").to_numpy() & ~special.to_numpy()
        e["zero_amount_won"] = (df["status"] == "won").to_numpy()
        for k in ("duplicate_id", "bulk_duplicate", "future_date", "negative_amount"):
            e[k] = ~special.to_numpy()
    if name == "activities":
        plain = df["type"].isin(["call", "email"]).to_numpy()
        e["orphan"] = (df["deal_id"] != "").to_numpy() & df["type"].isin(["email", "note"]).to_numpy()
        for k in ("duplicate_id", "bulk_duplicate", "future_date"):
            e[k] = plain & ((df != "").sum(axis=1) >= 7).to_numpy()
    if name == "orders":
        e["orphan"] = (df["deal_id"] != "").to_numpy()
    if name == "tickets":
        rec = set(_truth_service(w)["service"]["recurring_accounts"])
        e["orphan"] = ((df["category"] != RECURRING_CATEGORY) & ~df["account_id"].isin(rec)).to_numpy()
    if name == "accounts":
        e["orphan"] = (df["name"] != "Smith & Sons <b>bold</b>").to_numpy()
    return {k: np.asarray(v, bool) for k, v in e.items()} | {"_n": np.ones(n, bool)}


def _id_maker(name, df, key):
    """New ids in the table's own format, after the largest clean id."""
    ids = df[key]
    if name == "accounts":
        used = set(ids)
        nums = iter(n for n in range(60000, 99999) if f"{n:07d}" not in used)
        return lambda: f"{next(nums):07d}"
    prefix = ids.iat[0].rstrip("0123456789")
    width = len(ids.iat[0]) - len(prefix)
    nums = iter(range(int(ids.str[len(prefix):].astype(int).max()) + 1, 10 ** width))
    return lambda: f"{prefix}{next(nums):0{width}d}"


def _orphan_makers(tables) -> dict:
    """Reference values that exist nowhere (in the clean rows or the dirty extras)."""
    acc = set(tables["accounts"]["account_id"])
    acc_nums = iter(n for n in range(99999, 60000, -1) if f"{n:07d}" not in acc)
    did = tables["deals"]["deal_id"]
    width = len(did.iat[0]) - 1
    deal_nums = iter(range(10 ** width - 1, 0, -1))
    return {"account_id": lambda: f"{next(acc_nums):07d}", "deal_id": lambda: f"D{next(deal_nums):0{width}d}",
            "owner_id": lambda: "U099"}


def _inject_dirt(ctx, tables, w) -> tuple[dict, dict]:
    """Plant dirty rows at DIRTY_RATE of each table's clean rows; extras go after their base row
    at a random later position. Returns the final tables and truth["dirty"]."""
    rng = ctx.rng("dirt")
    orphans = _orphan_makers(tables)
    out = dict(tables)
    rows, by_table = [], {}
    for name, weights in DIRTY_KINDS.items():
        df = tables[name]
        n_dirty = int(round(DIRTY_RATE * len(df)))
        dt = _Dirt(name, df, rng, _id_maker(name, df, TABLES[name].key), _eligible(name, df, w))
        alloc = _allocate(n_dirty, weights)
        if alloc.get("duplicate_contact", 0) % 2:  # planted in pairs: both contacts share an address
            alloc["duplicate_contact"] -= 1
            alloc["invalid_email"] += 1
        for kind in [k for k in alloc if k in FLAG_KINDS] + [k for k in alloc if k not in FLAG_KINDS]:
            _apply_kind(dt, kind, alloc[kind], {"orphan": orphans})
        final, positions = _arrange(dt, rng)
        out[name] = final
        for pos, kind, partner in dt.flags:
            rows.append(_dirty_row(name, positions["clean"][pos], final, kind, partner))
        for j, (_, _, kind, partner) in enumerate(dt.extras):
            rows.append(_dirty_row(name, positions["extra"][j], final, kind, partner))
        by_table[name] = {"clean_rows": int(len(df)), "dirty_rows": n_dirty, "rows_written": int(len(final)),
                          "quarantine": int(len(dt.extras)), "flag": int(len(dt.flags)),
                          "by_kind": {k: v for k, v in alloc.items() if v}}
    rows.sort(key=lambda r: (list(DIRTY_KINDS).index(r["table"]), r["row_index"]))
    return out, {
        "rate": DIRTY_RATE,
        "definition": "per table, round(rate x clean rows) dirty rows: quarantine kinds are extra rows "
                      "(new ids, no child rows; duplicate_id repeats an id), flag kinds modify clean rows in "
                      "place (duplicate_contact in pairs: one row's email is changed to another's in other "
                      "case/whitespace, both rows are listed, each with 'of' = the other's key); row_index "
                      "is the 0-based position in the written CSV (header excluded)",
        "quarantine_kinds": list(QUARANTINE_KINDS), "flag_kinds": list(FLAG_KINDS),
        "by_table": by_table, "rows": rows,
    }


def _dirty_row(name, pos, final, kind, partner) -> dict:
    row = {"table": name, "row_index": int(pos), "key": str(final[TABLES[name].key].iat[pos]), "kind": kind,
           "outcome": "flag" if kind in FLAG_KINDS else "quarantine"}
    if partner:
        row["of"] = partner
    return row


def _arrange(dt: _Dirt, rng) -> tuple[pd.DataFrame, dict]:
    """Insert each extra row at a random position: copies (duplicate_id, bulk_duplicate,
    double_submission) after their base row, the others anywhere."""
    n, m = len(dt.df), len(dt.extras)
    copy = np.array([e[2] in ("duplicate_id", "bulk_duplicate", "double_submission") for e in dt.extras], bool)
    base = np.where(copy, np.array([e[0] for e in dt.extras], dtype=int) + 1, 0)
    at = rng.integers(base, n + 1) if m else np.zeros(0, int)
    keys = np.concatenate([np.arange(n, dtype=float), at - 0.5 + 0.001 * np.arange(m) / max(m, 1)])
    extra = pd.DataFrame.from_records([e[1] for e in dt.extras], columns=list(dt.df.columns))
    both = pd.concat([dt.df, extra.astype("str")], ignore_index=True)
    order = np.argsort(keys, kind="stable")
    final = both.iloc[order].reset_index(drop=True).astype("str")
    pos = np.empty(n + m, dtype=int)
    pos[order] = np.arange(n + m)
    return final, {"clean": pos[:n], "extra": pos[n:]}


# ---------------------------------------------------------------- public API
def generate(*, size: str | int = "default", seed: int = 7) -> tuple[dict[str, pd.DataFrame], dict]:
    """Simulate the sample CRM and return (tables, truth).

    ``tables`` maps each canonical table name to its raw export frame: the canonical columns
    in order, every value text exactly as written to CSV (empty string = missing), dirty
    rows included. ``truth`` holds the planted parameters and the values they realised.

    Parameters
    ----------
    size : "default" (3,250 deals over three years, the committed sample), "small" (800
        deals, for fast tests; some statistical facts are weaker, see the module docstring) or
        a number of deals of at least 400 (leads, customers, tickets and surveys scale with
        it; the rates per rep-week and per week do not, and above ~6,500 deals other owners
        than the planted one may pass 40 open deals).
    seed : the random seed; the same seed gives identical tables and truth.
    """
    ctx = _ctx(size, seed)
    world = _simulate(ctx)
    truth = _truth(ctx, world)
    tables = _text_tables(world)
    tables, dirty = _inject_dirt(ctx, tables, world)
    truth["dirty"] = dirty
    truth["rows"] = {name: int(len(df)) for name, df in tables.items()}
    return tables, truth


def write_sample(out_dir, *, size: str | int = "default", seed: int = 7) -> dict:
    """Write the sample export to ``out_dir``: one ``<table>.csv`` per table (UTF-8, "\\n" line
    ends, header row, empty string for missing, no index), ``truth.json`` and ``export.yaml``.
    Returns the truth."""
    tables, truth = generate(size=size, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False, lineterminator="\n", encoding="utf-8")
    (out / "truth.json").write_text(_json_text(truth) + "\n", encoding="utf-8")
    meta = {"name": "sample", "timezone": "UTC", "currency": "EUR",
            "date_formats": ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"], "decimal": ".", "thousands": "",
            "extracted_at": EXTRACTED_AT.strftime("%Y-%m-%dT%H:%M:%S"), "as_of": AS_OF.strftime("%Y-%m-%d"),
            "generator": {"seed": int(seed), "size": size if isinstance(size, str) else int(size)}}
    (out / "export.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    return truth


def _json_text(obj, indent: int = 2, width: int = 140, _level: int = 0) -> str:
    """JSON indented by 2, with any list or object that fits on one line kept on one line."""
    flat = json.dumps(obj, ensure_ascii=False)
    pad = " " * (indent * _level)
    if not isinstance(obj, (dict, list)) or len(flat) + len(pad) <= width or not obj:
        return flat
    inner = " " * (indent * (_level + 1))
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_json_text(v, indent, width, _level + 1)}"
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    items = [inner + _json_text(v, indent, width, _level + 1) for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + pad + "]"


def load_truth(folder) -> dict:
    """The truth.json of a sample export folder."""
    return json.loads((Path(folder) / "truth.json").read_text(encoding="utf-8"))
