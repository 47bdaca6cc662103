"""A large synthetic CRM export, written as Parquet in chunks: for scale tests and benchmarks.

``write_large(out, size="large")`` writes the 14 canonical tables of a CRM with 1M deals,
10M activities and 2M order lines (``"huge"``: ten times that; an integer: that many
activities, the rest scaled along) into ``out`` as typed Parquet files (timestamps in
UTC, ids as text), plus an ``export.yaml`` that marks it a large source
(``pushdown: true``, see :mod:`crmlib.pushdown.source`).

It streams: deals are made in blocks of :data:`BLOCK` and each block's deals, stage
history, activities and orders are appended to the files as row groups, so memory stays
at one block whatever the size (100M activities need no more than 1M). Every block draws
from its own seeded generator (``seed``, table, block number), so the output is the same
for a seed whatever else runs.

The data is plausible rather than planted (the planted truths live in :mod:`crmlib.sample`):
deals move through the sample's pipeline, win about three in ten, and carry calls, emails,
meetings and tasks over their life; leads come from five sources and some become deals;
won deals' customers order again over time. A small share of dirty rows (a re-imported
activity with a new id, a repeated id, a reference to a user who does not exist) gives
the audit work to do. The report dates are those of the committed sample
(as_of 2026-09-27).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from .errors import CrmConfigError

#: activities per named size (deals are a tenth, order lines a fifth)
SIZES = {"large": 10_000_000, "huge": 100_000_000}
BLOCK = 50_000  # deals per block (about 500k activities)
START = np.datetime64("2023-07-01T00:00:00", "us")
AS_OF = "2026-09-27"
END = np.datetime64("2026-09-28T00:00:00", "us")  # the end of as_of
EXTRACTED_AT = "2026-09-28T06:00:00"
STAGES = ("Qualification", "Needs Analysis", "Proposal", "Negotiation", "Invoicing")
PROBABILITY = (0.1, 0.2, 0.4, 0.6, 0.9)
SOURCES = ("email", "paid_ads", "organic", "referral", "events", "outbound")
SOURCE_P = (0.12, 0.18, 0.35, 0.10, 0.05, 0.20)
PRODUCTS = ("Core", "Pro", "Analytics", "Integrations", "Support", "Training")
MARGIN = (0.70, 0.65, 0.55, 0.50, 0.80, 0.60)
TEAMS = ("Inside Sales", "Field Sales", "Enterprise", "SMB", "Partners", "Renewals", "Support")
LOST_REASONS = ("Price", "Competitor", "No budget", "Timing", "No decision", "Product fit")
ACTIVITY_TYPES = ("call", "email", "meeting", "task", "note")
ACTIVITY_P = (0.55, 0.20, 0.08, 0.12, 0.05)
DAY_US = 86_400_000_000
UTC_US = pa.timestamp("us", tz="UTC")

__all__ = ["SIZES", "write_large", "plan"]


@dataclass(frozen=True)
class Plan:
    """Row counts of one size (activities and orders are targets; the others exact)."""

    activities: int
    deals: int
    orders: int
    users: int
    accounts: int
    contacts: int
    leads: int
    campaigns: int
    tickets: int
    surveys: int


def plan(size: str | int) -> Plan:
    """The table sizes for ``"large"``, ``"huge"`` or a number of activities (at least 10,000)."""
    if isinstance(size, str):
        if size not in SIZES:
            raise CrmConfigError(f"size {size!r}: use {', '.join(SIZES)} or a number of activities")
        n = SIZES[size]
    else:
        n = int(size)
        if n < 10_000:
            raise CrmConfigError(f"size {n}: a large sample has at least 10,000 activities")
    deals = n // 10
    return Plan(activities=n, deals=deals, orders=n // 5, users=max(50, deals // 500),
                accounts=max(100, int(deals * 0.3)), contacts=max(100, int(deals * 0.4)),
                leads=int(deals * 1.5), campaigns=max(20, deals // 2000), tickets=max(100, int(deals * 0.3)),
                surveys=max(50, int(deals * 0.15)))


# ----------------------------------------------------------------------------- writing
SCHEMAS = {
    "users": [("user_id", pa.string()), ("name", pa.string()), ("team", pa.string()), ("role", pa.string()),
              ("active", pa.bool_()), ("hired_at", UTC_US)],
    "accounts": [("account_id", pa.string()), ("name", pa.string()), ("industry", pa.string()),
                 ("segment", pa.string()), ("region", pa.string()), ("owner_id", pa.string()),
                 ("created_at", UTC_US)],
    "contacts": [("contact_id", pa.string()), ("account_id", pa.string()), ("name", pa.string()),
                 ("email", pa.string()), ("phone", pa.string()), ("created_at", UTC_US), ("updated_at", UTC_US)],
    "leads": [("lead_id", pa.string()), ("created_at", UTC_US), ("source", pa.string()),
              ("campaign_id", pa.string()), ("owner_id", pa.string()), ("status", pa.string()),
              ("converted_at", UTC_US), ("deal_id", pa.string()), ("email", pa.string()), ("company", pa.string())],
    "deals": [("deal_id", pa.string()), ("name", pa.string()), ("account_id", pa.string()),
              ("owner_id", pa.string()), ("pipeline", pa.string()), ("stage", pa.string()),
              ("status", pa.string()), ("amount", pa.float64()), ("currency", pa.string()),
              ("source", pa.string()), ("created_at", UTC_US), ("closed_at", UTC_US),
              ("expected_close_at", UTC_US), ("lost_reason", pa.string()), ("deal_type", pa.string())],
    "stage_history": [("deal_id", pa.string()), ("stage", pa.string()), ("entered_at", UTC_US)],
    "stages": [("pipeline", pa.string()), ("stage", pa.string()), ("order", pa.int64()),
               ("probability", pa.float64()), ("is_closed", pa.bool_()), ("is_won", pa.bool_())],
    "activities": [("activity_id", pa.string()), ("type", pa.string()), ("owner_id", pa.string()),
                   ("deal_id", pa.string()), ("lead_id", pa.string()), ("account_id", pa.string()),
                   ("created_at", UTC_US), ("due_at", UTC_US), ("completed_at", UTC_US),
                   ("direction", pa.string()), ("outcome", pa.string()), ("duration_s", pa.float64())],
    "orders": [("order_id", pa.string()), ("account_id", pa.string()), ("deal_id", pa.string()),
               ("ordered_at", UTC_US), ("product", pa.string()), ("quantity", pa.float64()),
               ("revenue", pa.float64()), ("cost", pa.float64()), ("currency", pa.string())],
    "campaigns": [("campaign_id", pa.string()), ("name", pa.string()), ("channel", pa.string()),
                  ("started_at", UTC_US), ("ended_at", UTC_US), ("spend", pa.float64()),
                  ("clicks", pa.float64()), ("sends", pa.float64()), ("opens", pa.float64()),
                  ("bounces", pa.float64())],
    "tickets": [("ticket_id", pa.string()), ("account_id", pa.string()), ("created_at", UTC_US),
                ("first_response_at", UTC_US), ("resolved_at", UTC_US), ("status", pa.string()),
                ("priority", pa.string()), ("channel", pa.string()), ("category", pa.string()),
                ("agent_id", pa.string()), ("sla_due_at", UTC_US), ("reopened", pa.bool_())],
    "surveys": [("survey_id", pa.string()), ("account_id", pa.string()), ("ticket_id", pa.string()),
                ("kind", pa.string()), ("score", pa.float64()), ("answered_at", UTC_US)],
    "targets": [("owner_id", pa.string()), ("team", pa.string()), ("metric", pa.string()),
                ("period_start", UTC_US), ("period_end", UTC_US), ("target", pa.float64())],
    "fx_rates": [("currency", pa.string()), ("date", UTC_US), ("rate_to_reporting", pa.float64())],
}


class _Tables:
    """One Parquet writer per table; blocks are appended as row groups."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}

    def write(self, name: str, columns: dict) -> None:
        schema = pa.schema(SCHEMAS[name])
        arrays = [_array(columns.get(f.name), f.type, _length(columns)) for f in schema]
        table = pa.Table.from_arrays(arrays, schema=schema)
        if name not in self.writers:
            self.writers[name] = pq.ParquetWriter(self.folder / f"{name}.parquet", schema, compression="zstd")
        self.writers[name].write_table(table)
        self.rows[name] = self.rows.get(name, 0) + table.num_rows

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def _length(columns: dict) -> int:
    return next(len(v) for v in columns.values() if v is not None and not np.isscalar(v))


