"""Numbers -> sentences: formatters and the generated narrative of the reports.

Every sentence a report shows is built here from a metric's result, never typed by
hand, and every value that goes into a sentence passes through :func:`esc`, which
makes CRM text (deal names, owners, stages: untrusted) inert both as Markdown and as
HTML. So ``describe_*`` output can go straight into ``md()`` / a Markdown cell.

Formatters (plain text, no escaping; for sentences, tables and plot titles):
:func:`money`, :func:`pct`, :func:`count`, :func:`days`, :func:`change`,
:func:`significance`, :func:`interval`. :func:`plain` turns generated Markdown back
into plain text (for a plot title; matplotlib text is not HTML).

Conventions: shares are fractions (0.12 -> "12%"); missing numbers read "n/a".
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable

import pandas as pd

__all__ = [
    "esc", "plain", "md", "money", "pct", "count", "days", "change", "significance", "interval",
    "describe_pipeline", "describe_changes", "describe_win_rate", "describe_stalled",
    "describe_task_coverage", "describe_owner_load", "describe_velocity", "describe_audit",
    "describe_conservation", "describe_staleness", "describe_issues", "describe_notes",
]

NA_TEXT = "n/a"
#: Markdown punctuation that could start a link, emphasis, code, heading, list, table or math
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:^=])")
_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "INR": "₹"}


# ----------------------------------------------------------------------------- escaping
def esc(value) -> str:
    """``value`` as text that renders literally in Markdown and in HTML (for anything from data).

    Markdown punctuation gets a backslash (so ``[x](javascript:...)`` is no link and
    ``*x*`` no emphasis), then HTML is escaped (so ``<script>`` is text), and line
    breaks become spaces (a value cannot start a heading or a list). Missing values
    read ``n/a``.
    """
    if _missing(value):
        return NA_TEXT
    text = " ".join(str(value).split())
    return html.escape(_MD_SPECIAL.sub(r"\\\1", text), quote=True)


def plain(markdown: str) -> str:
    """Plain text of generated Markdown: escapes undone and ``**`` emphasis removed (for plot titles)."""
    text = re.sub(r"\\(.)|\*\*", lambda m: m.group(1) or "", markdown)
    return html.unescape(text)


def md(text: str):
    """An IPython Markdown object that shows generated (already escaped) Markdown in a notebook."""
    from IPython.display import Markdown

    return Markdown(text)


# ----------------------------------------------------------------------------- formatters
def money(x, currency: str | None = None, *, short: bool = False) -> str:
    """An amount for reading: ``€200,000``, ``€1.2M``, ``1,500 CHF``; ``short`` gives ``€200k`` (axes)."""
    if _missing(x):
        return NA_TEXT
    x = float(x)
    sign = "-" if x < 0 else ""
    a = abs(x)
    if a >= 1e9:
        body = f"{a / 1e9:,.1f}B"
    elif a >= 1e6:
        body = f"{a / 1e6:,.1f}M"
    elif short and a >= 1e3:
        body = f"{a / 1e3:,.0f}k" if a >= 1e4 else f"{a / 1e3:,.1f}k"
    elif a < 100 and not float(a).is_integer():
        body = f"{a:,.2f}"
    else:
        body = f"{a:,.0f}"
    if not currency:
        return sign + body
    symbol = _SYMBOLS.get(str(currency).upper())
    return f"{sign}{symbol}{body}" if symbol else f"{sign}{body} {currency}"


def pct(x, *, digits: int | None = None) -> str:
    """A fraction as a percentage: ``0.123`` -> ``12%`` (one decimal below 1% and just under 100%)."""
    if _missing(x):
        return NA_TEXT
    v = float(x) * 100
    if digits is None:
        digits = 1 if (0 < abs(v) < 1 or 99 < abs(v) < 100) else 0
    return f"{v:,.{digits}f}%"


def count(n, noun: str | None = None, plural: str | None = None) -> str:
    """A whole number with separators and an optional noun: ``count(3, "deal")`` -> ``3 deals``."""
    if _missing(n):
        return NA_TEXT if noun is None else f"{NA_TEXT} {plural or noun + 's'}"
    n = int(round(float(n)))
    text = f"{n:,}"
    if noun is None:
        return text
    return f"{text} {noun if n == 1 else (plural or noun + 's')}"


def days(x) -> str:
    """A duration in days: ``1 day``, ``10 days``, ``3.5 days``."""
    if _missing(x):
        return NA_TEXT
    v = float(x)
    text = f"{v:,.0f}" if abs(v) >= 10 or v.is_integer() else f"{v:,.1f}"
    return f"{text} {'day' if text == '1' else 'days'}"


def change(cur, prev, *, period: str = "week", against: str | None = None) -> str:
    """The relative change in words: ``up 12% on the previous week``, ``down 5% on ...``, ``unchanged on ...``."""
    against = against or f"the previous {period}"
    if _missing(cur) or _missing(prev):
        return f"no comparison with {against}"
    cur, prev = float(cur), float(prev)
    if prev == 0:
        return f"unchanged on {against}" if cur == 0 else f"up from zero on {against}"
    rel = (cur - prev) / abs(prev)
    if abs(rel) < 0.005:
        return f"unchanged on {against}"
    return f"{'up' if rel > 0 else 'down'} {pct(abs(rel))} on {against}"


def significance(p, *, alpha: float = 0.05) -> str:
    """A p-value in plain words: significant or not at ``alpha``, with the p-value."""
    if _missing(p):
        return "not testable (too little data)"
    p = float(p)
    shown = "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"
    if p < alpha:
        strength = "strong " if p < alpha / 5 else ""
        return f"statistically significant, {strength}evidence of a real effect ({shown})"
    if p < 2 * alpha:
        return (f"not statistically significant at the {alpha:.0%} level, weak evidence at best "
                f"({shown})")
    return f"not statistically significant: this could well be chance ({shown})"


def interval(est, lo=None, hi=None, *, fmt: Callable = pct, level: float = 0.95) -> str:
    """An estimate with its confidence interval: ``31% (95% CI 26% to 37%)``.

    ``est`` may also be a result with estimate, low, high (and n, successes), such as a
    :class:`~crmlib.stats.intervals.Proportion`; its counts are added (``81 of 263``).
    """
    tail = ""
    if hasattr(est, "estimate"):
        obj = est
        est, lo, hi = obj.estimate, obj.low, obj.high
        level = getattr(obj, "level", level)
        if hasattr(obj, "successes") and hasattr(obj, "n"):
            tail = f", {count(obj.successes)} of {count(obj.n)}"
    if _missing(est):
        return NA_TEXT
    if _missing(lo) or _missing(hi):
        return f"{fmt(est)}{f' ({tail[2:]})' if tail else ''}"
    return f"{fmt(est)} ({level:.0%} CI {fmt(lo)} to {fmt(hi)}{tail})"


# ----------------------------------------------------------------------------- descriptions
def describe_pipeline(table: pd.DataFrame, *, currency: str | None = None, previous=None,
                      period: str = "week") -> str:
    """Markdown sentence on the open pipeline from an ``open_pipeline(..., by="stage")`` table.

    ``previous`` is the total open value a period earlier (a number or the previous
    period's ``open_pipeline`` table).
    """
    n = int(table["deals"].sum()) if len(table) else 0
    if n == 0:
        return "There are no open deals at this date."
    value = table["value"].sum(min_count=1)
    weighted = table["weighted_value"].sum(min_count=1) if "weighted_value" in table else math.nan
    parts = [f"The open pipeline holds **{esc(count(n, 'deal'))}** worth **{esc(money(value, currency))}**"]
    if not _missing(weighted):
        parts.append(f" ({esc(money(weighted, currency))} weighted by win probability)")
    if previous is not None:
        prev_value = previous["value"].sum(min_count=1) if isinstance(previous, pd.DataFrame) else previous
        parts.append(f", {esc(change(value, prev_value, period=period))}")
    parts.append(".")
    label_col = "stage" if "stage" in table.columns else table.columns[0]
    if table["value"].notna().any():
        top = table.loc[table["value"].idxmax()]
        parts.append(f" The largest {esc(str(label_col).replace('_', ' '))} by value is "
                     f"{esc(top[label_col])}: {esc(count(top['deals'], 'deal'))} worth "
                     f"{esc(money(top['value'], currency))} ({esc(pct(top['value'] / value))} of the value).")
    missing = int(table["missing_amount"].sum()) if "missing_amount" in table else 0
    if missing:
        parts.append(f" {esc(count(missing, 'deal'))} without an amount {'is' if missing == 1 else 'are'} "
                     "left out of the sums.")
    return "".join(parts)


def describe_changes(changes, *, currency: str | None = None) -> str:
    """Markdown sentence on how the open pipeline moved (from ``pipeline_changes``)."""
    v = changes.value
    text = (f"The open pipeline went from {esc(count(v('start'), 'deal'))} "
            f"({esc(money(v('start', 'value'), currency))}) to **{esc(count(v('end'), 'deal'))}** "
            f"(**{esc(money(v('end', 'value'), currency))}**): {esc(count(v('new')))} new, "
            f"{esc(count(v('won')))} won and {esc(count(v('lost')))} lost.")
    side = []
    if v("advanced") is not None:
        side.append(f"{esc(count(v('advanced'), 'deal'))} moved to a later stage")
    side.append(f"{esc(count(v('slipped'), 'deal'))} passed {'its' if v('slipped') == 1 else 'their'} "
                "expected close date while still open")
    return text + " Meanwhile " + " and ".join(side) + "."


def describe_win_rate(rate, *, what: str = "closed deals") -> str:
    """Markdown sentence on a win rate (a ``Proportion`` from ``win_rate``), with its interval when n is small."""
    if rate.n == 0:
        return f"No {esc(what)} yet, so there is no win rate."
    if rate.n < 30:
        return (f"The win rate is **{esc(pct(rate.estimate))}** ({esc(count(rate.successes))} of "
                f"{esc(count(rate.n))} {esc(what)}; {rate.level:.0%} interval "
                f"{esc(pct(rate.low))} to {esc(pct(rate.high))}, few deals so it is uncertain).")
    return (f"The win rate is **{esc(pct(rate.estimate))}** ({esc(count(rate.successes))} of "
            f"{esc(count(rate.n))} {esc(what)}).")


def describe_stalled(stalled: pd.DataFrame, *, currency: str | None = None, amount_col: str = "amount_rep",
                     open_deals: int | None = None, owner_col: str = "owner_id") -> str:
    """Markdown sentence on stalled deals (from ``stalled_deals``): how many, their value, and the worst one."""
    n = len(stalled)
    if n == 0:
        return "No open deal has been in its stage longer than the stage's norm."
    share = f" ({esc(pct(n / open_deals))} of open deals)" if open_deals else ""
    value = stalled[amount_col].sum(min_count=1) if amount_col in stalled else math.nan
    worth = f", worth {esc(money(value, currency))}" if not _missing(value) else ""
    verb = "has" if n == 1 else "have"
    text = (f"**{esc(count(n, 'open deal'))}**{share} {verb} been in their stage longer than the "
            f"stage's norm{worth}.")
    w = stalled.iloc[0]
    label = _label(w, ("name", "deal_id"))
    who = _label(w, (owner_col,), missing="no owner")
    amount = f", {esc(money(w[amount_col], currency))}" if amount_col in stalled else ""
    text += (f" The worst: {esc(label)} (owner {esc(who)}{amount}) has spent "
             f"{esc(days(w['days_in_stage']))} in {esc(w['stage'])} against a norm of "
             f"{esc(days(w['norm_days']))} ({esc(f'{w.ratio:.1f}')}× the norm).")
    if amount_col in stalled and stalled[amount_col].notna().any():
        big = stalled.loc[stalled[amount_col].idxmax()]
        if big.name != stalled.index[0]:
            text += (f" The largest: {esc(_label(big, ('name', 'deal_id')))} "
                     f"({esc(money(big[amount_col], currency))}, owner "
                     f"{esc(_label(big, (owner_col,), missing='no owner'))}) has waited "
                     f"{esc(days(big['days_in_stage']))} in {esc(big['stage'])}, where "
                     f"{esc(days(big['norm_days']))} is usual.")
    return text


def describe_task_coverage(coverage: pd.DataFrame, *, owner_col: str = "owner_id") -> str:
    """Markdown sentence on next and overdue tasks of open deals (from ``task_coverage``)."""
    n = len(coverage)
    if n == 0:
        return "There are no open deals, so no task coverage to check."
    no_next = int((~coverage["has_next_task"]).sum())
    overdue = int(coverage["has_overdue_task"].sum())
    text = (f"Of {esc(count(n, 'open deal'))}, **{esc(count(no_next))} ({esc(pct(no_next / n))})** "
            f"{'has' if no_next == 1 else 'have'} no next task and **{esc(count(overdue))} "
            f"({esc(pct(overdue / n))})** {'has' if overdue == 1 else 'have'} an overdue task.")
    if no_next and owner_col in coverage.columns:
        per = (~coverage["has_next_task"]).groupby(coverage[owner_col], dropna=False).sum()
        worst = per.sort_values(ascending=False, kind="stable")
        owner, k = worst.index[0], int(worst.iloc[0])
        text += (f" The owner with most deals without a next task is "
                 f"{esc('no owner' if _missing(owner) else owner)} ({esc(count(k))}).")
    return text


def describe_owner_load(load: pd.DataFrame, *, cap: int | None = None) -> str:
    """Markdown sentence on open deals per owner against the cap (from ``owner_load``)."""
    if len(load) == 0:
        return "No owner has open deals."
    cap = int(load["cap"].iloc[0]) if cap is None and "cap" in load else cap
    over = load.loc[load["open_deals"] > cap]
    median = float(load["open_deals"].median())
    tail = f" The median owner carries {esc(f'{median:,.1f}'.removesuffix('.0'))}."
    if len(over) == 0:
        top = load.sort_values("open_deals", ascending=False, kind="stable").iloc[0]
        return (f"No owner carries more than the cap of {esc(count(cap, 'open deal'))}; the heaviest "
                f"load is {esc(_label(top, ('name', 'owner_id'), missing='no owner'))} with "
                f"{esc(count(top['open_deals']))}." + tail)
    names = [f"{esc(_label(r, ('name', 'owner_id'), missing='no owner'))} with "
             f"{esc(count(r['open_deals']))}" for _, r in over.head(3).iterrows()]
    more = f" and {esc(count(len(over) - 3))} more" if len(over) > 3 else ""
    return (f"**{esc(count(len(over), 'owner'))}** {'carries' if len(over) == 1 else 'carry'} more than "
            f"the cap of {esc(count(cap, 'open deal'))}: {', '.join(names)}{more}." + tail)


def describe_velocity(velocity, *, currency: str | None = None, per_days: int = 7) -> str:
    """Markdown sentence on deal velocity and its parts (from ``deal_velocity``)."""
    v = velocity
    window = esc(days(v.window_days))
    if _missing(v.value_per_day):
        return (f"Deal velocity cannot be computed: no deal was won in the last {window} "
                f"({esc(count(v.open_deals, 'open deal'))}).")
    rate = v.win_rate
    text = (f"The pipeline turns into about **{esc(money(v.value_per_day, currency))} of won business a "
            f"day** ({esc(money(v.value_per_day * per_days, currency))} per {esc(count(per_days, 'day'))}): "
            f"{esc(count(v.open_deals, 'open deal'))} × {esc(pct(rate.estimate))} win rate × "
            f"{esc(money(v.avg_won_size, currency))} average won deal ÷ {esc(days(v.avg_cycle_days))} "
            f"average cycle, from deals closed in the last {window}.")
    if rate.n < 30:
        text += (f" The win rate rests on only {esc(count(rate.n, 'closed deal'))} "
                 f"({esc(f'{rate.level:.0%}')} CI {esc(pct(rate.low))} to {esc(pct(rate.high))}), so the "
                 "velocity is uncertain.")
    return text


# ----------------------------------------------------------------------------- helpers
def _missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _label(row, cols, *, missing: str = NA_TEXT) -> str:
    for col in cols:
        if col in row.index and not _missing(row[col]):
            return str(row[col])
    return missing


# ----------------------------------------------------------------------------- data audit
def describe_audit(verdict) -> str:
    """The audit verdict in two sentences (a QualityVerdict from metrics.quality)."""
    q, f, n = verdict.quarantined_rows, verdict.flagged_rows, verdict.input_rows
    text = (f"The export holds {count(n, 'row')}: {count(verdict.kept_rows)} kept, "
            f"{count(q)} quarantined ({pct(q / n if n else float('nan'))}) and {count(f)} kept but "
            f"flagged for a fix at the source. Overall data-quality score: "
            f"**{verdict.score:.1f} / 100**")
    if verdict.worst_table is not None and verdict.worst_score is not None and verdict.worst_score < 100:
        text += f"; the weakest table is {esc(verdict.worst_table)} ({verdict.worst_score:.1f})"
    return text + "."


def describe_conservation(counts: pd.DataFrame) -> str:
    """Whether every table's rows add up (input = kept + quarantined)."""
    tables = counts[counts["table"] != "all"]
    broken = tables[tables["input"] != tables["kept"] + tables["quarantined"]]
    if len(broken):
        names = ", ".join(esc(t) for t in broken["table"])
        return f"**Rows are missing from the count in {names}: this is a bug, please report it.**"
    return (f"Nothing was dropped silently: in all {count(len(tables), 'table')} the rows read equal "
            "the rows kept plus the rows quarantined.")


def describe_issues(issues: pd.DataFrame) -> str:
    """The most frequent problems in one sentence (from metrics.quality.issues_by_check)."""
    if not len(issues):
        return "No row failed a check."
    top = issues.head(3)
    parts = [f"{count(int(r.rows), 'row')} of {esc(r.table)} ({esc(r.meaning)}, {esc(r.outcome)})"
             for r in top.itertuples()]
    return "The most frequent problems: " + "; ".join(parts) + "."


def describe_staleness(staleness) -> str:
    """Stale contacts in one sentence (from metrics.quality.stale_contacts)."""
    if not staleness.total:
        return "No contact has an update date, so staleness cannot be measured."
    return (f"{count(staleness.stale, 'contact')} of {count(staleness.total)} "
            f"({pct(staleness.share)}) have not been updated for more than {staleness.months} months; "
            "people change jobs and addresses (the sources: 40% of email users change address at "
            "least every two years), so these records are worth re-checking.")


def describe_notes(notes) -> str:
    """Loading notes (files not used, columns ignored, ...) as an escaped bullet list."""
    notes = [n for n in notes if n]
    if not notes:
        return "Loading had nothing to report: every file and column was used."
    return "\n".join(f"- {esc(n)}" for n in notes)


# ----------------------------------------------------------------------------- lead response and calls (06)
def elapsed_minutes(x) -> str:
    """A waiting time given in minutes, for reading: ``under 1 min``, ``45 min``, ``2.5 h``, ``3.2 days``."""
    if _missing(x):
        return NA_TEXT
    m = float(x)
    if m < 1:
        return "under 1 min"
    if m < 10:
        return f"{m:.1f} min".replace(".0 min", " min")
    if m < 90:
        return f"{m:.0f} min"
    if m < 48 * 60:
        return f"{m / 60:.1f} h"
    return days(m / 1440)


def _resp_row(summary):
    """The first row of a one-row frame, or the Series itself."""
    if isinstance(summary, pd.DataFrame):
        return summary.iloc[0] if len(summary) else None
    return summary


def describe_speed_to_lead(summary, *, previous=None, period: str = "week", window: str = "") -> str:
    """Markdown on speed to lead from a one-row ``speed_to_lead`` table (``by=None``).

    ``previous`` is the same table for the previous period; ``window`` names the leads'
    window in words (e.g. ``"in the last 12 weeks"``).
    """
    s = _resp_row(summary)
    where = f" {esc(window)}" if window else ""
    if s is None or int(s["leads"]) == 0:
        return f"No lead came in{where}, so there is nothing to answer."
    left_out = int(s["leads"]) - int(s["judged"])
    if int(s["judged"]) == 0:
        return (f"None of the {esc(count(s['leads'], 'lead'))}{where} can be judged: the export has no "
                "outbound call or email linked to a lead from that time, so speed to lead cannot be measured.")
    n = int(s["judged"])
    if _missing(s["median_minutes"]):
        text = (f"Fewer than half of the {esc(count(n, 'lead'))}{where} have been contacted yet, so the "
                "median speed to lead is not reached.")
    else:
        ci = ""
        if not _missing(s["median_low"]) and not _missing(s["median_high"]):
            ci = f" (95% CI {esc(elapsed_minutes(s['median_low']))} to {esc(elapsed_minutes(s['median_high']))})"
        quart = ""
        if not _missing(s["q1_minutes"]) and not _missing(s["q3_minutes"]):
            quart = (f"; a quarter waited under {esc(elapsed_minutes(s['q1_minutes']))} and a quarter over "
                     f"{esc(elapsed_minutes(s['q3_minutes']))}")
        text = (f"Of the {esc(count(n, 'lead'))}{where}, half were first called or emailed within "
                f"**{esc(elapsed_minutes(s['median_minutes']))}**{ci}{quart}.")
    shares = [(c, lab) for c, lab in (("within_5_min", "5 minutes"), ("within_1_h", "1 hour"),
                                      ("within_1_day", "1 day")) if c in s.index]
    if shares:
        parts = [f"**{esc(pct(s[c]))}** within {lab}" for c, lab in shares]
        text += " Contacted: " + ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1] + "."
    prev = _resp_row(previous) if previous is not None else None
    if prev is not None and "within_1_h" in s.index and int(prev["judged"]) > 0:
        text += (f" The share within 1 hour is {esc(pct(s['within_1_h']))} against "
                 f"{esc(pct(prev['within_1_h']))} the previous {esc(period)} ("
                 f"{esc(change(s['within_1_h'], prev['within_1_h'], period=period))}).")
    waiting = int(s["not_answered"])
    if waiting:
        text += (f" {esc(count(waiting, 'lead'))} {'has' if waiting == 1 else 'have'} not been contacted at all "
                 "yet and count as not answered.")
    else:
        text += " Every lead has been contacted by now."
    if left_out:
        text += (f" {esc(count(left_out, 'lead'))} that came in before the CRM logged any call or email to "
                 f"a lead {'is' if left_out == 1 else 'are'} left out.")
    if n < 30:
        text += " These are few leads, so the shares are uncertain."
    return text


