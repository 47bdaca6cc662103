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