def _array(values, typ, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, typ)
    if isinstance(values, pa.Array):
        return values
    if np.isscalar(values):
        return pa.array(np.full(n, values), type=typ)
    values = np.asarray(values)
    if pa.types.is_timestamp(typ):
        us = values.astype("datetime64[us]").astype("int64")
        mask = np.isnat(values.astype("datetime64[us]"))
        return pa.array(us, type=pa.int64(), mask=mask).cast(typ)
    if values.dtype == object:
        return pa.array(values, type=typ, from_pandas=True)
    if pa.types.is_floating(typ):
        return pa.array(values.astype("float64"), type=typ, from_pandas=True)
    return pa.array(values, type=typ)


def _ids(prefix: str, numbers, width: int) -> pa.Array:
    """``prefix`` + zero-padded numbers, as an Arrow string array (fast for millions)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype="int64")), pa.string()), width, "0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "") if prefix else digits


def _maybe(ids: pa.Array, keep) -> pa.Array:
    """``ids`` with the rows where ``keep`` is False set to null."""
    return pc.if_else(pa.array(np.asarray(keep, dtype=bool)), ids, pa.scalar(None, pa.string()))


def _rng(seed: int, table: str, block: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, sum(map(ord, table)) * 1000 + len(table), block])


def _times(rng, n, lo, hi) -> np.ndarray:
    """``n`` instants uniform in [lo, hi) (arrays or scalars of datetime64[us])."""
    lo = np.asarray(lo, dtype="datetime64[us]").astype("int64")
    hi = np.asarray(hi, dtype="datetime64[us]").astype("int64")
    span = np.maximum(hi - lo, 1)
    return (lo + (rng.random(n) * span).astype("int64")).astype("datetime64[us]")


def _pick(rng, options, p, n) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=n, p=np.asarray(p) / np.sum(p))]


# ----------------------------------------------------------------------------- the tables
def write_large(out: str | os.PathLike, *, size: str | int = "large", seed: int = 7,
                block: int = BLOCK) -> dict[str, int]:
    """Write the large sample into ``out`` (created; existing Parquet files replaced); returns rows per table."""
    p = plan(size)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    tables = _Tables(folder)
    try:
        reps = _users(tables, p, seed)
        _accounts(tables, p, seed, reps)
        _contacts(tables, p, seed)
        _campaigns(tables, p, seed)
        _stages_and_fx(tables)
        for b, lo in enumerate(range(0, p.deals, block)):
            _deal_block(tables, p, seed, b, lo, min(p.deals, lo + block), reps)
        for b, lo in enumerate(range(0, p.leads, block * 2)):
            _lead_block(tables, p, seed, b, lo, min(p.leads, lo + 2 * block), reps)
        for b, lo in enumerate(range(0, p.tickets, block * 2)):
            _ticket_block(tables, p, seed, b, lo, min(p.tickets, lo + 2 * block), reps)
        _surveys(tables, p, seed)
        _targets(tables, p, seed, reps)
    finally:
        tables.close()
    settings = {"name": "large sample", "timezone": "UTC", "currency": "EUR", "extracted_at": EXTRACTED_AT,
                "as_of": AS_OF, "pushdown": True,
                "generator": {"module": "crmlib.sample_large", "seed": int(seed), "size": size}}
    (folder / "export.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return dict(tables.rows)


def _users(tables: _Tables, p: Plan, seed: int) -> np.ndarray:
    rng = _rng(seed, "users")
    n = p.users
    role = _pick(rng, ("rep", "manager", "agent"), (0.85, 0.08, 0.07), n)
    role[0] = "director"
    tables.write("users", {
        "user_id": _ids("U", np.arange(1, n + 1), 6), "name": _ids("Person ", np.arange(1, n + 1), 6),
        "team": _pick(rng, TEAMS, np.ones(len(TEAMS)), n), "role": role, "active": rng.random(n) > 0.05,
        "hired_at": _times(rng, n, np.datetime64("2018-01-01", "us"), START),
    })
    return np.flatnonzero(role == "rep") + 1  # user numbers of the reps


def _user_ids(numbers) -> pa.Array:
    return _ids("U", numbers, 6)


def _accounts(tables, p, seed, reps):
    for b, lo in enumerate(range(0, p.accounts, 500_000)):
        rng = _rng(seed, "accounts", b)
        hi = min(p.accounts, lo + 500_000)
        n = hi - lo
        tables.write("accounts", {
            "account_id": _ids("", np.arange(lo + 1, hi + 1), 9),
            "name": _ids("Company ", np.arange(lo + 1, hi + 1), 9),
            "industry": _pick(rng, ("Software", "Retail", "Finance", "Health", "Manufacturing", "Logistics"),
                              (3, 2, 2, 1, 2, 1), n),
            "segment": _pick(rng, ("SMB", "Mid-Market", "Enterprise"), (6, 3, 1), n),
            "region": _pick(rng, ("East", "West", "North", "South"), (1, 1, 1, 1), n),
            "owner_id": _user_ids(rng.choice(reps, n)),
            "created_at": _times(rng, n, START - np.timedelta64(365, "D"), END - np.timedelta64(30, "D")),
        })


def _contacts(tables, p, seed):
    for b, lo in enumerate(range(0, p.contacts, 500_000)):
        rng = _rng(seed, "contacts", b)
        hi = min(p.contacts, lo + 500_000)
        n = hi - lo
        num = np.arange(lo + 1, hi + 1)
        created = _times(rng, n, START - np.timedelta64(365, "D"), END - np.timedelta64(30, "D"))
        email = pc.binary_join_element_wise(_ids("person", num, 8), pa.scalar("@example.com"), "")
        tables.write("contacts", {
            "contact_id": _ids("C", num, 8), "account_id": _ids("", rng.integers(1, p.accounts + 1, n), 9),
            "name": _ids("Contact ", num, 8), "email": email, "created_at": created,
            "updated_at": _times(rng, n, created, END),
        })


def _campaigns(tables, p, seed):
    rng = _rng(seed, "campaigns")
    n = p.campaigns
    started = _times(rng, n, START, END - np.timedelta64(30, "D"))
    channel = _pick(rng, ("email", "paid_ads", "social", "events"), (3, 3, 2, 1), n)
    is_mail = channel == "email"
    sends = np.where(is_mail, rng.integers(1000, 50000, n), np.nan)
    tables.write("campaigns", {
        "campaign_id": _ids("CMP", np.arange(1, n + 1), 4), "name": _ids("Campaign ", np.arange(1, n + 1), 4),
        "channel": channel, "started_at": started, "ended_at": started + np.timedelta64(60, "D"),
        "spend": np.round(rng.lognormal(np.log(20000), 0.8, n), 2), "clicks": rng.integers(10, 5000, n).astype(float),
        "sends": sends, "opens": np.floor(sends * 0.25), "bounces": np.floor(sends * 0.02),
    })


def _stages_and_fx(tables):
    names = STAGES + ("Closed Won", "Closed Lost")
    tables.write("stages", {
        "pipeline": np.full(7, "Sales", dtype=object), "stage": np.asarray(names, dtype=object),
        "order": np.arange(1, 8), "probability": np.asarray(PROBABILITY + (1.0, 0.0)),
        "is_closed": np.asarray([False] * 5 + [True, True]), "is_won": np.asarray([False] * 5 + [True, False]),
    })
    months = np.arange(np.datetime64("2022-10", "M"), np.datetime64("2026-10", "M"))
    tables.write("fx_rates", {"currency": np.full(len(months), "USD", dtype=object),
                              "date": months.astype("datetime64[us]"),
                              "rate_to_reporting": np.round(0.92 + 0.03 * np.sin(np.arange(len(months)) / 5), 4)})


def _deal_block(tables, p, seed, b, lo, hi, reps):
    """Deals lo..hi-1 with their stage history, activities and order lines."""
    rng = _rng(seed, "deals", b)
    n = hi - lo
    num = np.arange(lo + 1, hi + 1)
    deal_ids = _ids("D", num, 8)
    created = _times(rng, n, START, END - np.timedelta64(1, "D"))
    owner = rng.choice(reps, n)
    account = rng.integers(1, p.accounts + 1, n)
    cycle_days = rng.lognormal(np.log(45), 0.6, n)
    closes = created + (cycle_days * DAY_US).astype("int64").astype("timedelta64[us]")
    closed = closes < END
    won = closed & (rng.random(n) < 0.3)
    status = np.where(~closed, "open", np.where(won, "won", "lost")).astype(object)
    reached = np.where(won, 5, rng.integers(1, 6, n))  # stages entered before the end (or now)
    # entered_at of each reached stage: spread over the deal's life (to its close, or to now)
    until = np.where(closed, closes, END)
    life = (until - created).astype("int64")
    k = reached + closed.astype(int)  # history rows: the stages reached, then the close
    rows = np.repeat(np.arange(n), k)
    step = np.arange(len(rows)) - np.repeat(np.cumsum(k) - k, k)  # 0, 1, ... within each deal
    frac = step / np.repeat(np.maximum(reached, 1), k)
    entered = created[rows] + (frac * life[rows] * 0.999).astype("int64").astype("timedelta64[us]")
    is_close_row = closed[rows] & (step == reached[rows])
    entered = np.where(is_close_row, closes[rows], entered)
    stage_names = np.asarray(STAGES + ("Closed Won", "Closed Lost"), dtype=object)
    stage_idx = np.where(is_close_row, np.where(won[rows], 5, 6), np.minimum(step, 4))
    current = np.where(closed, np.where(won, "Closed Won", "Closed Lost"), stage_names[np.maximum(reached - 1, 0)])
    amount = np.round(rng.lognormal(np.log(12000), 0.9, n), 0)
    usd = rng.random(n) < 0.05
    tables.write("deals", {
        "deal_id": deal_ids, "name": _ids("Deal ", num, 8), "account_id": _ids("", account, 9),
        "owner_id": _user_ids(owner), "pipeline": np.full(n, "Sales", dtype=object), "stage": current.astype(object),
        "status": status, "amount": amount, "currency": np.where(usd, "USD", "EUR").astype(object),
        "source": _pick(rng, SOURCES, SOURCE_P, n), "created_at": created,
        "closed_at": np.where(closed, closes, np.datetime64("NaT")),
        "expected_close_at": np.where(closed, np.datetime64("NaT"), created + np.timedelta64(60, "D")),
        "lost_reason": np.where(closed & ~won, _pick(rng, LOST_REASONS, np.ones(6), n), None).astype(object),
        "deal_type": _pick(rng, ("new", "upsell", "renewal"), (7, 2, 1), n),
    })
    tables.write("stage_history", {"deal_id": pc.take(deal_ids, pa.array(rows)), "stage": stage_names[stage_idx],
                                   "entered_at": entered})
    _deal_activities(tables, p, seed, b, lo, created, until, owner, account, deal_ids, reps)
    _orders(tables, p, seed, b, lo, won, closes, account, deal_ids)


def _deal_activities(tables, p, seed, b, lo, created, until, owner, account, deal_ids, reps):
    rng = _rng(seed, "activities", b)
    n_deals = len(created)
    per_deal = 0.85 * p.activities / p.deals  # the rest belong to leads
    counts = rng.poisson(per_deal, n_deals)
    rows = np.repeat(np.arange(n_deals), counts)
    m = len(rows)
    first = lo * per_deal * 1.2  # ids of deal activities are numbered per block, leads' after them
    numbers = (int(first) + np.arange(m)).astype("int64") + 1
    at = _times(rng, m, created[rows], until[rows])
    typ = _pick(rng, ACTIVITY_TYPES, ACTIVITY_P, m)
    act_owner = np.where(rng.random(m) < 0.9, owner[rows], rng.choice(reps, m))
    _write_activities(tables, rng, numbers, typ, at, act_owner, deal_ids=pc.take(deal_ids, pa.array(rows)),
                      account=_ids("", account[rows], 9), lead_ids=None)


def _write_activities(tables, rng, numbers, typ, at, owner, *, deal_ids, account, lead_ids,
                      direction=None, outcome=None):
    m = len(numbers)
    is_call, is_email = typ == "call", typ == "email"
    planned = np.isin(typ, ("meeting", "task"))
    if direction is None:
        direction = np.where(is_call, np.where(rng.random(m) < 0.2, "inbound", "outbound"),
                             np.where(is_email, np.where(rng.random(m) < 0.15, "inbound", "outbound"), None))
    if outcome is None:
        call_out = _pick(rng, ("answered", "no_answer", "voicemail"), (0.4, 0.4, 0.2), m)
        call_in = _pick(rng, ("answered", "missed"), (0.88, 0.12), m)
        outcome = np.where(is_call, np.where(direction == "inbound", call_in, call_out),
                           np.where(typ == "meeting", "held", None))
    due = np.where(planned, at + (rng.random(m) * 7 * DAY_US).astype("int64").astype("timedelta64[us]"),
                   np.datetime64("NaT"))
    done_late = (rng.random(m) * 2 * DAY_US).astype("int64").astype("timedelta64[us]")
    finished = planned & (due + done_late < END) & (rng.random(m) < 0.97)
    completed = np.where(finished, due + done_late, np.datetime64("NaT"))
    talk = np.where(is_call & (outcome == "answered"), np.round(rng.lognormal(np.log(240), 0.7, m)),
                    np.where(typ == "meeting", 3600.0, np.nan))
    owner_ids = _user_ids(owner)
    dirty = rng.random(m)
    owner_ids = pc.if_else(pa.array(dirty < 0.0002), pa.scalar("U999999"), owner_ids)  # unknown user
    ids = _ids("A", numbers, 10)
    ids = pc.if_else(pa.array(dirty > 0.9998), _ids("A", np.maximum(numbers - 1, 1), 10), ids)  # repeated id
    cols = {"activity_id": ids, "type": typ, "owner_id": owner_ids, "deal_id": deal_ids, "lead_id": lead_ids,
            "account_id": account, "created_at": at, "due_at": due, "completed_at": completed,
            "direction": direction.astype(object), "outcome": outcome.astype(object), "duration_s": talk}
    tables.write("activities", cols)
    again = np.flatnonzero((dirty > 0.5) & (dirty < 0.5003))  # an import run twice: new ids, same content
    if len(again):
        copy = {k: (pc.take(v, pa.array(again)) if isinstance(v, pa.Array) else
                    (np.asarray(v)[again] if v is not None else None)) for k, v in cols.items()}
        copy["activity_id"] = _ids("X", numbers[again], 10)
        tables.write("activities", copy)


def _orders(tables, p, seed, b, lo, won, closes, account, deal_ids):
    rng = _rng(seed, "orders", b)
    idx = np.flatnonzero(won)
    if not len(idx):
        return
    # the first order at the close, then repeat purchases over the time left
    per_won = p.orders / max(1.0, 0.3 * 0.9 * p.deals)
    k = 1 + rng.poisson(max(per_won - 1, 0.0), len(idx))
    rows = np.repeat(idx, k)
    first = np.r_[True, rows[1:] != rows[:-1]] if len(rows) else np.zeros(0, bool)
    when = np.where(first, closes[rows], _times(rng, len(rows), closes[rows], END))
    m = len(rows)
    product = rng.integers(0, len(PRODUCTS), m)
    qty = rng.integers(1, 5, m).astype(float)
    revenue = np.round(rng.lognormal(np.log(1500), 0.8, m) * qty, 2)
    numbers = (int(lo * p.orders / p.deals * 1.3) + np.arange(m)).astype("int64") + 1
    tables.write("orders", {
        "order_id": _ids("O", numbers, 10), "account_id": _ids("", account[rows], 9),
        "deal_id": _maybe(pc.take(deal_ids, pa.array(rows)), first), "ordered_at": when,
        "product": np.asarray(PRODUCTS, dtype=object)[product], "quantity": qty, "revenue": revenue,
        "cost": np.round(revenue * (1 - np.asarray(MARGIN)[product]), 2),
        "currency": np.full(m, "EUR", dtype=object),
    })


def _lead_block(tables, p, seed, b, lo, hi, reps):
    """Leads lo..hi-1 (the first ones become the deals of the same number) and their touches."""
    rng = _rng(seed, "leads", b)
    n = hi - lo
    num = np.arange(lo + 1, hi + 1)
    converted = num <= int(p.deals * 0.6)
    created = _times(rng, n, START, END - np.timedelta64(1, "D"))
    owner = rng.choice(reps, n)
    status = np.where(converted, "converted", _pick(rng, ("new", "working", "disqualified"), (2, 3, 5), n))
    tables.write("leads", {
        "lead_id": _ids("L", num, 8), "created_at": created, "source": _pick(rng, SOURCES[:5], SOURCE_P[:5], n),
        "campaign_id": _maybe(_ids("CMP", rng.integers(1, p.campaigns + 1, n), 4), rng.random(n) < 0.4),
        "owner_id": _user_ids(owner), "status": status.astype(object),
        "converted_at": np.where(converted, np.minimum(created + np.timedelta64(2, "D"), END - np.timedelta64(1, "s")),
                                 np.datetime64("NaT")),
        "deal_id": _maybe(_ids("D", num, 8), converted),
        "email": pc.binary_join_element_wise(_ids("lead", num, 8), pa.scalar("@example.org"), ""),
        "company": _ids("Company ", rng.integers(1, p.accounts + 1, n), 9),
    })
    # a lead's first touches: outbound calls and emails within hours or days of its creation
    rng = _rng(seed, "lead_activities", b)
    per_lead = 0.15 * p.activities / p.leads
    counts = rng.poisson(per_lead, n)
    rows = np.repeat(np.arange(n), counts)
    m = len(rows)
    delay = (rng.lognormal(np.log(3 * 3600), 1.5, m) * 1e6).astype("int64").astype("timedelta64[us]")
    at = np.minimum(created[rows] + delay, END - np.timedelta64(1, "s"))
    typ = _pick(rng, ("call", "email"), (0.6, 0.4), m)
    base = int(0.85 * p.activities * 1.3) + int(lo * per_lead * 1.3)
    numbers = (base + np.arange(m)).astype("int64") + 1
    _write_activities(tables, rng, numbers, typ, at, owner[rows], deal_ids=None, account=None,
                      lead_ids=_ids("L", num[rows], 8), direction=np.full(m, "outbound", dtype=object))


def _ticket_block(tables, p, seed, b, lo, hi, reps):
    rng = _rng(seed, "tickets", b)
    n = hi - lo
    num = np.arange(lo + 1, hi + 1)
    created = _times(rng, n, START, END - np.timedelta64(1, "D"))
    first = created + (rng.lognormal(np.log(2 * 3600), 1.0, n) * 1e6).astype("int64").astype("timedelta64[us]")
    resolved = first + (rng.lognormal(np.log(20 * 3600), 1.0, n) * 1e6).astype("int64").astype("timedelta64[us]")
    done = resolved < END
    tables.write("tickets", {
        "ticket_id": _ids("T", num, 8), "account_id": _ids("", rng.integers(1, p.accounts + 1, n), 9),
        "created_at": created, "first_response_at": np.where(first < END, first, np.datetime64("NaT")),
        "resolved_at": np.where(done, resolved, np.datetime64("NaT")),
        "status": np.where(done, "closed", "open").astype(object),
        "priority": _pick(rng, ("low", "normal", "high", "urgent"), (3, 5, 2, 0.5), n),
        "channel": _pick(rng, ("email", "phone", "chat", "web"), (4, 2, 2, 2), n),
        "category": _pick(rng, ("billing", "login", "bug", "how-to", "performance"), (2, 1.5, 2.2, 2.5, 0.8), n),
        "agent_id": _user_ids(rng.choice(reps, n)), "sla_due_at": created + np.timedelta64(3, "D"),
        "reopened": rng.random(n) < 0.05,
    })


def _surveys(tables, p, seed):
    rng = _rng(seed, "surveys")
    n = p.surveys
    kind = _pick(rng, ("nps", "csat"), (1, 1), n)
    score = np.where(kind == "nps", rng.integers(0, 11, n), rng.integers(1, 6, n)).astype(float)
    tables.write("surveys", {
        "survey_id": _ids("S", np.arange(1, n + 1), 8), "account_id": _ids("", rng.integers(1, p.accounts + 1, n), 9),
        "ticket_id": _maybe(_ids("T", rng.integers(1, p.tickets + 1, n), 8), kind == "csat"),
        "kind": kind, "score": score, "answered_at": _times(rng, n, START, END - np.timedelta64(1, "D")),
    })


def _targets(tables, p, seed, reps):
    rng = _rng(seed, "targets")
    months = np.arange(np.datetime64("2025-10", "M"), np.datetime64("2026-10", "M"))
    metrics = (("revenue", 60000.0), ("won_deals", 4.0), ("calls", 400.0), ("meetings", 20.0), ("new_leads", 30.0))
    owner = np.repeat(reps, len(months) * len(metrics))
    month = np.tile(np.repeat(months, len(metrics)), len(reps))
    metric = np.tile(np.asarray([m for m, _ in metrics], dtype=object), len(reps) * len(months))
    base = np.tile(np.asarray([v for _, v in metrics]), len(reps) * len(months))
    start = month.astype("datetime64[D]").astype("datetime64[us]")
    end = ((month + 1).astype("datetime64[D]") - np.timedelta64(1, "D")).astype("datetime64[us]")
    tables.write("targets", {"owner_id": _user_ids(owner), "metric": metric, "period_start": start,
                             "period_end": end, "target": np.round(base * rng.uniform(0.8, 1.2, len(base)))})