def describe_response_by(table: pd.DataFrame, test=None, *, by: str = "owner_id", share_col: str = "within_1_h",
                         limit: str = "1 hour", min_n: int = 10) -> str:
    """Markdown on which group answers fastest and slowest (a ``speed_to_lead(by=...)`` table).

    ``test`` is a ``share_difference`` result on the same groups; its p-value says in
    words whether the groups really differ.
    """
    t = table.loc[(table["judged"] >= min_n) & table[share_col].notna()]
    what = "owner" if by == "owner_id" else str(by).replace("_", " ")
    if len(t) < 2:
        return (f"Too few {esc(what)}s have {esc(count(min_n))} or more leads to compare their speed to lead.")
    label = ("name", by) if "name" in t.columns else (by,)
    lo = t.loc[t[share_col].idxmin()]
    hi = t.loc[t[share_col].idxmax()]
    text = (f"By {esc(what)}, the share of leads contacted within {esc(limit)} ranges from "
            f"**{esc(pct(lo[share_col]))}** ({esc(_label(lo, label, missing='none'))}, "
            f"{esc(count(lo['judged'], 'lead'))}) to **{esc(pct(hi[share_col]))}** "
            f"({esc(_label(hi, label, missing='none'))}, {esc(count(hi['judged'], 'lead'))}).")
    if test is not None:
        text += f" The difference between {esc(what)}s is {esc(significance(test.p_value))}."
    small = int((table["judged"] < min_n).sum())
    if small:
        text += f" {esc(count(small, what))} with fewer than {esc(count(min_n))} leads {'is' if small == 1 else 'are'} not ranked."
    return text


def describe_missed_calls(rate, *, previous=None, year_ago=None, period: str = "week") -> str:
    """Markdown on the missed-call share (``missed_call_rate`` Proportions for this, the previous and the year-ago period)."""
    if rate.n == 0:
        return f"No inbound call with a known outcome was logged this {esc(period)}."
    text = (f"This {esc(period)} **{esc(pct(rate.estimate))}** of inbound calls were missed "
            f"({esc(count(rate.successes))} of {esc(count(rate.n))}; 95% CI {esc(pct(rate.low))} to "
            f"{esc(pct(rate.high))}).")
    comps = []
    for other, against in ((previous, f"the previous {period}"), (year_ago, f"the same {period} a year ago")):
        if other is None:
            continue
        if other.n == 0:
            comps.append(f"no inbound calls were logged in {esc(against)}")
        else:
            comps.append(f"{esc(pct(other.estimate))} in {esc(against)} ({esc(count(other.successes))} of "
                         f"{esc(count(other.n))})")
    if comps:
        text += " For comparison: " + "; ".join(comps) + "."
    if rate.n < 30:
        text += " Few calls, so the share is uncertain."
    return text


def describe_callbacks(summary, *, window_days: float = 7) -> str:
    """Markdown on callbacks of missed calls (a one-row ``callback_summary`` table)."""
    s = _resp_row(summary)
    if s is None or int(s["missed"]) == 0:
        return "No inbound call was missed, so no callback was needed."
    decided = int(s["called_back"]) + int(s["no_callback"])
    window = esc(f"{float(window_days):g}-day")
    if decided == 0:
        text = (f"{esc(count(s['missed'], 'missed call'))} {'is' if int(s['missed']) == 1 else 'are'} still within "
                f"the {window} callback window.")
    else:
        text = (f"Of {esc(count(decided, 'missed call'))} whose {window} window has passed or that were called "
                f"back, **{esc(pct(s['callback_share']))}** got a callback ({esc(count(s['called_back']))}; 95% CI "
                f"{esc(pct(s['callback_share_low']))} to {esc(pct(s['callback_share_high']))}) and "
                f"**{esc(count(s['no_callback']))}** got none.")
    if int(s["called_back"]):
        text += (f" Half of the callbacks came within **{esc(elapsed_minutes(s['median_callback_minutes']))}** "
                 f"(a quarter took longer than {esc(elapsed_minutes(s['q3_callback_minutes']))}).")
    if int(s["pending"]):
        text += f" {esc(count(s['pending'], 'recent missed call'))} still {'waits' if int(s['pending']) == 1 else 'wait'} within the window."
    return text


def _spike_rule(method: str, n_tested: int, alpha: float, material: str) -> str:
    """The weekly spike rule of crmlib.stats.spikes in words, with the caller's materiality clause."""
    return (f"one-sided binomial test against the weeks before, {esc(method.capitalize())}-corrected over "
            f"{esc(count(n_tested, 'week'))} at the {esc(pct(alpha))} level, and {material}")


def _describe_weeks(weeks: pd.DataFrame, flagged: pd.Series, *, too_few: str, rule: Callable[[int], str],
                    quiet: Callable[[pd.DataFrame, str], str], part: Callable[[pd.Series], str]) -> str:
    """The weekly spike narrative of crmlib.stats.spikes tables: ``too_few`` when no week was
    tested, ``quiet(tested, rule)`` when none is ``flagged``, else one sentence naming each
    flagged week by ``part``."""
    tested = weeks.loc[weeks["tested"].astype(bool)]
    if not len(tested):
        return too_few
    text = rule(len(tested))
    hits = weeks.loc[flagged.astype(bool)]
    if not len(hits):
        return quiet(tested, text)
    return _spike_sentence([part(w) for _, w in hits.iterrows()], len(tested), text)


def _spike_sentence(parts: list[str], n_tested: int, rule: str) -> str:
    """"N weeks of M stand out (rule): part; part." for the flagged weeks' descriptions."""
    head = (f"**{esc(count(len(parts), 'week'))}** of {esc(count(n_tested))} "
            f"{'stands' if len(parts) == 1 else 'stand'} out ({rule}): ")
    return head + "; ".join(parts) + "."


def describe_missed_alerts(alerts: pd.DataFrame, *, alpha: float = 0.05, min_share: float = 0.25,
                           method: str = "holm") -> str:
    """Markdown on the weeks whose missed-call share stands out (a ``missed_call_alerts`` table)."""
    def quiet(tested: pd.DataFrame, rule: str) -> str:
        top = tested.loc[tested["share"].idxmax()]
        return (f"No week stands out ({rule}). The highest share was {esc(pct(top['share']))} in the week of "
                f"{esc(pd.Timestamp(top['week']).date())} ({esc(count(top['missed']))} of {esc(count(top['calls']))}), "
                f"against {esc(pct(top['baseline_share']))} before: {esc(significance(top['p_adjusted'], alpha=alpha))}.")

    return _describe_weeks(
        alerts, alerts["alert"], too_few="Too few weeks of inbound calls to test any week against its baseline.",
        rule=lambda n: _spike_rule(method, n, alpha, f"at least {esc(pct(min_share))} missed"), quiet=quiet,
        part=lambda w: (f"the week of **{esc(pd.Timestamp(w['week']).date())}** missed **{esc(pct(w['share']))}** of "
                        f"inbound calls ({esc(count(w['missed']))} of {esc(count(w['calls']))}) against "
                        f"{esc(pct(w['baseline_share']))} in the weeks before (corrected "
                        f"{esc(_resp_p_text(w['p_adjusted']))})"))


def missed_alert_text(alerts: pd.DataFrame) -> str:
    """Plain text for the front-page alert on missed-call weeks (empty when no week is alerted)."""
    flagged = alerts.loc[alerts["alert"]]
    if not len(flagged):
        return ""
    weeks = [f"week of {pd.Timestamp(w['week']).date()}: {pct(w['share'])} missed "
             f"({count(w['missed'])} of {count(w['calls'])}, baseline {pct(w['baseline_share'])})"
             for _, w in flagged.iterrows()]
    return "Missed-call spike: " + "; ".join(weeks)


def describe_call_peak(heat: pd.DataFrame, *, what: str = "calls") -> str:
    """Markdown on the peak phone load from a ``call_heatmap`` grid (calls per week by weekday and hour)."""
    total = float(heat.to_numpy().sum()) if heat.size else 0.0
    if total == 0:
        return f"No {esc(what)} were logged in this window."
    stacked = heat.stack()
    (day, hour), peak = stacked.idxmax(), float(stacked.max())
    by_day = heat.sum(axis=1)
    busiest = by_day.idxmax()
    office = float(heat.loc[:, 9:16].to_numpy().sum()) / total if heat.shape[1] >= 17 else math.nan
    text = (f"About **{esc(f'{total:,.0f}')} {esc(what)} a week**. The busiest hour is **{esc(day)} "
            f"{esc(f'{int(hour):02d}')}:00-{esc(f'{int(hour) + 1:02d}')}:00** with {esc(f'{peak:,.1f}')} a week on "
            f"average; the busiest day is {esc(busiest)} ({esc(pct(by_day.max() / total))} of the week).")
    if not _missing(office):
        text += f" {esc(pct(office))} fall between 9:00 and 17:00."
    return text


def describe_call_handling(table: pd.DataFrame) -> str:
    """Markdown on call time per rep (a ``call_handling`` table, most handling first)."""
    if not len(table):
        return "No calls were logged in this window."
    label = ("name", "owner_id") if "name" in table.columns else ("owner_id",)
    top = table.iloc[0]
    conn = int(table["connected"].sum())
    talk = float(table["handling_hours"].sum()) * 60 / conn if conn else math.nan
    text = (f"{esc(count(table['calls'].sum(), 'call'))} by {esc(count(len(table), 'person', 'people'))}; a connected "
            f"call lasts **{esc(elapsed_minutes(talk))}** on average. The heaviest phone load is "
            f"{esc(_label(top, label, missing='no owner'))}: {esc(f'{top.handling_hours_per_week:,.1f}')} h of calls a "
            f"week ({esc(count(top['calls'], 'call'))}, {esc(elapsed_minutes(top['avg_talk_minutes']))} per connected "
            "call). Handling time here is logged call time only: the export holds no wrap-up time.")
    return text


def _resp_p_text(p) -> str:
    if _missing(p):
        return "p n/a"
    p = float(p)
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def describe_missed_by(table: pd.DataFrame, test=None, *, by: str = "owner_id", min_n: int = 10) -> str:
    """Markdown on where calls are missed most and least (a ``missed_call_share(by=...)`` table).

    ``test`` is a ``share_difference`` result on the same groups (its p-value in words).
    """
    what = {"owner_id": "owner", "weekday": "weekday", "hour": "hour of the day"}.get(by, str(by).replace("_", " "))
    t = table.loc[(table["calls"] >= min_n) & table["share"].notna()]
    if len(t) < 2:
        return f"Too few inbound calls to compare the missed share by {esc(what)}."
    label = ("name", by) if "name" in t.columns else (by,)

    def name(row):
        text = _label(row, label, missing="none")
        return f"{int(row[by]):02d}:00" if by == "hour" and not _missing(row[by]) else text

    lo = t.loc[t["share"].idxmin()]
    hi = t.loc[t["share"].idxmax()]
    text = (f"By {esc(what)}, the missed share ranges from {esc(pct(lo['share']))} ({esc(name(lo))}, "
            f"{esc(count(lo['missed']))} of {esc(count(lo['calls']))}) to **{esc(pct(hi['share']))}** "
            f"({esc(name(hi))}, {esc(count(hi['missed']))} of {esc(count(hi['calls']))}).")
    if test is not None:
        text += f" The difference is {esc(significance(test.p_value))}."
    return text


# ----------------------------------------------------------------------------- sales cycle (report 04)
__all__ += ["describe_cycle_summary", "describe_cycle_by_group", "describe_cycle_survival",
            "describe_cycle_trend", "describe_stage_times"]

#: the sources' claim on cycle length, quoted in report 04 for context (not from the data)
CYCLE_GROWTH_CLAIM = (0.22, 5)  # average sales cycles grew 22% over five years


def _cycle_interval(est, lo, hi, level: float = 0.95) -> str:
    """``46 days (95% CI 44 to 48 days)``, or without bounds when they are unknown."""
    if _missing(lo) or _missing(hi):
        return days(est)
    high = "an unbounded upper limit" if float(hi) == math.inf else days(hi)
    return f"{days(est)} ({level:.0%} CI {days(lo)} to {high})"


def describe_cycle_summary(summary, *, previous=None, year_ago=None, period: str = "week",
                           what: str = "won") -> str:
    """Markdown sentence on the median cycle of deals closed in a period (a ``CycleSummary``), with comparisons.

    ``previous`` and ``year_ago`` are the ``CycleSummary`` of the previous period and
    of the same period a year earlier (or None).
    """
    s = summary
    if s.n == 0:
        text = f"No deal was {esc(what)} in this {esc(period)}, so there is no cycle length for it."
    else:
        ci = ("" if _missing(s.low) or _missing(s.high)
              else f"({s.level:.0%} CI {days(s.low)} to {days(s.high)})")
        text = (f"The {esc(count(s.n, f'deal {what}', f'deals {what}'))} in this {esc(period)} took a median "
                f"of **{esc(days(s.median))}** from creation{' ' + esc(ci) if ci else ''}; half of them took between "
                f"{esc(days(s.q1))} and {esc(days(s.q3))}.")
        if s.n < 10:
            text += " So few deals make this number jumpy from one period to the next."
    comps = []
    for other, against in ((previous, f"the previous {period}"), (year_ago, f"the same {period} a year ago")):
        if other is not None and getattr(other, "n", 0):
            comps.append(f"{esc(change(s.median, other.median, against=against))} "
                         f"({esc(days(other.median))}, {esc(count(other.n, 'deal'))})")
    if comps and s.n:
        text += " That is " + " and ".join(comps) + "."
    return text


def describe_cycle_by_group(table: pd.DataFrame, *, by: str = "source", min_deals: int = 5,
                            alpha: float = 0.05, label_cols: tuple[str, ...] = ("name",)) -> str:
    """Markdown sentence naming the fastest and slowest groups of a ``cycle_distribution`` table, with significance.

    Groups with fewer than ``min_deals`` closed deals are not ranked (they are named as
    too small to say).
    """
    what = by.replace("_id", "").replace("_", " ")
    ok = table.loc[(table["deals"] >= min_deals) & table["median_days"].notna()]
    small = int(((table["deals"] < min_deals)).sum())
    if len(ok) == 0:
        return (f"No {esc(what)} has {esc(count(min_deals, 'closed deal'))} or more in the window, so the "
                f"cycle cannot be compared by {esc(what)}.")

    def name(row) -> str:
        return esc(_label(row, (*label_cols, by), missing=f"no {what}"))

    def versus(row) -> str:
        rel = float(row["vs_others"]) - 1 if not _missing(row["vs_others"]) else math.nan
        if _missing(rel):
            return ""
        direction = "shorter" if rel < 0 else "longer"
        return (f", {esc(pct(abs(rel)))} {direction} than the other deals ({esc(days(row['others_median_days']))}); "
                f"{esc(significance(row['p_value'], alpha=alpha))}")

    fast = ok.sort_values("median_days", kind="stable").iloc[0]
    slow = ok.sort_values("median_days", kind="stable").iloc[-1]
    text = (f"By {esc(what)}, the shortest cycle is {name(fast)}: a median of **{esc(days(fast['median_days']))}** "
            f"over {esc(count(fast['deals'], 'deal'))}{versus(fast)}.")
    if len(ok) > 1:
        text += (f" The longest is {name(slow)} with {esc(days(slow['median_days']))} over "
                 f"{esc(count(slow['deals'], 'deal'))}{versus(slow)}.")
    if len(ok) > 5:
        text += (f" With {esc(count(len(ok), what))} compared, one p-value under 0.05 in twenty is expected "
                 "by chance alone, so single differences deserve a second look before anyone acts on them.")
    if small:
        text += (f" {esc(count(small, what, what + 's' if not what.endswith('s') else what))} with fewer than "
                 f"{esc(count(min_deals, 'deal'))} {'is' if small == 1 else 'are'} listed but not ranked.")
    return text


def describe_cycle_survival(survival, *, group: str = "all deals", min_deals: int = 20) -> str:
    """Markdown sentences on survival estimates of the cycle (a ``CycleSurvival``): median time to win with open deals counted.

    For the group ``group``: how many deals were followed, the median days to win with
    its interval against the won-only median, the share eventually won, and the median
    days to any close. When the result is grouped, the group whose deals are won
    fastest (among groups with ``min_deals`` deals or more) is compared with the rest.
    """
    r = survival.row(group)
    since = (f" created since {esc(survival.start.strftime('%Y-%m-%d'))}" if survival.start is not None else "")
    who = "deals" if group == "all deals" else f"{esc(group)} deals"
    if r["deals"] == 0:
        return f"There are no {who}{since} to follow."
    text = (f"Of the {esc(count(r['deals']))} {who}{since}, {esc(count(r['won']))} were won, "
            f"{esc(count(r['lost']))} lost and {esc(count(r['open']))} are still open.")
    if _missing(r["median_win_days"]):
        return text + " None was won, so there is no time to win yet."
    text += (f" Counting the open deals, half of the deals that are won are won within "
             f"**{esc(_cycle_interval(r['median_win_days'], r['median_win_low'], r['median_win_high']))}**")
    gap = float(r["median_win_days"]) - float(r["closed_only_median_win_days"])
    if r["open"] and abs(gap) >= 0.5:
        text += (f"; the won deals alone give {esc(days(r['closed_only_median_win_days']))}, "
                 f"{'shorter' if gap > 0 else 'longer'} because they leave out the deals still running")
    text += f". About {esc(pct(r['won_share']))} of the deals end up won."
    if not _missing(r["median_close_days"]):
        text += (f" Half of all deals are closed, won or lost, within "
                 f"{esc(_cycle_interval(r['median_close_days'], r['median_close_low'], r['median_close_high']))}.")
    if survival.by and len(survival.table) > 1:
        groups = survival.table.loc[(survival.table["group"] != "all deals")
                                    & (survival.table["deals"] >= min_deals)
                                    & survival.table["vs_others"].notna()]
        if len(groups):
            g = groups.sort_values("vs_others", kind="stable").iloc[0]
            rel = float(g["vs_others"]) - 1
            inside = (not _missing(g["median_win_high"]) and not _missing(g["others_median_win_days"])
                      and float(g["median_win_high"]) < float(g["others_median_win_days"]))
            text += (f" {esc(str(g['group']).capitalize())} deals are won fastest: a median of "
                     f"**{esc(days(g['median_win_days']))}** against {esc(days(g['others_median_win_days']))} "
                     f"for the rest ({esc(pct(abs(rel)))} {'faster' if rel < 0 else 'slower'}"
                     + ("; the rest's median lies above its 95% interval, so the difference is not chance"
                        if inside and rel < 0 else "; the intervals overlap, so the difference may be chance")
                     + ").")
    return text


def describe_cycle_trend(trend: pd.DataFrame, growth=None, *, period: str = "period", what: str = "won",
                         claim=CYCLE_GROWTH_CLAIM) -> str:
    """Markdown sentences on the cycle over time (a ``cycle_trend`` table and optionally a ``CycleGrowth``).

    With ``growth``, the yearly change and its significance, set against the sources'
    claim (``claim`` = (growth, years): average sales cycles grew 22% over five years).
    """
    have = trend.loc[trend["deals"] > 0]
    if len(have) == 0:
        return f"No deal was {esc(what)} in these periods, so there is no trend to show."
    lo, hi = have.loc[have["median_days"].idxmin()], have.loc[have["median_days"].idxmax()]
    last = trend.iloc[-1]
    basis = "created" if "created" in trend.columns else what
    text = (f"Over the last {esc(count(len(trend), period))} the median cycle of the deals {esc(basis)} in each "
            f"{esc(period)} ranged from {esc(days(lo['median_days']))} ({esc(lo['period'])}) to "
            f"{esc(days(hi['median_days']))} ({esc(hi['period'])})")
    if last["deals"] > 0:
        text += (f"; in the latest {esc(period)} ({esc(last['period'])}, {esc(count(last['deals'], 'deal'))}) "
                 f"it is {esc(days(last['median_days']))}.")
    else:
        text += f"; the latest {esc(period)} ({esc(last['period'])}) has no such deal yet."
    if basis == "created" and "share_open" in trend.columns:
        text += (f" Recent cohorts are incomplete ({esc(pct(last['share_open']))} of the latest one is still "
                 "open), so their medians only cover the deals that closed fast.")
    if growth is not None and not _missing(growth.per_year):
        five = growth.over(claim[1]) if claim else math.nan
        text += (f" Across {esc(count(growth.n, what + ' deal'))} the cycle changed by "
                 f"**{esc(f'{growth.per_year:+.1%}')} a year** ({esc(f'{growth.level:.0%}')} CI "
                 f"{esc(f'{growth.low:+.1%}')} to {esc(f'{growth.high:+.1%}')}): "
                 f"{esc(significance(growth.p_value))}.")
        if claim:
            text += (f" For comparison, the sources report that average sales cycles grew "
                     f"{esc(pct(claim[0]))} over {esc(count(claim[1], 'year'))}; at this team's rate "
                     f"the change over {esc(count(claim[1], 'year'))} would be {esc(f'{five:+.0%}')}.")
    return text


def describe_stage_times(table: pd.DataFrame) -> str:
    """Markdown sentence on time in stage (a ``stage_time_table``): which stage eats the time, and the slowest and quickest."""
    t = table.loc[table["completed"] > 0]
    if len(t) == 0:
        return "No deal has left a stage yet, so the time in each stage is unknown."
    eats = t.loc[t["share_of_time"].idxmax()]
    slow = t.loc[t["median_days"].idxmax()]
    quick = t.loc[t["median_days"].idxmin()]
    text = (f"{esc(eats['stage'])} eats the most time: {esc(pct(eats['share_of_time']))} of all the days "
            f"deals spent in stages.")
    text += (f" The longest typical stay is in {esc(slow['stage'])} (median {esc(days(slow['median_days']))}, "
             f"90th percentile {esc(days(slow['p90_days']))}); the shortest is {esc(quick['stage'])} "
             f"(median {esc(days(quick['median_days']))}, 90th percentile {esc(days(quick['p90_days']))}).")
    text += (" The 90th percentiles are the stalled-deal norms of the pipeline report: a deal staying "
             "longer than that in a stage is flagged as stalled there.")
    return text


# ----------------------------------------------------------------------------- goals (report 08)
_GOAL_WORDS = {"revenue": ("revenue", "revenue"), "won_deals": ("won deal", "won deals"),
               "calls": ("call", "calls"), "meetings": ("meeting", "meetings"),
               "new_leads": ("new lead", "new leads")}
_GOAL_STATUS_WORDS = {
    "reached": "the target is already reached", "on pace": "on pace",
    "at risk": "at risk of falling short", "off pace": "off pace", "missed": "the target was missed",
    "too early": "too early in the period to judge the pace",
    "not started": "the period has not started", "no working days": "the period has no working days",
    "no data": "the actual is not known"}


def _goal_metric_words(metric) -> str:
    return _GOAL_WORDS.get(str(metric), (str(metric).replace("_", " "),) * 2)[1]


def _goal_value(x, metric, currency=None) -> str:
    """A goal quantity: money for revenue, else a count (one decimal below 10 when fractional)."""
    if _missing(x):
        return NA_TEXT
    if str(metric) == "revenue":
        return money(x, currency)
    v = float(x)
    if abs(v) < 10 and not float(round(v, 1)).is_integer():
        return f"{v:,.1f}"
    return count(v)


def _goal_who(row) -> str:
    return _label(row, ("name", "owner_id", "team"), missing="no owner")


def describe_goal_summary(summary, *, currency: str | None = None) -> str:
    """Markdown on a metric's total goal (a ``GoalSummary`` from ``goals.goal_summary``): share reached
    against share of working days gone, run-rate projection and the comparison periods."""
    s = summary
    what = _goal_metric_words(s.metric)
    if not s.goals:
        note = f" ({esc('; '.join(s.notes))})" if s.notes else ""
        return f"There is no {esc(what)} target for the current period{note}."
    noun = "team" if s.level == "team" else "owner"
    who = f"The {esc(count(s.goals, noun))} together have" if s.goals > 1 else f"The {noun} has"
    if _missing(s.actual):
        return (f"{who} a {esc(what)} target of {esc(_goal_value(s.target, s.metric, currency))} "
                f"for {esc(s.label)}, but the actual is not known: {esc('; '.join(s.notes))}.")

    def value(x):
        return esc(_goal_value(x, s.metric, currency))

    text = (f"{who} reached **{esc(pct(s.share_reached))} of the {esc(what)} target** "
            f"({value(s.actual)} of {value(s.target)}) with **{esc(pct(s.share_elapsed))} of the "
            f"working days** of {esc(s.label)} gone ({esc(f'{s.working_days_elapsed:g}')} of "
            f"{esc(count(s.working_days_total))}).")
    if s.working_days_left > 0 and not _missing(s.projection):
        spread = ""
        if not _missing(s.projection_low) and not _missing(s.projection_high):
            spread = f" (95% range {value(s.projection_low)} to {value(s.projection_high)})"
        text += (f" At this run rate the period ends at **{value(s.projection)}, "
                 f"{esc(pct(s.projected_attainment))} of target**{spread}: "
                 f"{esc(_GOAL_STATUS_WORDS.get(s.status, s.status))}.")
        if s.required_per_day > 0:
            text += (f" Reaching the target takes {value(s.required_per_day)} a working day for the "
                     f"last {esc(count(s.working_days_left, 'working day'))}, against a plan of "
                     f"{value(s.plan_per_day)} a day (1/{esc(count(s.working_days_total))} of the target).")
    else:
        text += f" Status: {esc(_GOAL_STATUS_WORDS.get(s.status, s.status))}."
    comparisons = []
    if not _missing(s.previous_attainment):
        comparisons.append(f"the previous period ({esc(s.previous_label)}) ended at "
                           f"{esc(pct(s.previous_attainment))} of its target")
    if not _missing(s.year_ago_attainment):
        comparisons.append(f"the same period a year ago ({esc(s.year_ago_label)}) at "
                           f"{esc(pct(s.year_ago_attainment))}")
    if comparisons:
        text += " For comparison, " + " and ".join(comparisons) + "."
    if s.notes:
        text += " Note: " + "; ".join(esc(n) for n in s.notes) + "."
    return text


def describe_off_pace(progress: pd.DataFrame, *, metric: str = "revenue", level: str = "owner",
                      currency: str | None = None, off_pace_below: float = 0.8,
                      on_pace_from: float = 0.95, few_events: int = 5) -> str:
    """Markdown naming the goals that are off pace (from ``goals.goal_progress``), with what each needs
    a day, the number at risk, and a warning when projections rest on few events."""
    what = _goal_metric_words(metric)
    rows = progress.loc[(progress["metric"] == metric) & (progress["level"] == level)]
    noun = "owner" if level == "owner" else "team"
    if not len(rows):
        return f"No {esc(noun)} has a {esc(what)} target in this period."
    off = rows.loc[rows["off_pace"].astype(bool)].sort_values("projected_attainment", kind="stable")
    risk = rows.loc[rows["status"] == "at risk"]
    early = int((rows["status"] == "too early").sum())
    if early == len(rows):
        return (f"It is too early in the period to judge the pace of the {esc(count(len(rows), noun))} "
                f"with a {esc(what)} target.")
    if not len(off):
        text = (f"No {esc(noun)} is off pace for {esc(what)} (a run rate reaching less than "
                f"{esc(pct(off_pace_below))} of the target by period end).")
    else:
        names = []
        for _, r in off.head(5).iterrows():
            need = ""
            if not _missing(r["required_per_day"]) and r["working_days_left"] > 0:
                need = (f"; needs {esc(_goal_value(r['required_per_day'], metric, currency))} a working "
                        f"day against {esc(_goal_value(r['run_rate_per_day'], metric, currency))} so far")
            names.append(f"{esc(_goal_who(r))} (projected {esc(pct(r['projected_attainment']))} of "
                         f"{esc(_goal_value(r['target'], metric, currency))}{need})")
        more = f" and {esc(count(len(off) - 5))} more" if len(off) > 5 else ""
        verb = "is" if len(off) == 1 else "are"
        text = (f"**{esc(count(len(off)))} of {esc(count(len(rows), noun))}** {verb} off pace for "
                f"{esc(what)}, their run rate reaching less than {esc(pct(off_pace_below))} of the target "
                f"by period end: {'; '.join(names)}{more}.")
    on = int(rows["on_pace"].astype(bool).sum())
    text += (f" {esc(count(on))} {'is' if on == 1 else 'are'} on pace or already there"
             + (f", {esc(count(len(risk)))} at risk (projected below {esc(pct(on_pace_from))})" if len(risk)
                else "") + ".")
    if len(off) and "events" in off.columns:
        thin = off.loc[off["events"].astype("float64") < few_events]
        if len(thin):
            unit = "won deal" if metric == "revenue" else _GOAL_WORDS.get(metric, (metric,))[0]
            text += (f" The run rates of {esc(count(len(thin), noun))} rest on fewer than "
                     f"{esc(count(few_events, unit))} so far, so one {esc(unit)} more or less moves the "
                     "projection a lot; the size of the gap, not the exact share, is the finding.")
    return text


def describe_goals_by_metric(progress: pd.DataFrame, *, level: str = "owner") -> str:
    """Markdown list: per metric, how many goals are reached, on pace, at risk and off pace (from
    ``goals.goal_progress``)."""
    rows = progress.loc[progress["level"] == level]
    if not len(rows):
        return f"There are no {esc(level)} goals in this period."
    lines = []
    for metric, group in rows.groupby("metric", sort=False):
        counts = group["status"].value_counts()
        parts = [f"{esc(count(int(counts[s])))} {esc(s)}" for s in
                 ("reached", "on pace", "at risk", "off pace", "missed", "too early", "no data")
                 if s in counts.index]
        worst = group.sort_values("projected_attainment", kind="stable").iloc[0]
        low = ""
        if not _missing(worst["projected_attainment"]):
            low = (f"; lowest projection {esc(_goal_who(worst))} at "
                   f"{esc(pct(worst['projected_attainment']))} of target")
        lines.append(f"- **{esc(_goal_metric_words(metric).capitalize())}**: "
                     f"{esc(count(len(group), 'goal'))}, {', '.join(parts)}{low}.")
    return "\n".join(lines)


def describe_working_days(summary, *, country: str | None = None, subdiv: str | None = None) -> str:
    """Markdown on the working-day calendar of a goal period and the even daily plan (the sources'
    example: 22 working days a month, so 1/22 of the monthly plan a day)."""
    s = summary
    if not s.goals or not s.working_days_total:
        return "There is no current goal period to count working days in."
    where = "Monday to Friday"
    if country:
        region = f" ({esc(subdiv)})" if subdiv else ""
        where += f" minus the public holidays of {esc(country)}{region}"
    return (f"Working days are {where}: {esc(s.label)} has {esc(count(s.working_days_total))}, "
            f"{esc(f'{s.working_days_elapsed:g}')} gone and {esc(count(s.working_days_left))} left. An even "
            f"pace plans 1/{esc(count(s.working_days_total))} of each target a working day; the required "
            "pace spreads what is still missing over the working days left.")


def describe_attainment_history(history: pd.DataFrame, *, metric: str = "revenue") -> str:
    """Markdown on how past goal periods ended (from ``goals.attainment_history``): how often the
    target was reached and the range of attainment."""
    done = history.loc[history["complete"].astype(bool) & history["attainment"].notna()]
    what = _goal_metric_words(metric)
    if not len(done):
        return f"No {esc(what)} goal period has ended yet, so there is no track record."
    hit = int((done["attainment"] >= 1).sum())
    best, worst = done.loc[done["attainment"].idxmax()], done.loc[done["attainment"].idxmin()]
    text = (f"The {esc(what)} target was reached in **{esc(count(hit))} of the last "
            f"{esc(count(len(done), 'period'))}**; attainment ranged from {esc(pct(worst['attainment']))} "
            f"({esc(worst['label'])}) to {esc(pct(best['attainment']))} ({esc(best['label'])}), median "
            f"{esc(pct(done['attainment'].median()))}.")
    if hit == 0 and len(done) >= 6:
        text += (" Targets that are never reached are worth a second look: either the plan is set too "
                 "high or the pace fails every time.")
    return text


def off_pace_message(progress: pd.DataFrame, *, metric: str = "revenue", level: str = "owner") -> str:
    """Plain text for the front page's alert: who is off pace for a metric and their projected share
    (not Markdown: the index page escapes it)."""
    rows = progress.loc[(progress["metric"] == metric) & (progress["level"] == level)]
    off = rows.loc[rows["off_pace"].astype(bool)].sort_values("projected_attainment", kind="stable")
    if not len(off):
        return ""
    noun = "owner" if level == "owner" else "team"
    names = ", ".join(f"{_goal_who(r)} ({pct(r['projected_attainment'])})" for _, r in off.head(6).iterrows())
    more = f" and {count(len(off) - 6)} more" if len(off) > 6 else ""
    return (f"{count(len(off))} of {count(len(rows), noun)} off pace for their "
            f"{_goal_metric_words(metric)} target (projected share of target at period end): {names}{more}")


# ----------------------------------------------------------------------------- sales performance (report 05)
def describe_period_results(current, previous=None, year_ago=None, *, currency: str | None = None,
                            period: str = "week", label: str | None = None) -> str:
    """Markdown sentences on the revenue won, deals and win rate of a period (``PeriodResults`` from
    ``metrics.activity.period_results``), compared with the previous period and the same period a year earlier."""
    when = f"In {esc(label)}" if label else f"This {esc(period)}"
    text = (f"{when} the team won **{esc(money(current.revenue_won, currency))}** from "
            f"{esc(count(current.won, 'deal'))}")
    if current.won:
        text += f" (average won deal {esc(money(current.avg_deal_size, currency))})"
    comparisons = []
    if previous is not None:
        comparisons.append(esc(change(current.revenue_won, previous.revenue_won, period=period)))
    if year_ago is not None:
        comparisons.append(esc(change(current.revenue_won, year_ago.revenue_won,
                                      against=f"the same {period} a year earlier")))
    if comparisons:
        text += ", " + " and ".join(comparisons)
    text += f"; {esc(count(current.created, 'deal'))} {'was' if current.created == 1 else 'were'} created."
    if current.missing_amount:
        text += (f" {esc(count(current.missing_amount, 'won deal'))} without an amount "
                 f"{'is' if current.missing_amount == 1 else 'are'} left out of the revenue.")
    return text + " " + describe_win_rate(current.win_rate, what="deals closed in the period")


def describe_owner_performance(table: pd.DataFrame, *, currency: str | None = None, label: str | None = None,
                               next_label: str | None = None) -> str:
    """Markdown sentences on the per-owner table of ``metrics.activity.owner_performance``: who won most,
    and how much activity was done in the period and is scheduled for the next one."""
    if len(table) == 0:
        return "No owner created, won or lost a deal or logged an activity in the period."
    when = f" in {esc(label)}" if label else ""
    winners = table.loc[table["won"] > 0]
    if len(winners):
        top = winners.iloc[0]
        text = (f"{esc(count(len(winners), 'owner'))} won deals{when}; the most revenue came from "
                f"{esc(_label(top, ('name', 'owner_id'), missing='no owner'))}: "
                f"{esc(money(top['revenue_won'], currency))} from {esc(count(top['won'], 'won deal'))}"
                f" (win rate {esc(pct(top['win_rate']))} of {esc(count(top['closed'], 'closed deal'))}).")
    else:
        text = f"No owner won a deal{when}."
    small = table.loc[(table["closed"] > 0) & (table["closed"] < 30)]
    if len(small):
        text += (" Per owner the win rates rest on few deals, so read them with their intervals "
                 "(the low and high columns).")
    done = [c for c in ("calls_done", "emails_done", "meetings_done", "tasks_done") if c in table.columns]
    if done:
        parts = [esc(count(table[c].sum(), c.removesuffix("s_done"))) for c in done]
        text += f" Done{when}: {', '.join(parts)}."
        plan = [c for c in ("meetings_scheduled", "tasks_scheduled", "calls_scheduled", "emails_scheduled")
                if c in table.columns and table[c].sum() > 0]
        nxt = f" for {esc(next_label)}" if next_label else " for the next period"
        if plan:
            parts = [esc(count(table[c].sum(), c.removesuffix("s_scheduled"))) for c in plan]
            idle = table.loc[table[[c for c in table.columns if c.endswith("_scheduled")]].sum(axis=1) == 0]
            text += f" Scheduled{nxt}: {', '.join(parts)}"
            busy = table.loc[table[[c for c in table.columns if c.endswith("_done")]].sum(axis=1) > 0]
            lacking = idle.loc[idle["owner_id"].isin(busy["owner_id"])]
            if len(lacking):
                text += (f"; {esc(count(len(lacking), 'owner'))} active in the period "
                         f"{'has' if len(lacking) == 1 else 'have'} nothing scheduled")
            text += "."
        else:
            text += f" Nothing is scheduled{nxt}."
    return text


def describe_quota_attainment(quota: pd.DataFrame, *, currency: str | None = None) -> str:
    """Markdown sentences on quota attainment (``metrics.activity.quota_attainment``): who has reached the
    target of the running target period, and who is furthest behind the share of the period gone."""
    if len(quota) == 0:
        return "No owner has a revenue target for the period running at the report date."
    q = quota.loc[quota["attainment"].notna()]
    first = quota.iloc[0]
    span = f"{esc(_day_text(first['period_start']))} to {esc(_day_text(first['period_end']))}"
    reached = int((q["attainment"] >= 1).sum())
    text = (f"{esc(count(reached))} of {esc(count(len(quota), 'owner'))} with a revenue target for the "
            f"running target period ({span}) {'has' if reached == 1 else 'have'} reached it")
    elapsed = quota["elapsed_share"].dropna()
    if len(elapsed):
        text += f", with {esc(pct(elapsed.median()))} of the period's working days gone"
    text += "."
    if len(q):
        low = q.sort_values("attainment", kind="stable").iloc[0]
        text += (f" The lowest attainment: {esc(_label(low, ('name', 'owner_id'), missing='no owner'))} at "
                 f"**{esc(pct(low['attainment']))}** ({esc(money(low['actual'], currency))} of "
                 f"{esc(money(low['target'], currency))}).")
    return text


def describe_activity_mix(mix: pd.DataFrame) -> str:
    """Markdown sentence on the activity volume and mix of the latest period (``metrics.activity.activity_mix``)
    against the one before."""
    if len(mix) == 0:
        return "No activities to show."
    totals = mix.groupby("period", sort=False)["activities"].sum()
    last = totals.index[-1]
    total = int(totals.iloc[-1])
    if total == 0:
        return f"No activity was logged in {esc(last)}."
    latest = mix.loc[mix["period"] == last].sort_values("activities", ascending=False, kind="stable")
    shares = [f"{esc(pct(r.share))} {esc(r.type)}s" for r in latest.itertuples() if r.activities > 0]
    text = f"In {esc(last)} the team did **{esc(count(total, 'activity', 'activities'))}**: {', '.join(shares)}"
    if len(totals) > 1:
        text += f", {esc(change(total, totals.iloc[-2], against=str(totals.index[-2])))}"
    text += "."
    if len(totals) > 2:
        text += (f" Over the {esc(count(len(totals), 'period'))} shown the total ranged from "
                 f"{esc(count(totals.min()))} to {esc(count(totals.max()))} a period.")
    if "complete" in latest.columns and not bool(latest["complete"].iloc[0]):
        text += f" {esc(last)} is still running, so its counts are partial."
    return text


def describe_close_ratio(ratio, *, win_rate=None, open_deals: int | None = None, window: str = "") -> str:
    """Markdown sentences on the close ratio (a ``Proportion`` from ``metrics.activity.close_ratio``: won of
    created) next to the win rate (won of closed)."""
    where = f" created {esc(window)}" if window else " created in the window"
    if ratio.n == 0:
        return f"No deals were{where}, so there is no close ratio."
    text = (f"Of the {esc(count(ratio.n, 'deal'))}{where}, {esc(count(ratio.successes))} "
            f"{'was' if ratio.successes == 1 else 'were'} won by the report date: a close ratio of "
            f"**{esc(interval(ratio))}**.")
    if open_deals:
        text += (f" {esc(count(open_deals, 'deal'))} {'is' if open_deals == 1 else 'are'} still open and "
                 "count as not won, so the ratio rises as they close.")
    if win_rate is not None and win_rate.n:
        text += (f" The win rate of the same deals, counting only those already closed, is "
                 f"{esc(interval(win_rate))}; leaving lost deals open would raise the win rate but not the "
                 "close ratio.")
    return text


def describe_activity_outcome(result, *, currency: str | None = None, alpha: float = 0.05) -> str:
    """Markdown paragraph on the activity -> outcome models (an ``ActivityOutcome``): the best call band
    against the most common one, the meetings effect, the within-rep check and the revenue per rep-week,
    each with its interval and its significance in words, and the warning that this is no proof of cause."""
    if not result.fitted:
        why = "; ".join(esc(n) for n in result.notes) or "too little data"
        return f"Calls and meetings cannot be related to deal outcomes here: {why}."
    bands = result.bands.set_index("band")
    best, ref = result.best_band, result.reference_band
    b, r = bands.loc[best], bands.loc[ref]
    who = (f"{esc(count(result.n_deals, 'deal'))} won or lost by {esc(count(len(result.owners), 'rep'))} "
           f"who log calls, over {esc(count(result.weeks, 'week'))}")
    text = [f"The comparison uses the {who}: each deal is set against the calls and meetings its owner "
            "logged in the week it closed."]
    if best == ref:
        text.append(f"No call band does better than the most common one, **{esc(ref)} calls a week** "
                    f"(win rate {esc(interval(b['win_rate'], b['win_rate_low'], b['win_rate_high']))}, "
                    f"{esc(count(b['won']))} of {esc(count(b['deals'], 'deal'))}).")
    else:
        e = result.win_model.effect(result.band_term(best))
        text.append(
            f"**Deals closed in weeks with {esc(best)} calls were won "
            f"{esc(pct(b['win_rate']))} of the time** ({esc(count(b['won']))} of {esc(count(b['deals'], 'deal'))}, "
            f"95% CI {esc(pct(b['win_rate_low']))} to {esc(pct(b['win_rate_high']))}) against "
            f"{esc(pct(r['win_rate']))} in weeks with {esc(ref)} calls, the most common band "
            f"({esc(count(r['won']))} of {esc(count(r['deals']))}). In the logistic regression the odds of "
            f"winning are {esc(_times(e['odds_ratio']))} as high in {esc(best)}-call weeks "
            f"({esc(_ci_times(e, result.win_model.level))}): {esc(significance(e['p_value'], alpha=alpha))}.")
        if b["deals"] < 30:
            text.append(f"Only {esc(count(b['deals'], 'deal'))} closed in such weeks, so the size of the "
                        "effect is uncertain even where its direction is clear.")
    m = result.meetings_term
    if m in set(result.win_model.terms["term"]):
        e = result.win_model.effect(m)
        text.append(f"Weeks with at least {esc(count(result.min_meetings, 'meeting'))}: odds of winning "
                    f"{esc(_times(e['odds_ratio']))} ({esc(_ci_times(e, result.win_model.level))}), "
                    f"{esc(significance(e['p_value'], alpha=alpha))}.")
    if result.within_rep_model is not None and best != ref:
        e = result.within_rep_model.effect(result.band_term(best))
        text.append(f"Comparing each rep only with their own other weeks (so that better reps who also call "
                    f"more cannot explain it), the odds ratio of {esc(best)}-call weeks is "
                    f"{esc(_times(e['odds_ratio']))} ({esc(_ci_times(e, result.within_rep_model.level))}): "
                    f"{esc(significance(e['p_value'], alpha=alpha))}.")
    if result.revenue_model is not None and best != ref:
        e = result.revenue_model.effect(result.band_term(best))
        word = "more" if e["estimate"] >= 0 else "less"
        text.append(f"Revenue won per rep-week: {esc(money(abs(e['estimate']), currency))} {word} in "
                    f"{esc(best)}-call weeks than in {esc(ref)}-call weeks ({result.revenue_model.level:.0%} CI "
                    f"{esc(money(e['low'], currency))} to {esc(money(e['high'], currency))}), "
                    f"{esc(significance(e['p_value'], alpha=alpha))}.")
    n_groups = result.win_model.n_groups or 0
    text.append("**This is an association, not proof of cause.** As the sources warn, the best rep making "
                "twice the calls does not prove that calls cause wins: busy weeks may also be the weeks "
                "with riper deals.")
    if n_groups and n_groups < 30:
        text.append(f"With only {esc(count(n_groups, 'rep'))} the intervals are approximate (standard errors "
                    "clustered by rep, never below the model-based ones, and a t distribution with "
                    f"{esc(count(n_groups - 1))} degrees of freedom).")
    if result.notes:
        text.append("Notes: " + "; ".join(esc(n) for n in result.notes) + ".")
    return " ".join(text)


def _times(x) -> str:
    if _missing(x):
        return NA_TEXT
    x = float(x)
    return f"{x:,.1f}×" if x >= 0.95 else f"{x:,.2f}×"


def _ci_times(effect, level: float) -> str:
    return f"{level:.0%} CI {_times(effect['odds_ratio_low'])} to {_times(effect['odds_ratio_high'])}"


def _day_text(value) -> str:
    if _missing(value):
        return NA_TEXT
    return pd.Timestamp(value).strftime("%Y-%m-%d")


# ----------------------------------------------------------------------------- conversion (report 03)
def _conv_source(value) -> str:
    return "no source" if _missing(value) else str(value)


def _conv_times(a, b) -> str:
    """How many times a is of b, for reading: ``5.8×``."""
    if _missing(a) or _missing(b) or float(b) == 0:
        return NA_TEXT
    v = float(a) / float(b)
    return f"{v:,.1f}×" if v < 10 else f"{v:,.0f}×"


def _conv_rate_text(row, rate: str, k_col: str, n_col: str, *, level: float = 0.95) -> str:
    """``14% (95% CI 13% to 16%, 262 of 1,815)`` from a row with rate, rate_low, rate_high and counts."""
    return (f"{pct(row[rate])} ({level:.0%} CI {pct(row[rate + '_low'])} to {pct(row[rate + '_high'])}, "
            f"{count(row[k_col])} of {count(row[n_col])})")


def describe_cohort(window, *, what: str = "leads and deals") -> str:
    """Markdown sentence saying which cohort a conversion section follows (from ``conversion.cohort_window``)."""
    last_day = (window.as_of - pd.Timedelta(microseconds=1)).date()
    if window.start is None and not window.maturity_days:
        return (f"These figures follow every one of the {esc(what)} created before the report date "
                f"({esc(last_day)}), judged at that date.")
    created = esc(window.label)
    text = (f"These figures follow the {esc(what)} created {created}, judged at the report date "
            f"({esc(last_day)})")
    if window.maturity_days:
        text += (f"; the window ends {esc(days(window.maturity_days))} before the report date so that "
                 "their deals had time to close")
    return text + ". A lead or deal counts as won only if it was won by the report date."


def describe_best_source(ranked) -> str:
    """Markdown sentence naming the best source (the first row of ``conversion.rank_sources``) with its rate and counts."""
    if not len(ranked):
        return "No source has enough leads or closed deals to be ranked."
    b = ranked.iloc[0]
    rate = str(b["ranked_by"])
    if rate.startswith("lead_"):
        won = "won_from_leads" if "won_from_leads" in b.index else "won"
        what = f"{_conv_rate_text(b, rate, won, 'leads')} of its leads won"
    else:
        what = f"{_conv_rate_text(b, rate, 'won', 'closed')} of its closed deals won"
    return (f"The best source is **{esc(_conv_source(b['source']))}**: {esc(what)}; it is ranked by the lower "
            "end of its interval, so a source with few leads cannot top the list by luck.")


def describe_funnel(funnel) -> str:
    """Markdown sentences on a cohort's stage funnel (a ``Funnel`` from ``conversion.stage_funnel``): whole-funnel conversion and the biggest drop-off."""
    n = funnel.cohort
    if n == 0:
        return "No deal was created in this window, so there is no funnel to show."
    last = funnel.table["stage"].iloc[-1]
    text = (f"Of the **{esc(count(n, 'deal'))}** created in the window, "
            f"**{esc(interval(funnel.whole))}** reached {esc(last)} by the report date.")
    drop = funnel.biggest_drop
    if drop is not None and drop["drop_off"] > 0:
        step = int(drop["step"])
        before = funnel.table.loc[funnel.table["step"] == step - 1, "stage"].iloc[0]
        text += (f" The biggest drop-off is from {esc(before)} to {esc(drop['stage'])}: "
                 f"**{esc(pct(drop['drop_off_share']))}** of the deals that reached {esc(before)} "
                 f"({esc(count(drop['drop_off'], 'deal'))}) went no further.")
    if funnel.open_deals:
        text += (f" {esc(count(funnel.open_deals, 'deal'))} of the cohort "
                 f"{'is' if funnel.open_deals == 1 else 'are'} still open, so the later shares may still rise.")
    if funnel.no_history:
        text += (f" {esc(count(funnel.no_history, 'deal'))} without any stage history "
                 f"{'counts' if funnel.no_history == 1 else 'count'} at the first stage only.")
    if funnel.stage_order_source != "stages":
        text += " The export has no stages table, so the stage order was inferred from the stage history."
    return text


def describe_lead_conversion(by_source: pd.DataFrame, overall: pd.DataFrame | None = None, *,
                             min_n: int = 30, rate: str = "lead_to_won") -> str:
    """Markdown sentences on lead-to-won conversion overall and by source (``conversion.lead_conversion`` tables), best against worst."""
    if overall is not None and len(overall):
        o = overall.iloc[0]
        n = int(o["leads"])
        if n == 0:
            return "No lead was created in this window, so there is no lead conversion to show."
        text = (f"Of **{esc(count(n, 'lead'))}** created in the window, "
                f"**{esc(_conv_rate_text(o, rate, 'won', 'leads'))}** became won deals by the report date; "
                f"{esc(pct(o['lead_to_deal']))} became deals at all.")
    else:
        text = ""
    solid = by_source.loc[by_source["leads"] >= min_n].dropna(subset=[rate])
    if len(solid) >= 2:
        ranked = solid.sort_values(rate, ascending=False, kind="stable")
        best, worst = ranked.iloc[0], ranked.iloc[-1]
        text += (f" Leads from {esc(_conv_source(best['source']))} convert best: "
                 f"{esc(_conv_rate_text(best, rate, 'won', 'leads'))}; leads from "
                 f"{esc(_conv_source(worst['source']))} worst: {esc(_conv_rate_text(worst, rate, 'won', 'leads'))}")
        if worst[rate] > 0:
            text += f", so the best converts {esc(_conv_times(best[rate], worst[rate]))} as often."
        else:
            text += "."
        if best[rate + "_low"] <= worst[rate + "_high"]:
            text += " Their intervals overlap, so the gap may be chance."
    small = by_source.loc[by_source["leads"] < min_n]
    if len(small):
        names = ", ".join(esc(_conv_source(s)) for s in small["source"])
        text += (f" Too few leads to judge ({esc(f'fewer than {min_n}')}): {names}.")
    return text.strip()


def describe_conversion_change(change: pd.DataFrame, *, against: str = "a year earlier") -> str:
    """Markdown sentence on whether any source's conversion collapsed (from ``conversion.conversion_change``)."""
    if not len(change):
        return "There is no earlier cohort to compare the sources' conversion with."
    collapsed = change.loc[change["collapsed"]]
    if len(collapsed):
        parts = [f"{esc(_conv_source(r.source))} from {esc(pct(r.rate_before))} to {esc(pct(r.rate_now))}"
                 for r in collapsed.itertuples()]
        return (f"**Conversion collapsed** against {esc(against)} for {'; '.join(parts)} "
                "(a fall by more than half, statistically significant after allowing for testing every source).")
    tested = change.dropna(subset=["ratio", "p_value"])
    if not len(tested):
        return f"No source can be compared with {esc(against)} (no leads then)."
    worst = tested.sort_values("ratio", kind="stable").iloc[0]
    text = f"No source's lead-to-won conversion collapsed against {esc(against)}."
    if worst["ratio"] < 1:
        text += (f" The largest fall is {esc(_conv_source(worst['source']))}, from "
                 f"{esc(pct(worst['rate_before']))} ({esc(count(worst['won_before']))} of "
                 f"{esc(count(worst['leads_before']))}) to {esc(pct(worst['rate_now']))} "
                 f"({esc(count(worst['won_now']))} of {esc(count(worst['leads_now']))}): "
                 f"{esc(significance(worst['p_adjusted']))}, after allowing for testing "
                 f"{esc(count(len(tested), 'source'))}.")
    return text


def describe_source_table(table: pd.DataFrame, *, currency: str | None = None) -> str:
    """Markdown sentences on which sources bring the won revenue and the biggest deals (from ``conversion.source_table``)."""
    rows = table.loc[table["deals"].fillna(0) > 0]
    if not len(rows):
        return "No deal was created in this window."
    total = rows["won_revenue"].sum(min_count=1)
    if _missing(total) or total <= 0:
        return "No deal created in this window has been won yet, so no source has brought revenue."
    top = rows.sort_values("won_revenue", ascending=False, kind="stable").iloc[0]
    text = (f"The most won revenue came from {esc(_conv_source(top['source']))}: "
            f"**{esc(money(top['won_revenue'], currency))}** ({esc(pct(top['won_revenue'] / total))} of "
            f"{esc(money(total, currency))}) from {esc(count(top['won'], 'won deal'))}.")
    sized = rows.dropna(subset=["avg_deal_size"])
    if len(sized) >= 2:
        big = sized.loc[sized["avg_deal_size"].idxmax()]
        small = sized.loc[sized["avg_deal_size"].idxmin()]
        text += (f" Average deal size ranges from {esc(money(small['avg_deal_size'], currency))} "
                 f"({esc(_conv_source(small['source']))}, {esc(count(small['deals'], 'deal'))}) to "
                 f"{esc(money(big['avg_deal_size'], currency))} ({esc(_conv_source(big['source']))}, "
                 f"{esc(count(big['deals'], 'deal'))}).")
    if "median_days_to_convert" in rows.columns and rows["median_days_to_convert"].notna().any():
        conv = rows.dropna(subset=["median_days_to_convert"])
        fast = conv.loc[conv["median_days_to_convert"].idxmin()]
        slow = conv.loc[conv["median_days_to_convert"].idxmax()]
        text += (f" A lead typically becomes a deal within {esc(days(fast['median_days_to_convert']))} "
                 f"({esc(_conv_source(fast['source']))}) to {esc(days(slow['median_days_to_convert']))} "
                 f"({esc(_conv_source(slow['source']))}) of coming in (medians).")
    return text


def describe_source_comparisons(comparisons: pd.DataFrame, *, currency: str | None = None) -> str:
    """Markdown sentences on sources whose won cycle or deal size differs significantly from all other deals (from ``conversion.source_comparisons``)."""
    if not len(comparisons):
        return "Too few deals per source to compare them."
    measure = str(comparisons["measure"].iloc[0])
    cycle = measure == "median_cycle_days"
    sig = comparisons.loc[comparisons["significant"]]
    n_tested = len(comparisons)
    if not len(sig):
        what = "won cycle" if cycle else "average deal size"
        return (f"No source's {what} differs significantly from the other deals "
                f"({esc(count(len(comparisons), 'source'))} compared).")
    parts = []
    for r in sig.itertuples():
        rel = 1 - r.ratio
        if cycle:
            word = "faster" if rel > 0 else "slower"
            head = (f"Deals from {esc(_conv_source(r.source))} are won **{esc(pct(abs(rel)))} {word}**: a median of "
                    f"{esc(days(r.value))} from creation to close against {esc(days(r.others_value))} for all "
                    f"other deals")
        else:
            word = "smaller" if rel > 0 else "larger"
            head = (f"Deals from {esc(_conv_source(r.source))} are **{esc(pct(abs(rel)))} {word}** on average: "
                    f"{esc(money(r.value, currency))} against {esc(money(r.others_value, currency))} for all "
                    f"other deals")
        parts.append(f"{head} (ratio {esc(f'{r.ratio:.2f}')}, {r.level:.0%} CI {esc(f'{r.low:.2f}')} to "
                     f"{esc(f'{r.high:.2f}')}; {esc(count(r.n, 'deal'))}; {esc(significance(r.p_adjusted))} "
                     f"after allowing for testing {esc(count(n_tested, 'source'))}).")
    return " ".join(parts)


def describe_leads_by_period(frame: pd.DataFrame, *, by: str = "source", period: str = "week") -> str:
    """Markdown sentences on incoming leads per period and source (from ``conversion.leads_by_period``)."""
    total = int(frame["leads"].sum()) if len(frame) else 0
    periods = frame["period"].unique() if len(frame) else []
    if total == 0:
        return f"No lead came in over the last {esc(count(len(periods), period))}."
    per = frame.groupby(by)["leads"].sum().sort_values(ascending=False, kind="stable")
    shares = ", ".join(f"{esc(_conv_source(k))} {esc(pct(v / total))}" for k, v in per.items() if v > 0)
    top = per.index[0]
    text = (f"**{esc(count(total, 'lead'))}** came in over the last {esc(count(len(periods), period))}; "
            f"the most came from {esc(_conv_source(top))} ({esc(pct(per.iloc[0] / total))}). By source: {shares}.")
    by_period = frame.groupby("period", sort=False)["leads"].sum()
    if len(by_period) >= 2:
        cur, prev = by_period.iloc[-1], by_period.iloc[-2]
        text += (f" The latest {esc(period)} ({esc(by_period.index[-1])}) brought "
                 f"{esc(count(cur, 'lead'))}, {esc(change(cur, prev, period=period))}.")
    return text


_CONV_LOST_WORDS = {"lost_reason": ("reason", "the most common reason for losing a deal is"),
               "stage_at_loss": ("stage", "most deals are lost at"),
               "owner_id": ("owner", "the owner with the most lost deals is")}


def describe_lost(summary: pd.DataFrame, *, by: str = "lost_reason", currency: str | None = None,
                  start=None, end=None) -> str:
    """Markdown sentence on lost deals per reason, stage at loss or owner (from ``conversion.lost_summary``).

    ``start``/``end`` (instants, end exclusive) name the window in the sentence.
    """
    when = "in the window"
    if start is not None and end is not None:
        last = (pd.Timestamp(end) - pd.Timedelta(microseconds=1)).date()
        when = f"from {esc(pd.Timestamp(start).date())} to {esc(last)}"
    n = int(summary["lost"].sum()) if len(summary) else 0
    if n == 0:
        return f"No deal was lost {when}."
    label = esc(by.replace("_", " "))
    noun, lead = _CONV_LOST_WORDS.get(by, (label, f"the largest {label} group is"))
    top = summary.sort_values(["lost", "value"], ascending=False, kind="stable").iloc[0]
    value = summary["value"].sum(min_count=1)
    worth = f", worth {esc(money(value, currency))}," if not _missing(value) else ""
    text = (f"{esc(count(n, 'deal'))} {'was' if n == 1 else 'were'} lost {when}{worth} and {lead} "
            f"**{esc(top[by])}** ({esc(count(top['lost']))}, {esc(pct(top['lost'] / n))}")
    if not _missing(top["value"]):
        text += f", {esc(money(top['value'], currency))}"
    text += ")."
    if not _missing(value) and value > 0 and summary["value"].notna().any():
        dear = summary.loc[summary["value"].idxmax()]
        if dear[by] != top[by]:
            text += (f" The most value was lost with {noun} {esc(dear[by])}: "
                     f"{esc(money(dear['value'], currency))} ({esc(pct(dear['value'] / value))}).")
    return text


def describe_lost_changes(changes: pd.DataFrame, *, by: str = "lost_reason", period: str = "week") -> str:
    """Markdown sentence on the loss reasons that grew most against the previous period (from ``conversion.lost_reason_changes``)."""
    if not len(changes) or int(changes["current"].sum() + changes["previous"].sum()) == 0:
        return f"No deal was lost this {esc(period)} or the previous one."
    cur, prev = int(changes["current"].sum()), int(changes["previous"].sum())
    text = (f"{esc(count(cur, 'deal'))} {'was' if cur == 1 else 'were'} lost this {esc(period)} against "
            f"{esc(count(prev))} the previous {esc(period)}.")
    grew = changes.loc[changes["change"] > 0].sort_values(["change", "current"], ascending=False, kind="stable")
    if not len(grew):
        return text + " No loss reason grew."
    top = grew.iloc[0]
    text += (f" The reason that grew most is **{esc(top[by])}**: {esc(count(top['current']))} against "
             f"{esc(count(top['previous']))}; {esc(significance(top['p_value']))}.")
    if len(grew) > 1:
        others = ", ".join(f"{esc(r[by])} (+{esc(count(r['change']))})" for _, r in grew.iloc[1:4].iterrows())
        text += f" Also up: {others}."
    return text


__all__ += ["describe_cohort", "describe_best_source", "describe_funnel", "describe_lead_conversion", "describe_conversion_change",
            "describe_source_table", "describe_source_comparisons", "describe_leads_by_period",
            "describe_lost", "describe_lost_changes"]


# ----------------------------------------------------------------------------- customers and cohorts (reports 09, 10)
__all__ += ["describe_revenue_concentration", "describe_abc", "describe_profitability",
            "describe_financial_rating", "describe_rfm_segments", "describe_repeat_share",
            "describe_product_pairs", "describe_next_products", "describe_clv", "describe_clv_model",
            "describe_clv_check", "describe_retention_matrix", "describe_latest_retention",
            "describe_cohort_revenue", "describe_customer_churn", "describe_source_retention",
            "describe_repeat_by_cohort", "describe_deal_cohorts"]


def _cust_name(row) -> str:
    return _label(row, ("name", "account_id"), missing="an unnamed customer")


def describe_revenue_concentration(conc, *, currency: str | None = None, previous=None,
                                   period: str = "week") -> str:
    """Markdown on the Pareto share (a ``Concentration`` from ``revenue_concentration``).

    ``previous`` is the share (a fraction or a ``Concentration``) a period earlier.
    """
    if not conc.customers or _missing(conc.share):
        return "No customer has ordered yet, so revenue concentration cannot be measured."
    text = (f"The top {esc(pct(conc.top_fraction))} of customers ({esc(count(conc.top_customers))} of "
            f"{esc(count(conc.customers))}) bring **{esc(pct(conc.share))}** of order revenue "
            f"({esc(money(conc.top_revenue, currency))} of {esc(money(conc.total_revenue, currency))})")
    if previous is not None:
        prev = previous.share if hasattr(previous, "share") else previous
        if not _missing(prev):
            diff = (conc.share - float(prev)) * 100
            text += (f", {esc(f'{abs(diff):.1f}')} points {'more' if diff > 0 else 'less'} than at the end of the "
                     f"previous {esc(period)}" if abs(diff) >= 0.05 else f", as at the end of the previous {esc(period)}")
    text += "."
    if conc.share >= 0.8:
        text += " Revenue is highly concentrated: losing a few large customers would hurt."
    return text


def describe_abc(abc: pd.DataFrame) -> str:
    """Markdown on the ABC classes (an ``abc_summary`` table)."""
    if not len(abc):
        return "No customer revenue to classify."
    rows = abc.set_index("abc_class")
    parts = []
    for cls in ("A", "B", "C"):
        if cls in rows.index:
            r = rows.loc[cls]
            parts.append(f"class {cls}: {esc(count(r['customers'], 'customer'))} ({esc(pct(r['customer_share']))} of "
                         f"customers) with {esc(pct(r['revenue_share']))} of revenue")
    return ("ABC classes (A: the customers making the first 80% of revenue, B: the next 15%, C: the last 5%): "
            + "; ".join(parts) + ".")


def describe_profitability(table: pd.DataFrame, *, currency: str | None = None) -> str:
    """Markdown on revenue, cost and margin per customer (a ``customer_profitability`` table)."""
    known = table[table["account_id"].notna()] if "account_id" in table else table
    if not len(known):
        return "No orders before the report date."
    revenue = float(table["revenue"].sum())
    margin = table["margin"].sum(min_count=1)
    text = (f"{esc(count(len(known), 'customer'))} ordered for {esc(money(revenue, currency))}")
    if not _missing(margin):
        text += (f" at a margin of **{esc(money(margin, currency))}** ({esc(pct(margin / revenue if revenue else math.nan))}"
                 " of revenue)")
    text += "."
    top = known.iloc[0]
    text += (f" The largest customer, {esc(_cust_name(top))}, ordered {esc(money(top['revenue'], currency))}"
             f" ({esc(pct(top['revenue_share']))} of revenue).")
    losing = known[known["margin"] < 0]
    if len(losing):
        text += f" {esc(count(len(losing), 'customer'))} cost more than they paid."
    no_cost = int(table["lines_without_cost"].sum()) if "lines_without_cost" in table else 0
    if no_cost:
        text += f" {esc(count(no_cost, 'order line'))} without a cost leave their customer's margin unknown."
    return text


def describe_financial_rating(rating: pd.DataFrame, *, currency: str | None = None,
                              window: str = "the window") -> str:
    """Markdown on the financial rating (a ``financial_rating`` table): who won the most, with deal counts."""
    buyers = rating[rating["revenue"] > 0]
    if not len(buyers):
        return f"No customer won a deal in {esc(window)}."
    top = buyers.iloc[0]
    text = (f"In {esc(window)}, {esc(count(len(buyers), 'customer'))} won deals worth "
            f"**{esc(money(buyers['revenue'].sum(), currency))}**. First in the rating: {esc(_cust_name(top))} with "
            f"{esc(money(top['revenue'], currency))} from {esc(count(top['won'], 'won deal'))}")
    if not _missing(top["won_created_ratio"]):
        text += (f" ({esc(count(top['created'], 'deal'))} created in the window, won/created "
                 f"{esc(f'{top.won_created_ratio:.2f}')})")
    text += "."
    created = int(rating["created"].sum())
    if created:
        text += (f" Across all customers, {esc(count(int(rating['won'].sum()), 'deal'))} won against "
                 f"{esc(count(created, 'deal'))} created (won/created {esc(f'{rating.won.sum() / created:.2f}')}).")
    return text


def describe_rfm_segments(segments: pd.DataFrame, *, currency: str | None = None) -> str:
    """Markdown on the RFM segments (an ``rfm_segments`` table): the best and the slipping customers."""
    s = segments.set_index("segment")
    n = int(s["customers"].sum())
    if not n:
        return "No customer has ordered yet, so there are no RFM segments."
    parts = []
    if "Champions" in s.index and s.loc["Champions", "customers"]:
        c = s.loc["Champions"]
        parts.append(f"**{esc(count(c['customers'], 'champion'))}** ({esc(pct(c['customer_share']))} of customers: "
                     f"recent and frequent buyers) bring {esc(pct(c['revenue_share']))} of revenue.")
    if "At risk" in s.index and s.loc["At risk", "customers"]:
        a = s.loc["At risk"]
        parts.append(f"**{esc(count(a['customers'], 'customer'))} at risk** used to buy often but have not "
                     f"bought for a median of {esc(days(a['median_recency_days']))}; they brought "
                     f"{esc(money(a['revenue'], currency))} ({esc(pct(a['revenue_share']))} of revenue) and are the "
                     "first to call.")
    lost = sum(int(s.loc[k, "customers"]) for k in ("Hibernating", "Lost") if k in s.index)
    if lost:
        parts.append(f"{esc(count(lost, 'customer'))} ({esc(pct(lost / n))}) bought once or twice long ago "
                     "(hibernating or lost).")
    return " ".join(parts)


def describe_repeat_share(share) -> str:
    """Markdown on the repeat-purchase share (a ``Proportion`` from ``repeat_purchase_share``)."""
    if share.n == 0:
        return "No customer has ordered yet."
    return (f"**{esc(pct(share.estimate))}** of customers bought again on a later day "
            f"({esc(count(share.successes))} of {esc(count(share.n))}; {esc(f'{share.level:.0%}')} CI "
            f"{esc(pct(share.low))} to {esc(pct(share.high))}); the others have bought once so far.")


def _lift_text(row, a_col: str, b_col: str, joint: str, alpha: float) -> str:
    sig = significance(row["p_value"], alpha=alpha)
    return (f"**{esc(row[a_col])}** and **{esc(row[b_col])}** are {joint} in {esc(count(row['count'], 'transaction'))} "
            f"({esc(pct(row['support']))} of all), {esc(f'{row.lift:.1f}')}× as often as if they were "
            f"independent; {esc(sig)}")


def describe_product_pairs(pairs: pd.DataFrame, *, alpha: float = 0.05) -> str:
    """Markdown on the products bought together (a ``product_pairs`` table, highest lift first).

    The test level is divided by the number of pairs (Bonferroni), since many pairs are tried.
    """
    if not len(pairs):
        return "No two products were bought together often enough to measure."
    level = alpha / len(pairs)
    top = pairs.iloc[0]
    text = _lift_text(top, "product_a", "product_b", "bought together", level) + "."
    if top["lift"] >= 1.5 and top["p_value"] < level:
        text += (f" Of the customers buying {esc(top['product_a'])}, {esc(pct(top['confidence']))} also take "
                 f"{esc(top['product_b'])} in the same purchase: a natural bundle or cross-sell offer.")
    else:
        text = "No product pair stands out: " + text
    others = pairs.iloc[1:]
    strong = others[(others["lift"] >= 1.5) & (others["p_value"] < level)]
    if len(strong):
        text += f" {esc(count(len(strong), 'other pair'))} also sell together more than chance."
    elif len(others):
        text += " No other pair is bought together much more often than chance."
    return text


def describe_next_products(nxt: pd.DataFrame, *, alpha: float = 0.05) -> str:
    """Markdown on what customers buy next (a ``next_products`` table, highest lift first)."""
    if not len(nxt):
        return "Too few repeat purchases to tell what customers buy next."
    level = alpha / len(nxt)
    strong = nxt[(nxt["lift"] >= 1.5) & (nxt["p_value"] < level)]
    if not len(strong):
        top = nxt.iloc[0]
        return (f"No product clearly leads to another: the strongest sequence, {esc(top['product'])} then "
                f"{esc(top['next_product'])}, is {esc(f'{top.lift:.2f}')}× the chance level "
                f"({esc(significance(top['p_value'], alpha=level))}).")
    top = strong.iloc[0]
    return (f"After buying **{esc(top['product'])}**, {esc(pct(top['confidence']))} of next purchases include "
            f"**{esc(top['next_product'])}**, {esc(f'{top.lift:.1f}')}× the usual share "
            f"({esc(significance(top['p_value'], alpha=level))}).")


def describe_clv(value, *, currency: str | None = None, previous=None, period: str = "week") -> str:
    """Markdown on customer lifetime value (a ``CustomerValue`` from ``customer_lifetime_value``)."""
    t = value.table
    if not len(t):
        return "No customers to value."
    active = value.active
    horizon = f"{value.horizon_weeks:,.0f} weeks"
    text = (f"Over the next {esc(horizon)}, the **{esc(count(len(active), 'active customer'))}** (still buying with "
            f"a probability of at least {esc(pct(value.active_threshold))}) are expected to make "
            f"{esc(f'{active.expected_purchases.sum():,.0f}')} purchases worth **{esc(money(value.total_active_clv, currency))}**"
            f" (discounted at {esc(pct(value.discount_rate))} a year)")
    if previous is not None and not _missing(previous):
        text += f", {esc(change(value.total_active_clv, previous, period=period))}"
    text += (f"; all {esc(count(len(t), 'customer'))} together {esc(money(value.total_clv, currency))}.")
    top = t.iloc[0]
    text += (f" The most valuable customer, {esc(_cust_name(top))}, is expected to bring "
             f"{esc(money(top['clv'], currency))} ({esc(f'{top.expected_purchases:.1f}')} purchases of about "
             f"{esc(money(top['expected_spend'], currency))}).")
    at_risk = t[(t["probability_alive"] < value.active_threshold)]
    if len(at_risk):
        past = at_risk["repeat_purchases"].sum()
        text += (f" {esc(count(len(at_risk), 'customer'))} who bought again before "
                 f"({esc(count(past, 'repeat purchase'))} between them) have probably stopped buying.")
    return text


def describe_clv_model(value, *, currency: str | None = None) -> str:
    """Markdown on what the fitted BG/NBD and Gamma-Gamma parameters mean (from a ``CustomerValue``)."""
    bg, gg = value.purchases.params_, value.spend.params_
    rate = bg["r"] / bg["alpha"]
    drop = bg["a"] / (bg["a"] + bg["b"])
    text = (f"While active, a typical customer buys about {esc(f'{rate * 52:.1f}')} times a year "
            f"(r / alpha = {esc(f'{rate:.3f}')} a week, varying a lot between customers: r = "
            f"{esc(f'{bg.r:.2f}')}), and after each purchase stops buying with a probability of "
            f"{esc(pct(drop))} on average. A purchase is worth {esc(money(value.spend.population_mean_spend_, currency))} "
            f"on average.")
    corr = getattr(value.spend, "frequency_spend_correlation_", math.nan)
    if not _missing(corr):
        text += (f" The spend model assumes that how much a customer spends does not depend on how often they buy: "
                 f"the correlation is {esc(f'{corr:.2f}')}")
        text += (", close to zero, so the assumption holds." if abs(corr) < 0.3
                 else ", which is not small: read the spend forecasts with care.")
    if not (value.purchases.converged_ and value.spend.converged_):
        text += " **A model fit did not converge: do not trust these values.**"
    return text


def describe_clv_check(check) -> str:
    """Markdown on the hold-out check of the purchase model (a ``ModelCheck``)."""
    if not check.actual and not check.predicted:
        return "Too little history for a hold-out check of the purchase model."
    weeks = (check.holdout_end - check.calibration_end) / pd.Timedelta(weeks=1)
    err = check.error
    text = (f"Checked on the last {esc(f'{weeks:,.0f}')} weeks: fitted only on the orders before "
            f"{esc(str(pd.Timestamp(check.calibration_end).date()))}, the model expected "
            f"{esc(f'{check.predicted:,.0f}')} repeat purchases by the {esc(count(check.customers, 'customer'))} known "
            f"then; {esc(count(check.actual))} happened")
    if _missing(err):
        return text + "."
    text += f" ({esc(f'{err:+.0%}')})."
    text += (" The forecasts are trustworthy at this level." if abs(err) <= 0.15
             else " The model is off by more than 15%: treat the values as rough.")
    return text


def describe_retention_matrix(activity: pd.DataFrame, *, unit: str = "month") -> str:
    """Markdown on the retention matrix (a ``cohort_activity`` table): typical retention by age."""
    obs = activity[activity["observed"] & (activity["age"] > 0) & activity["complete"]]
    if not len(obs):
        return "No cohort is old enough yet to show whether customers buy again."
    g = obs.groupby("age")
    w = (g["buyers"].sum() / g["customers"].sum()).dropna()
    first, last = w.index.min(), w.index.max()
    text = (f"On average **{esc(pct(w.loc[first]))}** of a cohort buys again in {unit} {esc(count(first))} after "
            f"acquisition and {esc(pct(w.loc[last]))} in {unit} {esc(count(last))}")
    ncoh = activity["cohort"].nunique()
    text += f" (all {esc(count(ncoh, 'cohort'))}, weighted by size; blank cells are {unit}s not over yet)."
    return text


def describe_latest_retention(latest, *, months: int = 3) -> str:
    """Markdown on the latest complete cohort's retention (a ``LatestRetention``)."""
    if latest.rate is None:
        return f"No cohort is old enough yet for its {esc(count(months, 'month'))} retention."
    r = latest.rate
    text = (f"**{esc(pct(r.estimate))}** of the customers acquired in {esc(latest.cohort)} bought again within "
            f"{esc(count(months, 'month'))} ({esc(count(r.successes))} of {esc(count(r.n))}; {esc(f'{r.level:.0%}')} "
            f"CI {esc(pct(r.low))} to {esc(pct(r.high))})")
    comps = []
    for label, p in ((latest.previous_cohort, latest.previous), (latest.year_ago_cohort, latest.year_ago)):
        if p is not None:
            comps.append(f"{esc(pct(p.estimate))} for {esc(label)}")
    if comps:
        text += ", against " + " and ".join(comps)
    text += "."
    if latest.previous is not None and r.n and latest.previous.n:
        from statsmodels.stats.proportion import proportions_ztest

        k = [r.successes, latest.previous.successes]
        n = [r.n, latest.previous.n]
        if 0 < sum(k) < sum(n):
            p = float(proportions_ztest(k, n)[1])
            text += f" The change from the previous cohort is {esc(significance(p))}."
    return text


def describe_cohort_revenue(activity: pd.DataFrame, *, currency: str | None = None, age: int = 12,
                            unit: str = "month") -> str:
    """Markdown on cumulative revenue per customer by cohort (a ``cohort_activity`` table)."""
    at = activity[(activity["age"] == age) & activity["observed"]].dropna(subset=["cumulative_revenue_per_customer"])
    if not len(at):
        return f"No cohort is {esc(count(age, unit))} old yet."
    lo = at.loc[at["cumulative_revenue_per_customer"].idxmin()]
    hi = at.loc[at["cumulative_revenue_per_customer"].idxmax()]
    mean = (at["cumulative_revenue_per_customer"] * at["customers"]).sum() / at["customers"].sum()
    return (f"By {unit} {esc(count(age))} after acquisition, a customer has brought "
            f"**{esc(money(mean, currency))}** on average (first order included), from "
            f"{esc(money(lo['cumulative_revenue_per_customer'], currency))} in cohort {esc(lo['cohort'])} to "
            f"{esc(money(hi['cumulative_revenue_per_customer'], currency))} in cohort {esc(hi['cohort'])} "
            f"({esc(count(len(at), 'cohort'))} old enough).")


def describe_customer_churn(churn, *, previous=None) -> str:
    """Markdown on churn with its definition (a ``Churn`` from ``customer_churn``); ``previous`` a year earlier."""
    months = churn.inactive_months
    if not churn.customers:
        return f"No customer is older than {esc(count(months, 'month'))} yet, so churn cannot be measured."
    r = churn.rate
    text = (f"A customer counts as churned after {esc(count(months, 'month'))} without a purchase. "
            f"**{esc(pct(r.estimate))}** of the customers acquired before {esc(str(churn.cutoff.date()))} have churned "
            f"({esc(count(churn.churned))} of {esc(count(churn.customers))}; {esc(f'{r.level:.0%}')} CI "
            f"{esc(pct(r.low))} to {esc(pct(r.high))})")
    if previous is not None and previous.customers:
        text += f", against {esc(pct(previous.rate.estimate))} a year earlier"
    return text + "."


def describe_source_retention(table: pd.DataFrame, *, ages=(7, 12), by: str = "source", min_customers: int = 30,
                              unit: str = "month") -> str:
    """Markdown comparing retention across acquisition sources (a ``cohort_retention(by=...)`` table)."""
    t = table[table["customers"] >= min_customers].dropna(subset=["retention"])
    if len(t) < 2:
        return (f"Too few customers per {esc(by)} whose {unit}s {esc(count(ages[0]))} to {esc(count(ages[1]))} are over "
                "to compare retention.")
    best = t.loc[t["retention"].idxmax()]
    worst = t.loc[t["retention"].idxmin()]
    rest = table[table[by] != best[by]]
    rest_rate = rest["retained"].sum() / rest["customers"].sum() if rest["customers"].sum() else math.nan
    text = (f"Customers from **{esc(best[by])}** retain best: {esc(pct(best['retention']))} of them bought in "
            f"{unit}s {esc(count(ages[0]))}-{esc(count(ages[1]))} after acquisition "
            f"({esc(count(best['retained']))} of {esc(count(best['customers']))}; CI {esc(pct(best['retention_low']))} "
            f"to {esc(pct(best['retention_high']))}) against {esc(pct(rest_rate))} for all other sources, "
            f"{esc(significance(best['p_value']))}. They made {esc(f'{best.purchases_per_customer:.2f}')} purchases per "
            f"customer in that window (others: "
            f"{esc(f'{rest.purchases.sum() / rest.customers.sum():.2f}' if rest['customers'].sum() else 'n/a')}).")
    if worst[by] != best[by]:
        text += f" Lowest: {esc(worst[by])} with {esc(pct(worst['retention']))}."
    small = table[(table["customers"] < min_customers)]
    if len(small):
        text += (f" {esc(count(len(small), by))} with fewer than {esc(count(min_customers, 'customer'))} "
                 "counted are not compared.")
    return text


def describe_repeat_by_cohort(table: pd.DataFrame, *, within: int = 12, unit: str = "month") -> str:
    """Markdown on the repeat-purchase rate by cohort (a ``repeat_rate_by_cohort`` table)."""
    done = table[table["complete"]].dropna(subset=["repeat_rate"])
    young = int((~table["complete"]).sum())
    if not len(done):
        return f"No cohort is {esc(count(within, unit))} old yet."
    lo = done.loc[done["repeat_rate"].idxmin()]
    hi = done.loc[done["repeat_rate"].idxmax()]
    overall = done["repeaters"].sum() / done["customers"].sum()
    text = (f"Within {esc(count(within, unit))} of acquisition, **{esc(pct(overall))}** of customers made a second "
            f"purchase, from {esc(pct(lo['repeat_rate']))} ({esc(lo['cohort'])}) to {esc(pct(hi['repeat_rate']))} "
            f"({esc(hi['cohort'])}).")
    if young:
        text += (f" The {esc(count(young, 'youngest cohort'))} {'is' if young == 1 else 'are'} not "
                 f"{esc(count(within, unit))} old yet and get no rate (they would look worse only for lack of time).")
    return text


def describe_deal_cohorts(table: pd.DataFrame, *, age: int = 3, unit: str = "month", min_deals: int = 20) -> str:
    """Markdown on cumulative win rates of deal cohorts (a ``deal_cohort_win_rates`` table); the range
    is taken over cohorts of at least ``min_deals`` deals."""
    at = table[(table["age"] == age) & table["observed"] & (table["deals"] >= min_deals)]
    if not len(at):
        return f"No deal cohort is {esc(count(age, unit))} old yet."
    rate = at["won"].sum() / at["deals"].sum()
    lo = at.loc[at["win_rate"].idxmin()]
    hi = at.loc[at["win_rate"].idxmax()]
    young = table.loc[~table["observed"], "cohort"].nunique()
    text = (f"{esc(count(age, unit))} after the {unit} they were created in, **{esc(pct(rate))}** of deals are won "
            f"on average, from {esc(pct(lo['win_rate']))} ({esc(lo['cohort'])}) to {esc(pct(hi['win_rate']))} "
            f"({esc(hi['cohort'])}).")
    if young:
        text += (f" Blank cells are ages the {esc(count(young, 'younger cohort'))} have not reached yet: compare "
                 "cohorts at the same age, not their last cell.")
    return text


# ----------------------------------------------------------------------------- sales cycle (report 04): plot titles
__all__ += ["title_cycle_survival", "title_cycle_groups", "title_cycle_trend"]


def title_cycle_survival(survival, *, group: str = "all deals") -> str:
    """A plot title (plain text) stating how fast deals are won and how many end up won, from a ``CycleSurvival``."""
    r = survival.row(group)
    if _missing(r["median_win_days"]):
        return f"No deal won yet among {count(r['deals'], 'deal')}"
    return (f"Half of the deals we win are won within {days(r['median_win_days'])}; "
            f"{pct(r['won_share'])} of deals end up won")


def title_cycle_groups(survival, *, min_deals: int = 20) -> str:
    """A plot title (plain text) naming the group whose deals are won fastest against the rest, from a grouped ``CycleSurvival``."""
    t = survival.table
    groups = t.loc[(t["group"] != "all deals") & (t["deals"] >= min_deals) & t["vs_others"].notna()]
    if len(groups) == 0:
        return "Time to win by group"
    g = groups.sort_values("vs_others", kind="stable").iloc[0]
    rel = float(g["vs_others"]) - 1
    return (f"{str(g['group']).capitalize()} deals are won in {days(g['median_win_days'])}, "
            f"{pct(abs(rel))} {'faster' if rel < 0 else 'slower'} than the rest "
            f"({days(g['others_median_win_days'])})")


def title_cycle_trend(trend: pd.DataFrame, growth=None) -> str:
    """A plot title (plain text) on the cycle's trend: the yearly change and whether it is significant."""
    if growth is None or _missing(growth.per_year):
        have = trend["median_days"].dropna()
        return (f"Median cycle between {days(have.min())} and {days(have.max())}" if len(have)
                else "No closed deals in these periods")
    word = "significant" if growth.p_value < 0.05 else "not significant"
    verb = "grow" if growth.per_year > 0 else "shrink"
    return f"Cycles {verb} {pct(abs(growth.per_year), digits=1)} a year ({word}, p = {growth.p_value:.2f})"


# ----------------------------------------------------------------------------- sales performance (report 05), 2
def describe_meetings_in_band(comparison, *, alpha: float = 0.05) -> str:
    """Markdown sentence on the meetings effect inside one call band (a ``RateComparison`` from
    ``metrics.activity.meetings_in_band``), with Fisher's exact test in words."""
    c = comparison
    if c is None or not c.many.n or not c.fewer.n:
        return "Inside the best call band all weeks had the same side of the meetings threshold, so there is no comparison."
    text = (f"Inside the {esc(c.band)} band, deals closed in weeks with at least "
            f"{esc(count(c.min_meetings, 'meeting'))} were won **{esc(pct(c.many.estimate))}** of the time "
            f"({esc(count(c.many.successes))} of {esc(count(c.many.n))}) against {esc(pct(c.fewer.estimate))} "
            f"({esc(count(c.fewer.successes))} of {esc(count(c.fewer.n))}) in weeks with fewer: "
            f"{esc(significance(c.p_value, alpha=alpha))} (Fisher's exact test).")
    if not c.p_value < alpha and min(c.many.n, c.fewer.n) < 30:
        text += " So few deals cannot tell the two apart."
    return text


def title_effects(result) -> str:
    """Plain-text title for the odds-ratio plot of an ``ActivityOutcome``: which effects clearly differ from the reference band."""
    if result.win_model is None:
        return "No model could be fitted"
    t = result.win_model.terms
    t = t.loc[t["term"].str.startswith("calls ") | (t["term"] == result.meetings_term)]
    clear = t.loc[(t["odds_ratio_low"] > 1) | (t["odds_ratio_high"] < 1), "term"].tolist()
    against = f"against weeks with {result.reference_band} calls"
    if not clear:
        return f"No effect clearly differs from no effect ({against})"
    return f"Clearly different odds of winning {against}: {', '.join(map(str, clear))}"


def title_quota_attainment(quota: pd.DataFrame) -> str:
    """Plain-text title for the quota-attainment plot: how many reached their target and who is lowest."""
    q = quota.loc[quota["attainment"].notna()]
    if not len(q):
        return "No owner has a revenue target running"
    low = q.sort_values("attainment", kind="stable").iloc[0]
    return (f"{count(int((q['attainment'] >= 1).sum()))} of {count(len(quota), 'owner')} reached their "
            f"target; lowest: {_label(low, ('name', 'owner_id'), missing='no owner')} at {pct(low['attainment'])}")


# ----------------------------------------------------------------------------- cohort picture titles (report 10)
__all__ += ["retention_title", "cohort_revenue_title", "deal_cohort_title"]


def retention_title(activity: pd.DataFrame, *, unit: str = "month") -> str:
    """Plain-text finding for the retention heat-map (a ``cohort_activity`` table)."""
    obs = activity[activity["observed"] & (activity["age"] > 0) & activity["complete"]]
    if not len(obs):
        return "No cohort is old enough yet to show repeat purchases"
    g = obs.groupby("age")
    w = (g["buyers"].sum() / g["customers"].sum()).dropna()
    return (f"{pct(w.iloc[0])} of a cohort buys again in {unit} {w.index[0]}, "
            f"{pct(w.iloc[-1])} in {unit} {w.index[-1]}")


def cohort_revenue_title(activity: pd.DataFrame, *, currency: str | None = None, age: int = 12,
                         unit: str = "month") -> str:
    """Plain-text finding for the cumulative revenue per customer heat-map (a ``cohort_activity`` table)."""
    at = activity[(activity["age"] == age) & activity["observed"]].dropna(subset=["cumulative_revenue_per_customer"])
    if not len(at):
        return f"Revenue per customer by cohort (no cohort is {count(age, unit)} old yet)"
    mean = (at["cumulative_revenue_per_customer"] * at["customers"]).sum() / at["customers"].sum()
    return f"A customer brings {money(mean, currency)} by {unit} {age} on average"


def deal_cohort_title(table: pd.DataFrame, *, age: int = 3, unit: str = "month") -> str:
    """Plain-text finding for the deal-cohort win-rate heat-map (a ``deal_cohort_win_rates`` table)."""
    at = table[(table["age"] == age) & table["observed"]]
    if not len(at) or not at["deals"].sum():
        return "Cumulative win rate of deals by creation month"
    return f"{pct(at['won'].sum() / at['deals'].sum())} of deals are won by {unit} {age} after creation"


__all__ += ["describe_weak_months"]


def describe_weak_months(weak: pd.DataFrame, *, ages=(1, 12), unit: str = "month") -> str:
    """Markdown on weak acquisition cohorts (a ``weak_cohorts`` table): how many came back, and how many of those kept buying."""
    if not len(weak):
        return "No cohort is old and large enough yet to test."
    flagged = weak[weak["weak"]]
    if not len(flagged):
        return (f"No acquisition {esc(unit)} stands out: among {esc(count(len(weak), 'cohort'))} tested, none has "
                "returning customers who stop buying significantly more often than the others.")
    window = f"{unit}s {count(ages[0])} to {count(ages[1])}"
    lead = (f"One acquisition {esc(unit)} is weak" if len(flagged) == 1
            else f"{esc(count(len(flagged)))} acquisition {esc(unit)}s are weak")
    parts = []
    for _, w in flagged.iterrows():
        others = weak[weak["cohort"] != w["cohort"]]
        rest = others["retained"].sum() / others["customers"].sum() if others["customers"].sum() else math.nan
        if _missing(w["p_value"]) or w["p_value"] >= 0.05:
            compare = "about as many as"
        else:
            compare = "fewer than" if w["retention"] < rest else "more than"
        parts.append(f"**{esc(w['cohort'])}**: {esc(pct(w['retention']))} of its {esc(count(w['customers'], 'customer'))} "
                     f"came back in {esc(window)}, {compare} in the other cohorts ({esc(pct(rest))}), but only "
                     f"{esc(pct(w['kept_share']))} of those bought again, against {esc(pct(w['rest_kept_share']))} "
                     f"elsewhere ({esc(significance(w['kept_p_value']))}); {esc(f'{w.purchases_per_customer:.2f}')} "
                     f"purchases per customer in that window")
    return (f"{lead}. " + ". ".join(parts) + ". Customers who come back once and then stop point to a problem "
            "after the sale: look at what these customers were sold and promised.")


# ----------------------------------------------------------------------------- sales forecast (07)
_FREQ_WORD = {"month": "month", "week": "week"}
_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")


def _num(x, digits: int = 2) -> str:
    """A plain number with ``digits`` decimals (n/a when missing)."""
    return NA_TEXT if _missing(x) else f"{float(x):,.{digits}f}"


def _month_name(k) -> str:
    return _MONTH_NAMES[int(k) - 1] if 1 <= int(k) <= 12 else str(int(k))


def _fc_bounds(row, level: float, currency) -> str:
    lo, hi = row.get(f"lo_{level * 100:.0f}"), row.get(f"hi_{level * 100:.0f}")
    return f"{money(lo, currency)} to {money(hi, currency)}"


def _method_words(method: str) -> str:
    return {"naive": "the naive forecast (the last complete period repeated)",
            "seasonal naive": "the seasonal naive forecast (the same period a year earlier)"}.get(
        method, f"the model {method}")


def describe_bookings_forecast(result, outlook: pd.DataFrame, *, currency: str | None = None,
                               freq: str = "month") -> str:
    """Markdown on the bookings forecast: the next period with its intervals, which forecast leads and why, and the running period.

    ``result`` is a ``stats.forecast.BookingsForecast``; ``outlook`` its lead forecast
    through ``metrics.forecast.bookings_outlook``.
    """
    unit = _FREQ_WORD.get(freq, "period")
    if outlook is None or len(outlook) == 0:
        return "There is no forecast."
    ahead = outlook[outlook["status"] == "ahead"]
    nxt = (ahead if len(ahead) else outlook).iloc[0]
    comp = result.comparison
    text = (f"**Next {esc(unit)} ({esc(nxt['period'])}): {esc(money(nxt['forecast'], currency))} expected** "
            f"(80% interval {esc(_fc_bounds(nxt, 0.8, currency))}; 95% interval "
            f"{esc(_fc_bounds(nxt, 0.95, currency))}), from {esc(_method_words(result.lead_method))}.")
    model = result.selection.spec.label
    n_cand = int(result.selection.table["aicc"].notna().sum())
    if result.model_beats_baseline:
        text += (f" The model {esc(model)} was chosen by AICc among {esc(count(n_cand))} candidates and beat "
                 f"the best naive baseline ({esc(comp['baseline'])}) in the backtest one {esc(unit)} ahead "
                 f"(MASE {esc(_num(comp['model_mase']))} against {esc(_num(comp['baseline_mase']))}).")
    elif comp["baseline"] is not None:
        h = int(nxt["horizon"]) - 1
        text += (f" The statistical model ({esc(model)}, chosen by AICc among {esc(count(n_cand))} candidates) "
                 f"did **not** beat the {esc(comp['baseline'])} forecast in the backtest one {esc(unit)} ahead "
                 f"(MASE {esc(_num(comp['model_mase']))} against {esc(_num(comp['baseline_mase']))}), "
                 f"so the report leads with the baseline; the model would say "
                 f"{esc(money(result.model.mean[h], currency))}.")
    run = outlook[outlook["status"] == "running"]
    if len(run):
        r0 = run.iloc[0]
        text += (f" The running {esc(unit)} {esc(r0['period'])} has {esc(money(r0['booked'], currency))} "
                 f"booked with {esc(pct(r0['remaining_share']))} of its weekdays to go: "
                 f"{esc(money(r0['outlook'], currency))} expected in all (80% interval "
                 f"{esc(_fc_bounds(r0, 0.8, currency))}).")
    return text


def describe_backtest(backtest, comparison: dict, *, freq: str = "month") -> str:
    """Markdown on the rolling-origin backtest: errors of the model and the baselines one period ahead, the verdict and the interval coverage."""
    unit = _FREQ_WORD.get(freq, "period")
    c = comparison
    if not c.get("n"):
        return "The history is too short for a backtest, so nobody can tell whether the model beats a naive forecast."
    s = backtest.scores()
    one = s[s["horizon"] == 1].set_index("method")
    parts = [f"{esc(m)} {esc(_num(one.loc[m, 'mase']))} (MAPE {esc(pct(one.loc[m, 'mape']))})"
             for m in ("model", "naive", "seasonal naive") if m in one.index]
    text = (f"Backtest at {esc(count(backtest.origins, 'rolling origin'))} (at each one the model was chosen "
            f"and fitted again on the data before it): one {esc(unit)} ahead the mean absolute scaled error "
            f"(MASE) was " + ", ".join(parts) + ". ")
    verdict = "beats" if c["beats"] else "does **not** beat"
    text += (f"The model {verdict} the best baseline ({esc(c['baseline'])}) one {esc(unit)} ahead; the "
             f"difference is {esc(significance(c['p_value']))} over {esc(count(c['n'], 'origin'))}.")
    if not backtest.enough_origins:
        text += (f" Only {esc(count(backtest.origins, 'origin'))} fit in the history (at least "
                 f"{esc(count(backtest.min_origins))} were asked for), so this comparison is weak evidence.")
    cov = s[s["method"] == "model"]
    shown = False
    for lv in (80, 95):
        col = f"coverage_{lv}"
        if col in cov.columns and cov[col].notna().any():
            covered = (cov[col] * cov["n"]).sum() / cov["n"].sum()
            text += (f" The {lv}% intervals held the actual value in {esc(pct(covered))} of the backtest "
                     f"forecasts.")
            shown = True
    if shown:
        e = backtest.errors[backtest.errors["method"] == "model"]
        periods = int((e["origin"] + e["horizon"]).nunique())
        half = 1.96 * math.sqrt(0.8 * 0.2 / periods) if periods else math.nan
        text += (f" Those forecasts cover only {esc(count(periods, 'distinct ' + unit))}, so a coverage share "
                 f"is known to about ±{esc(_num(half * 100, 0))} points (95%) for the 80% intervals.")
    return text + (" MASE below 1 means errors smaller than the seasonal naive forecast's typical "
                   "error in the training data; MAPE is the mean error as a share of the actual value.")


def describe_seasonality(result) -> str:
    """Markdown on the trend and the yearly pattern of monthly bookings (a ``stats.forecast.SeasonalityTrend``)."""
    f = result.factors
    top = f.loc[f["factor"].idxmax()]
    low = f.loc[f["factor"].idxmin()]
    lo, hi = result.trend_per_year - 1.96 * result.trend_se, result.trend_per_year + 1.96 * result.trend_se
    direction = "grew" if result.trend_per_year >= 0 else "shrank"
    sure = ("" if lo > 0 or hi < 0 else
            " The interval includes zero: the history does not show a clear trend.")
    return (f"Bookings {direction} by about **{esc(pct(abs(result.trend_per_year)))} a year** (95% CI "
            f"{esc(pct(lo))} to {esc(pct(hi))}) on top of a yearly pattern: the strongest month is "
            f"{esc(_month_name(top['season']))} ({esc(_num(top.factor))}× an average month), the weakest "
            f"{esc(_month_name(low['season']))} ({esc(_num(low.factor))}×).{sure} Single months deviate from this "
            f"curve by about {esc(pct(result.residual_sd))} (fitted from {esc(count(result.n, 'month'))}), so "
            f"one month's bookings say little on their own.")


def describe_quarter_outlook(outlook, *, currency: str | None = None) -> str:
    """Markdown on the quarter: booked so far, the forecast for the rest, and the target (a ``metrics.forecast.QuarterOutlook``)."""
    q = outlook
    text = (f"{esc(q.quarter)}: {esc(money(q.booked, currency))} booked so far with "
            f"{esc(pct(q.remaining_share))} of its weekdays to go; adding {esc(_method_words(q.method))} for the "
            f"rest, the quarter should end at **{esc(money(q.total, currency))}** (80% interval "
            f"{esc(money(q.lower.get(0.8), currency))} to {esc(money(q.upper.get(0.8), currency))})")
    if q.target is None:
        return text + "; the export has no revenue targets for it."
    share = q.total / q.target if q.target else math.nan
    word = "**below**" if q.total < q.target else "above"
    return (text + f", {word} the target of {esc(money(q.target, currency))} ({esc(pct(share))} of it; "
            f"{esc(pct(q.p_reach_target))} of the simulated quarters reach it).")


def _term_words(term: str) -> str:
    """A model term for reading: ``stage[Invoicing]`` -> ``stage = Invoicing``, ``log_age`` -> ``log age``."""
    text = str(term)
    if "[" in text and text.endswith("]"):
        name, level = text[:-1].split("[", 1)
        return f"{name.replace('_', ' ')} = {level}"
    return text.replace("_", " ")


def describe_win_terms(model, *, top: int = 3) -> str:
    """Markdown on the strongest terms of the win-probability Logit (odds ratios, clustered intervals, significance)."""
    t = model.to_frame()
    t = t[t["term"] != "const"].copy()
    if t.empty:
        return "The model has no terms besides the constant."
    t["_abs"] = t["z"].abs()
    t = t.sort_values("_abs", ascending=False).head(top)
    parts = []
    for r in t.itertuples():
        parts.append(f"{esc(_term_words(r.term))}: odds × {esc(_num(r.odds_ratio))} (95% CI "
                     f"{esc(_num(r.low))} to {esc(_num(r.high))}; {esc(significance(r.p_value))})")
    refs = ", ".join(f"{esc(f)} {esc(ref)}" for f, (ref, *_) in model.levels.items())
    tail = f" Categories are compared with {refs}." if refs else ""
    return "The strongest terms: " + "; ".join(parts) + "." + tail


def describe_pipeline_forecast(by_period: pd.DataFrame, quarter: dict | None = None, *,
                               currency: str | None = None, quarter_label: str | None = None,
                               n_draws: int | None = None) -> str:
    """Markdown on the Monte Carlo pipeline forecast: expected revenue of the open deals with intervals, and the part expected this quarter."""
    tot = by_period[by_period["period"] == "all open deals"]
    if len(tot) == 0 or int(tot.iloc[0]["deals"]) == 0:
        return "There are no open deals, so the pipeline adds nothing."
    t = tot.iloc[0]
    draws = f"{esc(count(n_draws))} simulated outcomes" if n_draws else "simulated outcomes"
    text = (f"The {esc(count(t['deals'], 'open deal'))} are worth {esc(money(t['value'], currency))}; weighted "
            f"by their win probabilities **{esc(money(t['expected'], currency))}** is expected (80% interval "
            f"{esc(_fc_bounds(t, 0.8, currency))}, from {draws} that also vary the model's coefficients).")
    if quarter is not None:
        label = f" ({esc(quarter_label)})" if quarter_label else ""
        text += (f" Expected to close this quarter{label}: **{esc(money(quarter['expected'], currency))}** from "
                 f"{esc(count(quarter['deals'], 'deal'))} (80% interval {esc(_fc_bounds(quarter, 0.8, currency))}).")
    over = int(t["overdue"])
    if over:
        text += (f" {esc(count(over, 'deal'))} {'is' if over == 1 else 'are'} past {'its' if over == 1 else 'their'} "
                 f"expected close date and counted in the current period.")
    nodate = by_period[by_period["period"] == "no date"]
    if len(nodate):
        text += (f" {esc(count(nodate.iloc[0]['deals'], 'deal'))} without an expected close date "
                 f"{'is' if int(nodate.iloc[0]['deals']) == 1 else 'are'} shown apart.")
    return text + (" The model says whether a deal will be won, not when: the timing is the CRM's expected "
                   "close date.")


def describe_forecast_categories(table: pd.DataFrame, *, currency: str | None = None,
                                 commit: float | None = None, best_case: float | None = None) -> str:
    """Markdown on the forecast categories (commit, best case, pipeline) from ``metrics.forecast.forecast_categories``."""
    if table is None or int(table["deals"].sum()) == 0:
        return "There are no open deals to put into forecast categories."
    src = table["source"].iloc[0]
    how = ("from the CRM's own forecast category field" if src == "crm field" else
           f"by win probability (commit from {esc(pct(commit))}, best case from {esc(pct(best_case))})"
           if commit is not None and best_case is not None else "by win probability")
    parts = [f"{esc(r.category)}: {esc(count(r.deals, 'deal'))}, {esc(money(r.value, currency))} "
             f"({esc(money(r.expected_value, currency))} expected)" for r in table.itertuples()]
    cb = table[table["category"].isin(["commit", "best case"])]
    return (f"Forecast categories {how} — " + "; ".join(parts) + f". Commit plus best case: "
            f"**{esc(money(cb['value'].sum(), currency))}**.")


def describe_model_selection(selection) -> str:
    """Markdown on the model choice: how many candidates, the winner by AICc and how clearly it won."""
    t = selection.to_frame()
    ok = t[t["aicc"].notna()]
    if ok.empty:
        return "No candidate model could be fitted."
    best = ok.iloc[0]
    text = (f"{esc(count(len(ok), 'candidate model'))} (ETS and SARIMAX) were fitted to "
            f"{esc(count(selection.n, 'complete ' + selection.freq))}; the smallest AICc has **{esc(best['model'])}**")
    if len(ok) > 1:
        second = ok.iloc[1]
        gap = float(second["aicc"] - best["aicc"])
        strength = ("clearly" if gap > 4 else "only narrowly" if gap < 2 else "moderately")
        text += (f", {esc(strength)} ahead of {esc(second['model'])} (AICc {esc(_num(gap, 1))} higher; "
                 f"differences under 2 mean about equal support)")
    failed = int(t["aicc"].isna().sum())
    if failed:
        text += f"; {esc(count(failed, 'candidate'))} could not be fitted or had too many parameters"
    return text + "."


def title_bookings_forecast(result, outlook: pd.DataFrame, *, currency: str | None = None,
                            freq: str = "month") -> str:
    """A plot title stating the bookings forecast's finding (plain text)."""
    ahead = outlook[outlook["status"] == "ahead"]
    nxt = (ahead if len(ahead) else outlook).iloc[0]
    who = "model" if result.model_beats_baseline else f"{result.lead_method} (model did not beat it)"
    return f"{nxt['period']}: {money(nxt['forecast'], currency)} expected, {who}"


def title_calibration(table: pd.DataFrame) -> str:
    """A plot title stating how well predicted and observed win rates agree (plain text)."""
    if table is None or len(table) == 0:
        return "No held-out deals to check calibration"
    worst = float(table["difference"].abs().max())
    return f"Predicted and observed win rates within {worst * 100:.0f} points in every decile"


def forecast_verdict(result, outlook: pd.DataFrame, *, currency: str | None = None) -> str:
    """One plain line for the front page: the next period's interval and whether the model beat the naive forecasts."""
    ahead = outlook[outlook["status"] == "ahead"]
    nxt = (ahead if len(ahead) else outlook).iloc[0]
    beat = ("model beats the naive forecasts" if result.model_beats_baseline else
            f"model did not beat the {result.lead_method} forecast, which leads"
            if result.comparison.get("baseline") else "no backtest possible")
    return f"{nxt['period']}, 80% interval {_fc_bounds(nxt, 0.8, currency)}; {beat}"


def pipeline_verdict(part: dict, *, currency: str | None = None) -> str:
    """One plain line for the front page: deals and 80% interval of the pipeline revenue expected in a span."""
    return f"{count(part['deals'], 'open deal')}, 80% interval {_fc_bounds(part, 0.8, currency)}"


def quarter_alert_text(outlook, *, currency: str | None = None) -> str:
    """The alert text when the quarter's forecast bookings fall short of its revenue target (plain text)."""
    q = outlook
    return (f"{q.quarter} bookings forecast {money(q.total, currency)} is below the revenue target of "
            f"{money(q.target, currency)} ({pct(q.total / q.target if q.target else math.nan)} of it; 80% "
            f"interval {money(q.lower.get(0.8), currency)} to {money(q.upper.get(0.8), currency)})")


__all__ += ["cohort_total_revenue_title"]


def cohort_total_revenue_title(activity: pd.DataFrame, *, unit: str = "month") -> str:
    """Plain-text finding for the revenue-per-cohort heat-map (a ``cohort_activity`` table): the first
    order's share of what the cohorts old enough bought over all the ages shown."""
    last = int(activity["age"].max()) if len(activity) else 0
    full = activity.groupby("cohort")["observed"].transform("all") & activity["complete"]
    seen = activity[full]
    total = seen["revenue"].sum()
    if not len(seen) or not total:
        return "Revenue by cohort and age"
    first = seen.loc[seen["age"] == 0, "revenue"].sum() / total
    return (f"The first order brings {pct(first)} of what a cohort buys by {unit} {last} "
            f"({count(seen['cohort'].nunique(), 'cohort')} old enough)")


def describe_win_test(win) -> str:
    """Markdown on the win-probability model's held-out test (a ``stats.winprob.WinProbability``): AUC, Brier score against the base rate and the CRM's stage probabilities, and what was left out.

    Says plainly when the model is no better than predicting the average win rate or
    separates won from lost deals only weakly.
    """
    e = win.evaluation
    train_end = (win.split - pd.Timedelta(days=win.label_wait_days)).date()
    test_end = (win.as_of - pd.Timedelta(days=win.label_wait_days)).date()
    text = (f"The win-probability model was fitted only on what was known on {esc(win.split.date())} "
            f"(deals open up to {esc(train_end)}, with their outcomes) and tested on "
            f"{esc(count(e.n_rows, 'snapshot'))} of {esc(count(e.n_deals, 'deal'))} open between "
            f"{esc(win.split.date())} and {esc(test_end)} (one snapshot every {esc(count(win.every_days, 'day'))}, "
            f"outcomes known by the report date): AUC **{esc(_num(e.auc))}** (the chance it ranks a deal that "
            f"was won above one that was lost; 0.5 is guessing) and Brier score {esc(_num(e.brier, 3))} against "
            f"{esc(_num(e.brier_base, 3))} for predicting the average win rate")
    if not _missing(e.brier_stage):
        text += f" and {esc(_num(e.brier_stage, 3))} for the CRM's stage probabilities"
    text += " (lower is better)."
    if not _missing(e.brier_skill) and e.brier_skill > 0:
        text += f" The model removes {esc(pct(e.brier_skill))} of the average rate's error."
    else:
        text += (" **The model does no better than the average win rate on the held-out deals**, so its "
                 "probabilities should be taken with caution.")
    if not _missing(e.auc) and e.auc < 0.6:
        text += " An AUC this close to 0.5 means it separates won from lost deals only weakly."
    if getattr(win, "deals_sampled", None) is not None:
        text += (f" With {esc(count(win.deals_total, 'deal'))} in the export, the rows of both fits come from "
                 f"a random sample of {esc(count(win.deals_sampled, 'deal'))} (seeded, so a re-run agrees); the "
                 "owners' past win rates still count every deal.")
    if win.tested.dropped:
        text += (" Left out of the tested model (fitted before the split): "
                 + ", ".join(esc(_term_words(d)) for d in win.tested.dropped) + ".")
    if win.model.dropped:
        text += (" Left out of the model used for the open deals: "
                 + ", ".join(esc(_term_words(d)) for d in win.model.dropped) + ".")
    return text


def describe_calibration_check(table: pd.DataFrame, *, min_deals: int = 100, tolerance: float = 0.03,
                               evaluation=None) -> str:
    """Markdown on calibration by decile: the largest gap between predicted and observed win rates, how many deciles of at least ``min_deals`` deals are within ``tolerance``, and how much of the gap chance explains.

    When no decile holds ``min_deals`` deals it says the check cannot be made on this
    export instead of reporting an empty count. With ``evaluation`` (a
    ``stats.winprob.Evaluation``) it adds the calibration slope over all held-out rows and
    whether it shows over- or underconfident probabilities.
    """
    if table is None or len(table) == 0:
        return "There are no held-out deals to check the calibration on."
    worst = table.loc[table["difference"].abs().idxmax()]
    outside = int(((table["predicted"] < table["low"]) | (table["predicted"] > table["high"])).sum())
    points = _num(tolerance * 100, 0)
    text = (f"In {esc(count(len(table), 'group'))} of about {esc(count(table['rows'].median(), 'snapshot'))} "
            f"({esc(count(table['deals'].min()))} to {esc(count(table['deals'].max(), 'deal'))} each), predicted "
            f"and observed win rates differ by at most {esc(_num(abs(worst.difference) * 100, 1))} points "
            f"(predicted {esc(pct(worst.predicted))}, observed {esc(pct(worst.observed))} in group "
            f"{esc(int(worst.bin))}).")
    big = table[table["deals"] >= min_deals]
    if len(big) == 0:
        text += (f" No group holds {esc(count(min_deals, 'deal'))}, so the {esc(points)}-point check per "
                 f"decile cannot be made on this export.")
    else:
        within = int((big["difference"].abs() <= tolerance).sum())
        text += (f" {esc(count(within))} of the {esc(count(len(big), 'group'))} holding at least "
                 f"{esc(count(min_deals, 'deal'))} {'is' if within == 1 else 'are'} within {esc(points)} points.")
    half = 1.96 * float(table["se"].median())
    text += (f" With this many deals a group's observed rate is only known to about ±{esc(_num(half * 100, 0))} "
             f"points (95%), ")
    text += ("and every group's interval holds its predicted rate." if outside == 0 else
             f"and {esc(count(outside, 'group'))} {'lies' if outside == 1 else 'lie'} outside it.")
    slope = getattr(evaluation, "slope", math.nan)
    if not _missing(slope):
        lo, hi = slope - 1.96 * evaluation.slope_se, slope + 1.96 * evaluation.slope_se
        verdict = ("the probabilities are too extreme, the mark of an overfitted model" if hi < 1 else
                   "the probabilities are too timid" if lo > 1 else
                   "no sign that the probabilities are too extreme or too timid")
        predicted = float((table["predicted"] * table["rows"]).sum() / table["rows"].sum())
        observed = float((table["observed"] * table["rows"]).sum() / table["rows"].sum())
        text += (f" Over all held-out snapshots the calibration slope is {esc(_num(slope))} (95% CI "
                 f"{esc(_num(lo))} to {esc(_num(hi))}; 1 is ideal): {esc(verdict)}. On average "
                 f"{esc(pct(predicted))} was predicted and {esc(pct(observed))} won.")
    return text


# ----------------------------------------------------------------------------- campaigns (report 12)
def _roi_text(x) -> str:
    return NA_TEXT if _missing(x) else pct(x)


def describe_campaigns(performance: pd.DataFrame, *, currency: str | None = None) -> str:
    """Markdown on campaign returns: total spend and won revenue, overall ROI, the best and worst campaign by ROI, and how many lose money.

    ROI is revenue-based: (won revenue - spend) / spend, not margin.
    """
    p = performance.loc[performance["spend"].notna() & (performance["spend"] > 0)]
    if len(p) == 0:
        return "No campaign has recorded spend, so no return can be computed."
    spend, rev = float(p["spend"].sum()), float(p["won_revenue"].fillna(0).sum())
    text = (f"{esc(count(len(p), 'campaign'))} spent {esc(money(spend, currency))} and their leads' deals won "
            f"{esc(money(rev, currency))} by the report date (first touch), a return on spend of "
            f"{esc(_roi_text((rev - spend) / spend))}.")
    r = p.dropna(subset=["roi"]).sort_values("roi")
    if len(r):
        best, worst = r.iloc[-1], r.iloc[0]
        text += (f" Best: {esc(best['name'])} ({esc(best['campaign_id'])}, ROI {esc(_roi_text(best['roi']))}); "
                 f"worst: {esc(worst['name'])} ({esc(worst['campaign_id'])}, ROI {esc(_roi_text(worst['roi']))}, "
                 f"{esc(money(worst['spend'], currency))} spent for {esc(money(worst['won_revenue'], currency))} won).")
        neg = int((r["roi"] < 0).sum())
        text += (" Every campaign earned back its spend." if neg == 0 else
                 f" {esc(count(neg, 'campaign'))} earned less than {'it' if neg == 1 else 'they'} cost.")
    text += (" ROI here is revenue-based, (won revenue − spend) ÷ spend, not margin-based: it leaves out the cost "
             "of what was sold, so it overstates profit.")
    return text


def describe_channels(channels: pd.DataFrame, *, currency: str | None = None) -> str:
    """Markdown on channels: the cheapest and dearest channel per lead and the channel with the best ROI."""
    c = channels.dropna(subset=["cost_per_lead"])
    if len(c) == 0:
        return "No channel has both spend and leads, so cost per lead cannot be compared."
    c = c.sort_values("cost_per_lead")
    lo, hi = c.iloc[0], c.iloc[-1]
    text = (f"Leads cost least from {esc(lo['channel'])} ({esc(money(lo['cost_per_lead'], currency))} per lead, "
            f"{esc(count(lo['leads'], 'lead'))}) and most from {esc(hi['channel'])} "
            f"({esc(money(hi['cost_per_lead'], currency))}, {esc(count(hi['leads'], 'lead'))}).")
    r = channels.dropna(subset=["roi"]).sort_values("roi")
    if len(r):
        text += (f" The best return is {esc(r.iloc[-1]['channel'])} (ROI {esc(_roi_text(r.iloc[-1]['roi']))}), "
                 f"the weakest {esc(r.iloc[0]['channel'])} (ROI {esc(_roi_text(r.iloc[0]['roi']))}).")
    return text


def describe_negative_roi(flagged: pd.DataFrame, *, currency: str | None = None, min_leads: int | None = None,
                          min_spend_share: float | None = None) -> str:
    """Markdown naming the campaigns that lose money on real evidence (from ``negative_roi_campaigns``), or saying there are none."""
    rule = ""
    if min_leads is not None and min_spend_share is not None:
        rule = (f" (the rule: ROI below zero with at least {esc(count(min_leads, 'lead'))} and at least "
                f"{esc(pct(min_spend_share))} of all spend, so tiny campaigns do not raise it)")
    if flagged is None or len(flagged) == 0:
        return f"No campaign of real size loses money{rule}."
    parts = [f"{esc(row['name'])} ({esc(row['campaign_id'])}, {esc(row['channel'])}): ROI {esc(_roi_text(row['roi']))}, "
             f"{esc(money(row['spend'], currency))} spent for {esc(money(row['won_revenue'], currency))} won from "
             f"{esc(count(row['leads'], 'lead'))}, a loss of {esc(money(row['loss'], currency))}"
             for _, row in flagged.iterrows()]
    return f"**Losing money{rule}:** " + "; ".join(parts) + "."


def negative_roi_message(flagged: pd.DataFrame, *, currency: str | None = None) -> str:
    """Plain one-line alert text for the money-losing campaigns."""
    return "; ".join(f"{row['name']} ({row['campaign_id']}) ROI {_roi_text(row['roi'])}, "
                     f"loss {money(row['loss'], currency)}" for _, row in flagged.iterrows())


def describe_bounce(bounce: pd.DataFrame, *, margin: float | None = None) -> str:
    """Markdown on bounce rates per channel (from ``high_bounce_channels``): the flagged channels against the others' pooled rate, with intervals and counts."""
    if bounce is None or len(bounce) == 0:
        return "No channel records email sends, so bounce rates cannot be computed."
    rule = "" if margin is None else (f" (flagged when even the low end of its 95% interval is more than "
                                      f"{esc(_num(margin * 100, 0))} percentage points above the other channels' pooled rate)")
    hit = bounce.loc[bounce["alert"]]
    if len(hit) == 0:
        text = f"No channel's bounce rate stands out{rule}."
    else:
        text = "; ".join(
            f"**{esc(row['channel'])} bounces {esc(interval(row['bounce_rate'], row['low'], row['high']))} of "
            f"{esc(count(row['sends'], 'send'))}**, against {esc(pct(row['others_rate'], digits=1))} for the other "
            f"channels" for _, row in hit.iterrows()) + rule + "."
    rest = bounce.loc[~bounce["alert"]]
    if len(rest):
        text += " Others: " + ", ".join(f"{esc(row['channel'])} {esc(pct(row['bounce_rate'], digits=1))} of "
                                        f"{esc(count(row['sends']))}" for _, row in rest.iterrows()) + "."
    return text


def bounce_message(bounce: pd.DataFrame) -> str:
    """Plain one-line alert text for the high-bounce channels."""
    hit = bounce.loc[bounce["alert"]]
    return "; ".join(f"{row['channel']} bounce rate {pct(row['bounce_rate'], digits=1)} of {count(row['sends'])} "
                     f"sends vs {pct(row['others_rate'], digits=1)} elsewhere" for _, row in hit.iterrows())


def describe_marketing_roi(current, overall=None, previous=None, year_ago=None, *, currency: str | None = None,
                           period: str = "week") -> str:
    """Markdown on the marketing ROI of the period (spend spread over campaign days vs revenue won in it), with the previous period, the year-ago period and the ROI to date."""
    if current.spend <= 0:
        text = f"No campaign spend falls in this {esc(period)}."
    else:
        text = (f"This {esc(period)} about {esc(money(current.spend, currency))} of campaign spend fell due and "
                f"{esc(count(current.won_deals, 'deal'))} from campaign leads won {esc(money(current.won_revenue, currency))}: "
                f"ROI {esc(_roi_text(current.roi))}, {esc(count(current.leads, 'new campaign lead'))} at "
                f"{esc(money(current.cost_per_lead, currency))} each.")
        if previous is not None:
            text += f" Previous {esc(period)}: ROI {esc(_roi_text(previous.roi))}"
            text += (f", a year earlier {esc(_roi_text(year_ago.roi))}." if year_ago is not None else ".")
        if current.won_deals == 0:
            text += f" No campaign deal was won in the {esc(period)}, so its ROI says little: read the ROI to date."
        elif current.won_deals < 10:
            text += (f" With only {esc(count(current.won_deals, 'won deal'))} in the {esc(period)}, "
                     "one period's ROI swings widely: read the ROI to date.")
    if overall is not None and overall.spend > 0:
        text += (f" To date, campaigns spent {esc(money(overall.spend, currency))} and won "
                 f"{esc(money(overall.won_revenue, currency))}: ROI {esc(_roi_text(overall.roi))}.")
    return text


def describe_mailing_list(growth: pd.DataFrame, *, freq_word: str = "month") -> str:
    """Markdown on mailing-list growth: the list size now, the new addresses of the last period and the average of the ones before."""
    if growth is None or len(growth) == 0:
        return "No lead or contact has an email address, so the mailing list cannot be measured."
    last = growth.iloc[-1]
    text = (f"The mailing list holds {esc(count(last['total_emails'], 'distinct address', 'distinct addresses'))} "
            f"(emails of leads and contacts together); {esc(count(last['new_emails']))} were new in the latest {esc(freq_word)}")
    if len(growth) > 1:
        prev = growth.iloc[-13:-1] if len(growth) > 13 else growth.iloc[:-1]
        text += f", against {esc(count(prev['new_emails'].mean()))} a {esc(freq_word)} on average before"
    text += ". The latest period may be incomplete."
    return text


def describe_attribution(attribution: pd.DataFrame, *, currency: str | None = None) -> str:
    """Markdown comparing first-touch and last-touch attribution: how many won deals and how much revenue change campaign under last touch."""
    if attribution is None or len(attribution) == 0:
        return "No won deal came from a campaign lead, so there is nothing to attribute."
    moved = (attribution["first_touch_deals"] - attribution["last_touch_deals"]).abs().sum() / 2
    money_moved = (attribution["first_touch_revenue"] - attribution["last_touch_revenue"]).abs().sum() / 2
    text = (f"First touch (shown in the campaign table) gives each won deal to the campaign of its own lead: "
            f"{esc(count(attribution['first_touch_deals'].sum(), 'won deal'))} worth "
            f"{esc(money(attribution['first_touch_revenue'].sum(), currency))}. Last touch gives it to the account's "
            f"most recent campaign lead before the deal was created")
    if moved == 0:
        text += "; on this export no deal changes campaign, so both views agree."
    else:
        text += (f"; that moves {esc(count(moved, 'deal'))} ({esc(money(money_moved, currency))}) to another "
                 "campaign.")
    return text


def describe_crm_roi(result, sensitivity: pd.DataFrame | None = None, *, currency: str | None = None) -> str:
    """Markdown on the CRM's own ROI = (gain - cost) / cost and the range the uncertain lines give it."""
    text = (f"With the assumed lines the CRM costs {esc(money(result.cost, currency))} and returns "
            f"{esc(money(result.gain, currency))}: ROI {esc(_roi_text(result.roi))}.")
    if sensitivity is not None and len(sensitivity):
        body = sensitivity.loc[sensitivity["line"] != "all uncertain lines"]
        combo = sensitivity.loc[sensitivity["line"] == "all uncertain lines"]
        if len(body):
            top = body.iloc[0]
            text += (f" The most uncertain line is {esc(str(top['line']).replace('_', ' '))}: between its low and "
                     f"high value ROI runs from {esc(_roi_text(min(top['roi_low'], top['roi_high'])))} to "
                     f"{esc(_roi_text(max(top['roi_low'], top['roi_high'])))}.")
        if len(combo):
            lo, hi = combo.iloc[0]["roi_low"], combo.iloc[0]["roi_high"]
            text += f" With every uncertain line at its worst, ROI is {esc(_roi_text(lo))}; at its best, {esc(_roi_text(hi))}."
            if lo < 0 <= hi:
                text += " Whether the CRM pays back depends on these assumptions: check them before quoting the figure."
    return text


# ----------------------------------------------------------------------------- customer service (11)
def hours(x) -> str:
    """A duration given in hours, for reading: ``45 min``, ``2.5 h``, ``3.2 days``."""
    return elapsed_minutes(float(x) * 60) if not _missing(x) else NA_TEXT


def _svc_week(w) -> str:
    return esc(pd.Timestamp(w).date())


def describe_ticket_flow(flow: pd.DataFrame, *, period: str = "week") -> str:
    """Markdown on tickets opened, closed and the backlog (a ``service.ticket_flow`` table, last row = this period)."""
    if not len(flow):
        return "No tickets in this window."
    last = flow.iloc[-1]
    text = (f"This {esc(period)} **{esc(count(last['opened'], 'ticket'))}** {'was' if int(last['opened']) == 1 else 'were'} "
            f"opened and **{esc(count(last['closed']))}** closed; **{esc(count(last['backlog']))}** "
            f"{'is' if int(last['backlog']) == 1 else 'are'} open at the end of it.")
    if len(flow) > 1:
        text += (f" Over the {esc(count(len(flow)))} {esc(period)}s shown, {esc(count(flow['opened'].sum(), 'ticket'))} "
                 f"were opened and {esc(count(flow['closed'].sum()))} closed; the backlog peaked at "
                 f"{esc(count(flow['backlog'].max()))} ({esc(flow.loc[flow['backlog'].idxmax(), 'period'])}).")
    return text


def describe_service_times(overall: pd.DataFrame, by_table: pd.DataFrame | None = None, *,
                           by: str = "priority", window: str = "") -> str:
    """Markdown on first-response and resolution times (``service.service_times`` tables: overall and per group)."""
    if not len(overall) or int(overall.iloc[0]["tickets"]) == 0:
        return "No tickets in this window."
    o = overall.iloc[0]
    where = f" {esc(window)}" if window else ""
    text = (f"Of {esc(count(o['tickets'], 'ticket'))}{where}, half got a first response within "
            f"**{esc(hours(o['first_response_median_h']))}** (9 in 10 within {esc(hours(o['first_response_p90_h']))}) "
            f"and half were resolved within **{esc(hours(o['resolution_median_h']))}** (9 in 10 within "
            f"{esc(hours(o['resolution_p90_h']))}).")
    waiting = int(o["tickets"]) - int(o["responded"])
    text += (f" Tickets still open count as waiting at least until now (Kaplan–Meier, censored): "
             f"{esc(count(o['open'], 'ticket'))} unresolved and {esc(count(waiting, 'ticket'))} without a response, "
             "so the times are not flattered by leaving them out.")
    if by_table is not None and len(by_table) > 1 and by_table["resolution_median_h"].notna().any():
        slow = by_table.loc[by_table["resolution_median_h"].idxmax()]
        fast = by_table.loc[by_table["resolution_median_h"].idxmin()]
        text += (f" By {esc(str(by).replace('_', ' '))}, resolution is slowest for {esc(slow[by])} (median "
                 f"{esc(hours(slow['resolution_median_h']))}, {esc(count(slow['tickets'], 'ticket'))}) and fastest for "
                 f"{esc(fast[by])} ({esc(hours(fast['resolution_median_h']))}).")
    return text


def describe_same_day(share: pd.DataFrame) -> str:
    """Markdown on the share of tickets closed the day they were opened (a one-row ``service.same_day_share`` table)."""
    s = share.iloc[0] if len(share) else None
    if s is None or int(s["tickets"]) == 0:
        return "No tickets in this window."
    return (f"**{esc(pct(s['share']))}** of the tickets were closed the day they were opened "
            f"({esc(count(s['same_day']))} of {esc(count(s['tickets']))}; 95% CI {esc(pct(s['share_low']))} to "
            f"{esc(pct(s['share_high']))}).")


def describe_sla(now: pd.DataFrame, *, previous: pd.DataFrame | None = None, year_ago: pd.DataFrame | None = None,
                 period: str = "week") -> str:
    """Markdown on SLA compliance (one-row ``service.sla_compliance`` tables for this, the previous and the year-ago period)."""
    def part(row):
        return (f"{esc(pct(row['compliance']))} ({esc(count(row['met']))} of {esc(count(row['judged']))}; 95% CI "
                f"{esc(pct(row['compliance_low']))} to {esc(pct(row['compliance_high']))})")
    s = now.iloc[0]
    if int(s["judged"]) == 0:
        text = f"No ticket created this {esc(period)} has an SLA outcome yet."
    else:
        text = (f"This {esc(period)} **{esc(pct(s['compliance']))}** of the tickets met their SLA (resolved by the due "
                f"date): {esc(count(s['met']))} of {esc(count(s['judged']))}, 95% CI {esc(pct(s['compliance_low']))} to "
                f"{esc(pct(s['compliance_high']))}. {esc(count(s['breached'], 'ticket'))} breached it, "
                f"{esc(count(s['breached_open']))} of them still open past the due date.")
    if int(s["pending"]):
        text += f" {esc(count(s['pending'], 'ticket'))} still open but not yet due {'is' if int(s['pending']) == 1 else 'are'} left out until decided."
    if int(s["no_sla"]):
        text += f" {esc(count(s['no_sla'], 'ticket'))} without a due date {'is' if int(s['no_sla']) == 1 else 'are'} left out."
    comps = []
    for other, against in ((previous, f"the previous {period}"), (year_ago, f"the same {period} a year ago")):
        if other is None or not len(other):
            continue
        o = other.iloc[0]
        comps.append(f"{esc(against)}: {part(o)}" if int(o["judged"]) else f"{esc(against)}: no tickets")
    if comps:
        text += " For comparison, " + "; ".join(comps) + "."
    if 0 < int(s["judged"]) < 30:
        text += " Few tickets, so the rate is uncertain."
    return text


def describe_sla_alerts(alerts: pd.DataFrame, *, alpha: float = 0.05, min_gap: float = 0.20,
                        method: str = "holm") -> str:
    """Markdown on the weeks whose SLA compliance fell far below the weeks before (a ``service.sla_breach_alerts`` table)."""
    def quiet(tested: pd.DataFrame, rule: str) -> str:
        low = tested.loc[tested["compliance"].idxmin()]
        return (f"No week stands out ({rule}). The lowest compliance was {esc(pct(low['compliance']))} in the week of "
                f"{_svc_week(low['week'])} ({esc(count(low['met']))} of {esc(count(low['judged']))}) against "
                f"{esc(pct(low['baseline_compliance']))} before: {esc(significance(low['p_adjusted'], alpha=alpha))}.")

    return _describe_weeks(
        alerts, alerts["alert"], too_few="Too few weeks of tickets to test any week against its baseline.",
        rule=lambda n: _spike_rule(method, n, alpha, f"at least {esc(_num(min_gap * 100, 0))} points below the baseline"),
        quiet=quiet,
        part=lambda w: (f"the week of **{_svc_week(w['week'])}** met the SLA for only **{esc(pct(w['compliance']))}** "
                        f"of its tickets ({esc(count(w['met']))} of {esc(count(w['judged']))}) against "
                        f"{esc(pct(w['baseline_compliance']))} in the weeks before "
                        f"({esc(significance(w['p_adjusted'], alpha=alpha))})"))


def sla_alert_text(alerts: pd.DataFrame) -> str:
    """Plain text for the front-page alert on SLA-breach weeks (empty when no week is alerted)."""
    flagged = alerts.loc[alerts["alert"].astype(bool)]
    if not len(flagged):
        return ""
    weeks = [f"week of {pd.Timestamp(w['week']).date()}: {pct(w['compliance'])} on time "
             f"({count(w['met'])} of {count(w['judged'])}, baseline {pct(w['baseline_compliance'])})"
             for _, w in flagged.iterrows()]
    return "SLA breach week: " + "; ".join(weeks)


def describe_reopened(share: pd.DataFrame) -> str:
    """Markdown on reopened tickets (a one-row ``service.reopened_share`` table)."""
    s = share.iloc[0] if len(share) else None
    if s is None or int(s["resolved"]) == 0:
        return "No resolved tickets in this window."
    text = (f"**{esc(pct(s['share']))}** of the resolved tickets were reopened ({esc(count(s['reopened']))} of "
            f"{esc(count(s['resolved']))}; 95% CI {esc(pct(s['share_low']))} to {esc(pct(s['share_high']))}).")
    if int(s["unknown"]):
        text += f" {esc(count(s['unknown'], 'ticket'))} without a reopened flag {'is' if int(s['unknown']) == 1 else 'are'} left out."
    return text


def describe_agent_load(table: pd.DataFrame, *, min_tickets: int = 10) -> str:
    """Markdown on tickets and times per agent (a ``service.agent_load`` table)."""
    if not len(table):
        return "No tickets were assigned to an agent in this window."
    label = "name" if "name" in table.columns else "agent_id"
    top = table.iloc[0]
    text = (f"{esc(count(len(table), 'agent'))} handled tickets; the busiest, {esc(top[label])}, had "
            f"{esc(count(top['tickets'], 'ticket'))} ({esc(pct(top['tickets'] / table['tickets'].sum()))} of all) and has "
            f"{esc(count(top['open_now']))} open now.")
    big = table.loc[(table["tickets"] >= min_tickets) & table["compliance"].notna()]
    if len(big) > 1:
        low = big.loc[big["compliance"].idxmin()]
        high = big.loc[big["compliance"].idxmax()]
        overlap = low["compliance_high"] >= high["compliance_low"]
        text += (f" Among agents with at least {esc(count(min_tickets, 'ticket'))}, SLA compliance ranges from "
                 f"{esc(pct(low['compliance']))} ({esc(low[label])}, 95% CI {esc(pct(low['compliance_low']))} to "
                 f"{esc(pct(low['compliance_high']))}) to {esc(pct(high['compliance']))} ({esc(high[label])})"
                 + ("; the intervals overlap, so the difference may be chance." if overlap else "."))
    return text


def describe_recurring(categories: pd.DataFrame, pairs: pd.DataFrame, *, min_tickets: int = 3,
                       alpha: float = 0.05) -> str:
    """Markdown on categories that recur for the same accounts (``service.recurring_categories`` and ``recurring_accounts`` tables)."""
    rec = pairs.loc[pairs["recurring"].astype(bool)] if len(pairs) else pairs
    rule = (f"an account with at least {esc(count(min_tickets, 'ticket'))} of one category, far more than its ticket "
            f"count and the category's share explain: binomial test, Holm-corrected at {esc(pct(alpha))}")
    if not len(rec):
        return f"No category keeps coming back for the same accounts ({rule})."
    top = categories.iloc[0]
    accs = rec.loc[rec["category"] == top["category"], "account_id"].tolist()
    text = (f"**{esc(top['category'])}** recurs for the same customers: **{esc(count(top['recurring_accounts'], 'account'))}** "
            f"opened it again and again ({esc(count(top['recurring_tickets'], 'ticket'))}, "
            f"{esc(pct(top['recurring_share']))} of all {esc(top['category'])} tickets): "
            f"{esc(', '.join(map(str, accs)))} ({rule}).")
    others = categories.loc[(categories["recurring_accounts"] > 0) & (categories["category"] != top["category"])]
    if len(others):
        text += " Also recurring: " + ", ".join(f"{esc(c['category'])} ({esc(count(c['recurring_accounts'], 'account'))})"
                                                 for _, c in others.iterrows()) + "."
    return text


def describe_nps(nps, csat=None, *, previous=None, window: str = "") -> str:
    """Markdown on NPS (a ``service.NetPromoter``) and CSAT (a ``Proportion``), with intervals."""
    where = f" {esc(window)}" if window else ""
    if nps.n == 0:
        text = f"No NPS answers{where}."
    else:
        text = (f"NPS{where} is **{esc(f'{nps.nps:+.0f}')}** (95% CI {esc(f'{nps.low:+.0f}')} to {esc(f'{nps.high:+.0f}')}) "
                f"from {esc(count(nps.n, 'answer'))}: {esc(pct(nps.promoter_share.estimate))} promoters (9-10; 95% CI "
                f"{esc(pct(nps.promoter_share.low))} to {esc(pct(nps.promoter_share.high))}) minus "
                f"{esc(pct(nps.detractor_share.estimate))} detractors (0-6; 95% CI {esc(pct(nps.detractor_share.low))} to "
                f"{esc(pct(nps.detractor_share.high))}).")
        if previous is not None and previous.n:
            text += (f" Before that it was {esc(f'{previous.nps:+.0f}')} ({esc(count(previous.n, 'answer'))}, 95% CI "
                     f"{esc(f'{previous.low:+.0f}')} to {esc(f'{previous.high:+.0f}')}).")
        if nps.n < 100:
            text += " Few answers, so the score is uncertain by many points."
    if csat is not None:
        text += (f" CSAT: **{esc(pct(csat.estimate))}** of ticket surveys scored 4 or 5 out of 5 "
                 f"({esc(count(csat.successes))} of {esc(count(csat.n))}; 95% CI {esc(pct(csat.low))} to "
                 f"{esc(pct(csat.high))})." if csat.n else " No CSAT answers in this window.")
    return text


def describe_satisfaction_trend(trend: pd.DataFrame, *, period: str = "month") -> str:
    """Markdown on the NPS and CSAT trend (a ``service.satisfaction_trend`` table)."""
    t = trend.loc[trend["nps_answers"] > 0]
    if len(t) < 2:
        return f"Too few {esc(period)}s with NPS answers to show a trend."
    first, last = t.iloc[0], t.iloc[-1]
    apart = last["nps_low"] > first["nps_high"] or last["nps_high"] < first["nps_low"]
    return (f"NPS moved from {esc(f'{first.nps:+.0f}')} in {esc(first['period'])} ({esc(count(first['nps_answers'], 'answer'))}) "
            f"to {esc(f'{last.nps:+.0f}')} in {esc(last['period'])} ({esc(count(last['nps_answers'], 'answer'))}); "
            + ("the intervals do not overlap, so the change is real." if apart else
               f"the intervals overlap, so with about {esc(count(t['nps_answers'].median()))} answers a {esc(period)} "
               "this is no clear trend."))


def describe_service_churn(summary: pd.DataFrame, *, inactive_days: int = 180) -> str:
    """Markdown on churn of customers with and without tickets (a ``service.churn_by_tickets`` table)."""
    w = summary.set_index("group")
    a, b = w.loc["with tickets"], w.loc["without tickets"]
    if int(a["customers"]) == 0:
        return "No customer with tickets has a long enough order history to judge churn."
    apart = a["share_low"] > b["share_high"] or a["share_high"] < b["share_low"]
    return (f"Of {esc(count(a['customers'], 'customer'))} with tickets, **{esc(pct(a['share']))}** stopped buying (no order "
            f"in the last {esc(count(inactive_days, 'day'))}; 95% CI {esc(pct(a['share_low']))} to {esc(pct(a['share_high']))}), "
            f"against {esc(pct(b['share']))} of {esc(count(b['customers']))} customers without tickets; "
            + ("the intervals do not overlap." if apart else "the intervals overlap, so tickets alone do not mark churners.")
            + " This is an association, not a cause.")


def describe_value_queue(queue: pd.DataFrame, *, currency: str | None = None, has_value: bool = True) -> str:
    """Markdown on open tickets ordered by customer value (a ``service.tickets_by_customer_value`` table)."""
    if not len(queue):
        return "No ticket is open now."
    overdue = int(queue["overdue"].sum())
    text = (f"**{esc(count(len(queue), 'ticket'))}** {'is' if len(queue) == 1 else 'are'} open now, "
            f"{esc(count(overdue))} past the SLA due date.")
    if not has_value:
        return text + " Without orders there is no customer value, so they are listed by due date."
    top = queue.iloc[0]
    if not _missing(top["customer_value"]):
        text += (f" First in line: {esc(top['ticket_id'])} of customer {esc(top['account_id'])} (revenue rank "
                 f"{esc(count(top['customer_rank']))}, {esc(money(top['customer_value'], currency))}, class "
                 f"{esc(top['abc_class'])}).")
    return text


def owner_cap_alert_text(load: pd.DataFrame, *, cap: int) -> str:
    """Plain text for the front-page alert on owners over the open-deal cap (empty when none is)."""
    over = load[load["over_cap"]]
    if not len(over):
        return ""
    names = [_label(row, ("name", "owner_id"), missing="(no owner)") for _, row in over.iterrows()]
    return (f"{count(len(over), 'owner')} over the cap of {count(cap, 'open deal')}: "
            + ", ".join(f"{n} ({int(d)})" for n, d in zip(names, over["open_deals"])))


# ---------------------------------------------------------------- 01: data-quality drops
def quality_drop_text(drops: pd.DataFrame) -> str:
    """Plain text for the front-page alert on weeks whose data quality dropped (empty when none)."""
    if not len(drops):
        return ""
    weeks = [f"week of {pd.Timestamp(w['week']).date()}: {pct(w['share'])} of {count(w['n'], 'row')} with a "
             f"problem (baseline {pct(w['baseline_share'])})" for _, w in drops.iterrows()]
    return "Data-quality drop: " + "; ".join(weeks)


def describe_quality_drops(weekly: pd.DataFrame, drops: pd.DataFrame, *, recent_weeks: int = 4,
                           alpha: float = 0.05, min_points: float = 2.0, method: str = "holm") -> str:
    """Markdown on the weeks whose share of problem rows stands out (``weekly_problem_share`` and
    ``quality_drops`` tables), the recent ones (which raise the alert) marked."""
    last = weekly["week"].max()

    def quiet(tested: pd.DataFrame, rule: str) -> str:
        top = tested.loc[tested["share"].idxmax()]
        return (f"No week's data quality dropped ({rule}). The highest problem share was "
                f"{esc(pct(top['share']))} in the week of {esc(pd.Timestamp(top['week']).date())} "
                f"({esc(count(top['events']))} of {esc(count(top['n'], 'row'))}) against "
                f"{esc(pct(top['baseline_share']))} before: {esc(significance(top['p_adjusted'], alpha=alpha))}.")

    return _describe_weeks(
        weekly, weekly["week"].isin(drops["week"]),
        too_few="Too few dated rows to test any week against the weeks before it.",
        rule=lambda n: _spike_rule(method, n, alpha,
                                   f"at least {esc(f'{min_points:g}')} percentage points above the baseline"),
        quiet=quiet,
        part=lambda w: (f"the week of **{esc(pd.Timestamp(w['week']).date())}**"
                        f"{' (recent)' if w['week'] > last - pd.Timedelta(weeks=recent_weeks) else ''}: "
                        f"**{esc(pct(w['share']))}** of {esc(count(w['n'], 'row'))} with a problem against "
                        f"{esc(pct(w['baseline_share']))} before"))
