"""Pictures in the house style: one seaborn theme, a colour-blind-safe palette, titles that state the finding.

Call :func:`set_theme` once at the top of a notebook. Every ``plot_x(data, *, ax=None,
title=None, **kws)`` takes the frame (or result) a metric returned, draws on ``ax``
(a new figure when None) and returns the Axes. Pass a ``title`` that states the
finding, e.g. ``narrative.plain(narrative.describe_stalled(stalled))`` or a shorter
sentence built with the narrative formatters; the default title is a plain statement
of the numbers. Text from data (deal and owner names) is drawn with ``parse_math=False``,
so a ``$`` in a name is never read as mathtext. Extra ``**kws`` go to the bar call.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MaxNLocator

from . import narrative

__all__ = ["PALETTE", "set_theme", "palette", "money_formatter", "plot_pipeline_by_stage",
           "plot_waterfall", "plot_stalled", "plot_owner_load"]

PALETTE = "colorblind"


def set_theme() -> None:
    """Set the house style for every later figure: seaborn whitegrid theme, colour-blind palette."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE,
                  rc={"axes.titlelocation": "left", "axes.titleweight": "bold",
                      "figure.figsize": (8, 4.5), "axes.spines.top": False,
                      "axes.spines.right": False})


def palette(n: int = 10) -> list:
    """The house colours (seaborn's colour-blind-safe palette)."""
    return sns.color_palette(PALETTE, n)


def money_formatter(currency: str | None = None) -> FuncFormatter:
    """A tick formatter for money axes: ``€200k``, ``€1.2M``."""
    return FuncFormatter(lambda x, pos: narrative.money(x, currency, short=True))


# ----------------------------------------------------------------------------- pipeline
def plot_pipeline_by_stage(data: pd.DataFrame, *, x: str = "value", y: str = "stage",
                           weighted: str | None = "weighted_value", currency: str | None = None,
                           ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Horizontal bars of open value per stage (first stage on top), weighted value as a narrower bar inside.

    ``data`` is an ``open_pipeline(..., by="stage")`` table in stage order.
    """
    ax = _axes(ax)
    colours = palette()
    pos = np.arange(len(data))
    values = data[x].astype("float64").to_numpy()
    ax.barh(pos, values, height=0.7, color=colours[0], label="open value", **kws)
    if weighted and weighted in data.columns and data[weighted].notna().any():
        ax.barh(pos, data[weighted].astype("float64").to_numpy(), height=0.35, color=colours[1],
                label="weighted by win probability", **kws)
        ax.legend(loc="best", frameon=True)
    if "deals" in data.columns:
        for p, v, n in zip(pos, values, data["deals"], strict=True):
            if np.isfinite(v):
                ax.text(v, p, f"  {narrative.count(n, 'deal')}", va="center", fontsize=9,
                        parse_math=False)
    ax.set_yticks(pos, [str(s) for s in data[y]], parse_math=False)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(money_formatter(currency))
    ax.set_xlabel(f"open value{f' ({currency})' if currency else ''}")
    ax.set_ylabel("")
    if title is None:
        title = (f"Open pipeline: {narrative.count(data['deals'].sum(), 'deal')} worth "
                 f"{narrative.money(data[x].sum(min_count=1), currency)}" if "deals" in data
                 else "Open pipeline by stage")
    _title(ax, title)
    return ax


def plot_waterfall(data, *, value: str = "value", currency: str | None = None, ax: Axes | None = None,
                   title: str | None = None, **kws) -> Axes:
    """Waterfall of the open pipeline: start, + new, - won, - lost, end; advanced and slipped as hatched side bars.

    ``data`` is a ``PipelineChanges`` (from ``pipeline_changes``) or its ``to_frame()``;
    ``value`` is ``"value"`` (money) or ``"deals"`` (counts).
    """
    frame = data.to_frame() if hasattr(data, "to_frame") else data
    frame = frame.loc[frame[value].notna()].reset_index(drop=True)
    ax = _axes(ax)
    colours = palette()
    colour = {"level": colours[0], "in": colours[2], "out": colours[3], "memo": "0.85"}
    main = frame.loc[frame["kind"] != "memo"]
    memo = frame.loc[frame["kind"] == "memo"]
    running = 0.0
    labels, positions = [], []
    for i, (_, row) in enumerate(main.iterrows()):
        v = float(row[value])
        if row["kind"] == "level":
            bottom, height, running = 0.0, v, v
        elif row["kind"] == "in":
            bottom, height, running = running, v, running + v
        else:
            running -= v
            bottom, height = running, v
        ax.bar(i, height, bottom=bottom, color=colour[row["kind"]], width=0.7, **kws)
        ax.text(i, bottom + height, _fmt(v, value, currency, sign=row["kind"]), ha="center",
                va="bottom", fontsize=9, parse_math=False)
        labels.append(str(row["component"]))
        positions.append(i)
    for j, (_, row) in enumerate(memo.iterrows()):
        i = len(main) + 0.5 + j
        v = float(row[value])
        ax.bar(i, v, color=colour["memo"], hatch="//", edgecolor="0.4", width=0.7, **kws)
        ax.text(i, v, _fmt(v, value, currency), ha="center", va="bottom", fontsize=9, parse_math=False)
        labels.append(f"({row['component']})")
        positions.append(i)
    ax.set_xticks(positions, labels, parse_math=False)
    if value == "value":
        ax.yaxis.set_major_formatter(money_formatter(currency))
        ax.set_ylabel(f"open value{f' ({currency})' if currency else ''}")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("open deals")
    top = max([float(b.get_y() + b.get_height()) for b in ax.patches] + [0.0])
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)  # room for the value labels
    if title is None:
        levels = main.loc[main["kind"] == "level", value].to_numpy(dtype="float64")
        fmt = (lambda v: narrative.money(v, currency)) if value == "value" else narrative.count
        title = (f"Open pipeline went from {fmt(levels[0])} to {fmt(levels[-1])}"
                 if len(levels) == 2 else "Open pipeline changes")
    _title(ax, title)
    return ax


def plot_stalled(data: pd.DataFrame, *, top: int = 15, label: tuple[str, ...] = ("name", "deal_id"),
                 ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Days in the current stage of the worst stalled deals as bars, each stage's norm as a black tick.

    ``data`` is a ``stalled_deals`` table (worst first); the first ``top`` rows are drawn.
    """
    ax = _axes(ax)
    shown = data.head(top)
    if len(shown) == 0:
        return _empty(ax, "No stalled deals", title or "No deal is stuck longer than its stage norm")
    colours = palette()
    pos = np.arange(len(shown))
    ax.barh(pos, shown["days_in_stage"].to_numpy(dtype="float64"), color=colours[3], height=0.6,
            label="days in stage", **kws)
    ax.scatter(shown["norm_days"].to_numpy(dtype="float64"), pos, marker="|", s=400, linewidths=2.5,
               color="black", zorder=3, label="stage norm")
    names = [f"{narrative._label(r, label)} · {r['stage']}" for _, r in shown.iterrows()]
    ax.set_yticks(pos, names, parse_math=False)
    ax.invert_yaxis()
    ax.set_xlabel("days in current stage")
    ax.legend(loc="best", frameon=True)
    if title is None:
        title = f"{narrative.count(len(data), 'deal')} stuck longer than their stage norm"
    _title(ax, title)
    return ax


def plot_owner_load(data: pd.DataFrame, *, cap: float | None = None, top: int = 30,
                    label: tuple[str, ...] = ("name", "owner_id"), ax: Axes | None = None,
                    title: str | None = None, **kws) -> Axes:
    """Open deals per owner as bars (owners over the cap highlighted) with a dashed line at the cap.

    ``data`` is an ``owner_load`` table (heaviest first); ``cap`` defaults to its
    ``cap`` column, else 50.
    """
    ax = _axes(ax, rows=min(len(data), top))
    if cap is None:
        cap = float(data["cap"].iloc[0]) if "cap" in data.columns and len(data) else 50.0
    shown = data.head(top)
    colours = palette()
    counts = shown["open_deals"].to_numpy(dtype="float64")
    pos = np.arange(len(shown))
    bar_colours = [colours[3] if c > cap else colours[0] for c in counts]
    ax.barh(pos, counts, color=bar_colours, height=0.7, **kws)
    names = [narrative._label(r, label, missing="(no owner)") for _, r in shown.iterrows()]
    ax.set_yticks(pos, names, parse_math=False)
    ax.invert_yaxis()
    line = ax.axvline(cap, color="black", linestyle="--", linewidth=1.5,
                      label=f"cap: {narrative.count(cap, 'open deal')}")
    line.set_gid("cap")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("open deals")
    ax.legend(loc="best", frameon=True)
    if title is None:
        over = int((data["open_deals"] > cap).sum())
        limit = narrative.count(cap, "open deal")
        title = (f"{narrative.count(over, 'owner')} over the cap of {limit}" if over
                 else f"No owner over the cap of {limit}")
    _title(ax, title)
    return ax


def plot_quality_scores(data: pd.DataFrame, *, threshold: float = 90.0, ax: Axes | None = None,
                        title: str | None = None, **kws) -> Axes:
    """Data-quality score per table as bars (tables under ``threshold`` highlighted).

    ``data`` is ``CrmData.counts`` (table, score, ...); the overall row ("all") is
    drawn as a dashed line.
    """
    ax = _axes(ax)
    tables = data[data["table"] != "all"].sort_values("score")
    colours = palette()
    pos = np.arange(len(tables))
    ax.barh(pos, tables["score"], color=[colours[3] if v < threshold else colours[0]
                                          for v in tables["score"]], height=0.7, **kws)
    ax.set_yticks(pos, [str(t) for t in tables["table"]], parse_math=False)
    overall = data.loc[data["table"] == "all", "score"]
    if len(overall):
        line = ax.axvline(float(overall.iloc[0]), color="black", linestyle="--", linewidth=1.2,
                          label=f"overall: {float(overall.iloc[0]):.1f}")
        line.set_gid("overall")
        # beside the bars, not on them (the lowest bar is the weakest table, the one to read)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_xlim(0, 100)
    ax.set_xlabel("data-quality score (100 = every row clean)")
    if title is None:
        weak = tables[tables["score"] < threshold]
        title = (f"{narrative.count(len(weak), 'table')} below {threshold:.0f}: "
                 f"{', '.join(map(str, weak['table']))}" if len(weak)
                 else f"Every table scores {threshold:.0f} or more")
    _title(ax, title)
    return ax


# ----------------------------------------------------------------------------- helpers
def _axes(ax: Axes | None, *, rows: int = 0) -> Axes:
    """The given axes, or a new figure tall enough for ``rows`` labelled bars."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, max(4.5, 0.3 * rows + 1.0)))
    return ax


def _empty(ax: Axes, message: str, title: str) -> Axes:
    """An axes that says there is nothing to draw (message in the middle, no axes, a title)."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    _title(ax, title)
    return ax


def _title(ax: Axes, title: str) -> None:
    ax.set_title(str(title), loc="left", parse_math=False)


def _fmt(v: float, value: str, currency, *, sign: str = "") -> str:
    prefix = {"in": "+", "out": "-"}.get(sign, "")
    text = narrative.money(v, currency, short=True) if value == "value" else narrative.count(v)
    return prefix + text


# ----------------------------------------------------------------------------- lead response and calls (06)
def plot_speed_to_lead(curve: pd.DataFrame, *, limits_min=(5, 60, 1440), ax: Axes | None = None,
                       title: str | None = None, **kws) -> Axes:
    """Share of leads contacted by time since they came in (a Kaplan-Meier step curve, log time axis), the limits as dotted lines.

    ``curve`` is a ``response_curve`` table (minutes, share_contacted).
    """
    ax = _axes(ax)
    colours = palette()
    x = curve["minutes"].to_numpy(dtype="float64")
    y = curve["share_contacted"].to_numpy(dtype="float64")
    keep = x > 0
    ax.step(np.concatenate([[0.1], x[keep]]), np.concatenate([[0.0], y[keep]]), where="post",
            color=colours[0], linewidth=2, label="leads contacted", **kws)
    for limit in limits_min:
        line = ax.axvline(float(limit), color="0.35", linestyle=":", linewidth=1.2)
        line.set_gid(f"limit-{limit:g}")
        m = float(limit)
        text = f"{m / 1440:g} day" if m >= 1440 else (f"{m / 60:g} h" if m >= 60 else f"{m:g} min")
        ax.text(float(limit) * 1.1, 0.97, text, ha="left", va="top", fontsize=9,
                transform=ax.get_xaxis_transform(), parse_math=False)
    ax.set_xscale("log")
    ax.set_xlim(0.5, max(float(np.nanmax(x)) if len(x) else 1.0, 2 * 1440.0))
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, pos: narrative.pct(v)))
    ax.set_xlabel("minutes from the lead coming in to the first call or email (log scale)")
    ax.set_ylabel("share of leads contacted")
    _title(ax, title or "Share of leads contacted over time")
    return ax


def plot_missed_weeks(alerts: pd.DataFrame, *, min_share: float | None = None, ax: Axes | None = None,
                      title: str | None = None, **kws) -> Axes:
    """Weekly share of missed inbound calls as bars (alerted weeks highlighted), the trailing baseline as a line.

    ``alerts`` is a ``missed_call_alerts`` table; ``min_share`` draws the material-size
    threshold as a dashed line.
    """
    ax = _axes(ax)
    colours = palette()
    weeks = pd.to_datetime(alerts["week"])
    share = alerts["share"].astype("float64").to_numpy()
    flagged = alerts["alert"].astype(bool).to_numpy()
    ax.bar(weeks, np.nan_to_num(share), width=5.5, color=[colours[3] if f else colours[0] for f in flagged],
           label="missed share", **kws)
    ax.step(weeks, alerts["baseline_share"].astype("float64"), where="mid", color="black", linewidth=1.2,
            label="baseline (weeks before)")
    if min_share is not None:
        line = ax.axhline(float(min_share), color=colours[3], linestyle="--", linewidth=1.0,
                          label=f"alert size: {narrative.pct(min_share)}")
        line.set_gid("min-share")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, pos: narrative.pct(v)))
    ax.set_ylabel("inbound calls missed")
    ax.set_xlabel("week (Monday)")
    ax.legend(loc="upper left", frameon=True)
    if title is None:
        n = int(flagged.sum())
        title = (f"{narrative.count(n, 'week')} with a missed-call spike" if n
                 else "No week with a missed-call spike")
    _title(ax, title)
    return ax


def plot_call_heatmap(heat: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None,
                      label: str = "calls per week", **kws) -> Axes:
    """Heat-map of calls by weekday (rows) and hour of the day (columns), from a ``call_heatmap`` grid."""
    ax = _axes(ax)
    kws.setdefault("cmap", "viridis")
    sns.heatmap(heat.astype("float64"), ax=ax, cbar_kws={"label": label}, linewidths=0.3, **kws)
    ax.set_xlabel("hour of the day")
    ax.set_ylabel("")
    ax.set_yticks(np.arange(len(heat)) + 0.5, [str(d) for d in heat.index], rotation=0, parse_math=False)
    if title is None:
        stacked = heat.stack()
        day, hour = stacked.idxmax() if len(stacked) and stacked.max() > 0 else ("", 0)
        title = f"Peak load: {day} {int(hour):02d}:00" if day else "No calls in this window"
    _title(ax, title)
    return ax


# ----------------------------------------------------------------------------- sales cycle (report 04)
__all__ += ["plot_cycle_distribution", "plot_survival", "plot_cumulative_incidence", "plot_cycle_trend",
            "plot_stage_times"]


def plot_cycle_distribution(data: pd.DataFrame, *, by: str = "source", label: tuple[str, ...] = ("name",),
                            top: int = 20, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Sales cycle per group: the middle half (quartiles) as a bar, the median as a dot, all deals' median dashed.

    ``data`` is a ``cycle_distribution`` table (fastest first); groups without a closed
    deal are left out, the first ``top`` drawn.
    """
    ax = _axes(ax)
    shown = data.loc[data["deals"] > 0].head(top)
    if len(shown) == 0:
        return _empty(ax, "No closed deals", title or "No closed deals to compare")
    colours = palette()
    pos = np.arange(len(shown))
    q1 = shown["q1_days"].to_numpy(dtype="float64")
    q3 = shown["q3_days"].to_numpy(dtype="float64")
    ax.barh(pos, q3 - q1, left=q1, height=0.55, color=colours[0], alpha=0.45, label="middle half of deals",
            **kws)
    ax.scatter(shown["median_days"].to_numpy(dtype="float64"), pos, color=colours[0], zorder=3, s=40,
               label="median")
    names = [f"{narrative._label(r, (*label, by), missing='(none)')} ({narrative.count(r['deals'])})"
             for _, r in shown.iterrows()]
    ax.set_yticks(pos, names, parse_math=False)
    ax.invert_yaxis()
    ref = shown["others_median_days"].to_numpy(dtype="float64")
    if len(shown) > 1 and np.isfinite(ref).any():
        med_all = float(np.nanmedian(ref))
        ax.axvline(med_all, color="black", linestyle="--", linewidth=1.2, label="median of the other deals")
    ax.set_xlim(left=0)
    ax.set_xlabel("days from creation to close")
    ax.legend(loc="best", frameon=True)
    if title is None:
        first = shown.iloc[0]
        title = (f"Shortest median cycle: {narrative._label(first, (*label, by), missing='(none)')}, "
                 f"{narrative.days(first['median_days'])}")
    _title(ax, title)
    return ax


def plot_survival(data, *, groups=None, kind: str = "still_open", band: bool | None = None,
                  min_deals: int = 0, max_days: float | None = None, ax: Axes | None = None, title: str | None = None,
                  **kws) -> Axes:
    """Kaplan-Meier step curves per group: the share of deals still open by days since creation.

    ``data`` is a ``CycleSurvival`` (or its ``curves`` frame). ``groups`` picks the group
    labels (default: all); ``kind="won_of_eventual"`` draws instead the share of the
    eventually-won deals already won. A dotted line marks one half: where a curve
    crosses it is that group's median. ``band`` draws the 95% band (default: with one
    group only). ``min_deals`` leaves out groups with fewer deals (needs a
    ``CycleSurvival``).
    """
    curves = data.curves if hasattr(data, "curves") else data
    if groups is None and min_deals and hasattr(data, "table"):
        groups = data.table.loc[data.table["deals"] >= min_deals, "group"].tolist()
    if kind not in ("still_open", "won_of_eventual"):
        raise ValueError(f"kind must be 'still_open' or 'won_of_eventual', not {kind!r}")
    labels = list(dict.fromkeys(curves["group"])) if groups is None else list(groups)
    band = (len(labels) == 1 and kind == "still_open") if band is None else band
    ax = _axes(ax)
    colours = palette(max(len(labels), 1))
    for colour, label in zip(colours, labels, strict=False):
        c = curves.loc[curves["group"] == label]
        if c.empty:
            continue
        x = np.r_[0.0, c["days"].to_numpy(dtype="float64")]
        start = 1.0 if kind == "still_open" else 0.0
        y = np.r_[start, c[kind].to_numpy(dtype="float64")]
        ax.step(x, y, where="post", color=colour, label=str(label), linewidth=1.8, **kws)
        if band:
            ax.fill_between(x, np.r_[1.0, c["still_open_low"].to_numpy(dtype="float64")],
                            np.r_[1.0, c["still_open_high"].to_numpy(dtype="float64")], step="post",
                            color=colour, alpha=0.2, linewidth=0)
    ax.axhline(0.5, color="0.3", linestyle=":", linewidth=1.2)
    if max_days is None and len(curves):
        max_days = float(np.nanquantile(curves["days"].to_numpy(dtype="float64"), 0.99))
    if max_days:
        ax.set_xlim(0, max_days)
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, pos: narrative.pct(v)))
    ax.set_xlabel("days since the deal was created")
    ax.set_ylabel("deals still open" if kind == "still_open" else "of the won deals, already won")
    leg = ax.legend(loc="best", frameon=True)
    for text in leg.get_texts():
        text.set_parse_math(False)
    if title is None:
        title = ("Share of deals still open, by days since creation" if kind == "still_open"
                 else "Share of won deals already won, by days since creation")
    _title(ax, title)
    return ax


def plot_cumulative_incidence(data, *, group: str = "all deals", max_days: float | None = None,
                              ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Where deals stand t days after creation: won, lost or still open (stacked shares; cumulative incidence).

    ``data`` is a ``CycleSurvival`` (or its ``curves`` frame); ``group`` one group label.
    """
    curves = data.curves if hasattr(data, "curves") else data
    c = curves.loc[curves["group"] == group]
    ax = _axes(ax)
    if c.empty:
        return _empty(ax, "No deals", title or "No deals to follow")
    colours = palette()
    x = np.r_[0.0, c["days"].to_numpy(dtype="float64")]
    won = np.r_[0.0, c["won"].to_numpy(dtype="float64")]
    lost = np.r_[0.0, c["lost"].to_numpy(dtype="float64")]
    still = np.r_[1.0, c["still_open"].to_numpy(dtype="float64")]
    ax.stackplot(x, won, lost, still, step="post", colors=[colours[2], colours[3], "0.85"],
                 labels=["won", "lost", "still open"], **kws)
    if max_days is None:
        max_days = float(np.nanquantile(x, 0.99))
    ax.set_xlim(0, max_days)
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, pos: narrative.pct(v)))
    ax.set_xlabel("days since the deal was created")
    ax.set_ylabel("share of deals")
    ax.legend(loc="upper left", frameon=True)
    if title is None:
        title = (f"{narrative.pct(won[-1])} of deals end up won, "
                 f"{narrative.pct(lost[-1])} lost")
    _title(ax, title)
    return ax


def plot_cycle_trend(data: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Median sales cycle per period as a line, the middle half of deals (quartiles) as a band.

    ``data`` is a ``cycle_trend`` table (oldest period first).
    """
    ax = _axes(ax)
    colours = palette()
    pos = np.arange(len(data))
    med = data["median_days"].to_numpy(dtype="float64")
    ax.fill_between(pos, data["q1_days"].to_numpy(dtype="float64"), data["q3_days"].to_numpy(dtype="float64"),
                    color=colours[0], alpha=0.2, linewidth=0, label="middle half of deals")
    ax.plot(pos, med, marker="o", color=colours[0], label="median", **kws)
    step = max(1, int(np.ceil(len(data) / 12)))
    ax.set_xticks(pos[::step], [str(p) for p in data["period"]][::step], parse_math=False, rotation=45,
                  ha="right")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("days from creation to close")
    ax.legend(loc="lower left", frameon=True)
    if title is None:
        ok = med[np.isfinite(med)]
        title = (f"Median cycle between {narrative.days(ok.min())} and {narrative.days(ok.max())} a period"
                 if len(ok) else "No closed deals in these periods")
    _title(ax, title)
    return ax


def plot_stage_times(data: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Median days in each stage as bars (pipeline order, first stage on top), the 90th percentile as a black tick.

    ``data`` is a ``stage_time_table``; stages without a completed visit are left out.
    """
    ax = _axes(ax)
    shown = data.loc[data["completed"] > 0]
    colours = palette()
    pos = np.arange(len(shown))
    ax.barh(pos, shown["median_days"].to_numpy(dtype="float64"), color=colours[0], height=0.6,
            label="median", **kws)
    ax.scatter(shown["p90_days"].to_numpy(dtype="float64"), pos, marker="|", s=400, linewidths=2.5,
               color="black", zorder=3, label="90th percentile (stalled-deal norm)")
    ax.set_yticks(pos, [str(s) for s in shown["stage"]], parse_math=False)
    ax.invert_yaxis()
    ax.set_xlabel("days in stage (completed visits)")
    ax.legend(loc="best", frameon=True)
    if title is None:
        if len(shown):
            top = shown.loc[shown["share_of_time"].idxmax()]
            title = f"{top['stage']} takes {narrative.pct(top['share_of_time'])} of the time deals spend in stages"
        else:
            title = "No completed stage visits yet"
    _title(ax, title)
    return ax


# ----------------------------------------------------------------------------- goals (report 08)
_GOAL_STATUS_COLOUR = {"off pace": 3, "at risk": 1, "missed": 3, "on pace": 0, "reached": 2}


def plot_goal_pace(data: pd.DataFrame, *, metric: str = "revenue", level: str = "owner", top: int = 40,
                   label: tuple[str, ...] = ("name", "owner_id", "team"), ax: Axes | None = None,
                   title: str | None = None, **kws) -> Axes:
    """Share of target reached per goal as bars (coloured by status), the run-rate projection as a dot
    and the share of working days gone as a black tick; a dashed line marks 100% of target.

    ``data`` is a ``goals.goal_progress`` table; the goals of ``metric`` at ``level`` are
    drawn, lowest projection on top (at most ``top``).
    """
    rows = data.loc[(data["metric"] == metric) & (data["level"] == level)]
    shown = rows.sort_values("projected_attainment", kind="stable", na_position="last").head(top)
    if ax is None:  # one bar per goal: the figure grows with the number of goals
        _, ax = plt.subplots(figsize=(8, max(3.0, 1.6 + 0.26 * len(shown))))
    what = str(metric).replace("_", " ")
    if len(shown) == 0:
        return _empty(ax, f"No {what} goals", title or f"No {level} has a {what} target in this period")
    colours = palette()
    pos = np.arange(len(shown))
    bar_colours = [colours[_GOAL_STATUS_COLOUR.get(s, 7)] for s in shown["status"]]
    ax.barh(pos, shown["share_reached"].astype("float64").fillna(0).to_numpy(), color=bar_colours,
            height=0.65, **kws)
    ax.scatter(shown["projected_attainment"].astype("float64").to_numpy(), pos, marker="o", s=36,
               color="black", zorder=3, label="projected at period end")
    ax.scatter(shown["share_elapsed"].astype("float64").to_numpy(), pos, marker="|", s=300, linewidths=2,
               color="dimgray", zorder=3, label="share of working days gone")
    line = ax.axvline(1.0, color="black", linestyle="--", linewidth=1.2, label="target")
    line.set_gid("target")
    names = [narrative._label(r, label, missing="(no owner)") for _, r in shown.iterrows()]
    ax.set_yticks(pos, names, parse_math=False)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, p: narrative.pct(x)))
    ax.set_xlabel(f"share of the {what} target (bar: reached so far; dot: projected)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[_GOAL_STATUS_COLOUR[s]], label=s)
               for s in ("off pace", "at risk", "on pace", "reached") if (shown["status"] == s).any()]
    ax.legend(handles=handles + ax.get_legend_handles_labels()[0], loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=True, fontsize="small")
    if title is None:
        off = rows.loc[rows["status"] == "off pace"].sort_values("projected_attainment", kind="stable")
        noun = "owner" if level == "owner" else "team"
        if len(off):
            who = ", ".join(narrative._label(r, label) for _, r in off.head(4).iterrows())
            title = f"{narrative.count(len(off))} of {narrative.count(len(rows), noun)} off pace for {what}: {who}"
        else:
            title = f"No {noun} off pace for {what}"
    _title(ax, title)
    return ax


def plot_attainment_history(data: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None,
                            metric: str = "revenue", **kws) -> Axes:
    """Share of the total target reached per goal period as bars (the running period lighter, with its
    run-rate projection as a dot), and a dashed line at 100%.

    ``data`` is a ``goals.attainment_history`` table (oldest first).
    """
    ax = _axes(ax)
    what = str(metric).replace("_", " ")
    if len(data) == 0:
        return _empty(ax, "No goal periods", title or f"No {what} goal period yet")
    colours = palette()
    pos = np.arange(len(data))
    complete = data["complete"].astype(bool).to_numpy()
    values = data["attainment"].astype("float64").fillna(0).to_numpy()
    ax.bar(pos[complete], values[complete], color=colours[0], width=0.7, label="reached", **kws)
    if (~complete).any():
        ax.bar(pos[~complete], values[~complete], color=colours[0], alpha=0.45, width=0.7,
               label="reached so far (running)", **kws)
        ax.scatter(pos[~complete], data["projected_attainment"].astype("float64").to_numpy()[~complete],
                   color="black", zorder=3, s=36, label="projected at period end")
    line = ax.axhline(1.0, color="black", linestyle="--", linewidth=1.2, label="target")
    line.set_gid("target")
    ax.set_xticks(pos, [str(x) for x in data["label"]], rotation=45, ha="right", parse_math=False)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, p: narrative.pct(x)))
    ax.set_ylabel(f"share of the {what} target")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=True, fontsize="small")
    if title is None:
        done = data.loc[complete]
        hit = int((done["attainment"] >= 1).sum())
        title = (f"{what.capitalize()} target reached in {narrative.count(hit)} of the last "
                 f"{narrative.count(len(done), 'period')}")
    _title(ax, title)
    return ax


# ----------------------------------------------------------------------------- sales performance (report 05)
def plot_activity_mix(data: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Stacked bars of activities done per period, one colour per activity type.

    ``data`` is a ``metrics.activity.activity_mix`` frame (period, type, activities);
    periods keep their order, a running period is hatched.
    """
    ax = _axes(ax)
    wide = data.pivot_table(index="period", columns="type", values="activities", aggfunc="sum", sort=False)
    wide = wide.reindex(index=pd.unique(data["period"]), columns=pd.unique(data["type"])).fillna(0)
    colours = palette(len(wide.columns))
    pos = np.arange(len(wide))
    running = set(data.loc[~data["complete"], "period"]) if "complete" in data.columns else set()
    bottom = np.zeros(len(wide))
    for colour, col in zip(colours, wide.columns, strict=False):
        values = wide[col].to_numpy(dtype="float64")
        bars = ax.bar(pos, values, bottom=bottom, color=colour, width=0.75, label=str(col), **kws)
        for bar, period in zip(bars, wide.index, strict=True):
            if period in running:
                bar.set_hatch("//")
        bottom += values
    ax.set_xticks(pos, [str(p) for p in wide.index], rotation=45, ha="right", parse_math=False)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("activities done")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=True)
    if title is None:
        title = f"{narrative.count(bottom[-1] if len(bottom) else 0, 'activity', 'activities')} in the latest period"
    _title(ax, title)
    return ax


def plot_call_band_win_rates(data: pd.DataFrame, *, best: str | None = None, reference: str | None = None,
                             ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Win rate of deals per band of weekly calls (bars) with 95% Wilson intervals (lines), deals per band on top.

    ``data`` is the ``bands`` frame of an ``ActivityOutcome`` (band, deals, win_rate,
    win_rate_low, win_rate_high); ``best`` is highlighted, ``reference`` labelled.
    """
    ax = _axes(ax)
    colours = palette()
    pos = np.arange(len(data))
    rate = data["win_rate"].to_numpy(dtype="float64")
    low = data["win_rate_low"].to_numpy(dtype="float64")
    high = data["win_rate_high"].to_numpy(dtype="float64")
    bar_colours = [colours[2] if str(b) == best else colours[0] for b in data["band"]]
    ax.bar(pos, np.nan_to_num(rate), color=bar_colours, width=0.7, **kws)
    err = np.vstack([np.nan_to_num(rate - low), np.nan_to_num(high - rate)])
    ax.errorbar(pos, np.nan_to_num(rate), yerr=err, fmt="none", ecolor="black", capsize=4, linewidth=1.2)
    for p, h, n in zip(pos, high, data["deals"], strict=True):
        ax.text(p, (h if np.isfinite(h) else 0) + 0.02, narrative.count(n, "deal"), ha="center",
                va="bottom", fontsize=9, parse_math=False)
    labels = [f"{b}\n(reference)" if str(b) == reference else str(b) for b in data["band"]]
    ax.set_xticks(pos, labels, parse_math=False)
    ax.set_ylim(0, 1.12)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: narrative.pct(v)))
    ax.set_xlabel("calls the owner made in the week the deal closed")
    ax.set_ylabel("win rate (95% interval)")
    if title is None:
        title = (f"Deals closed in weeks with {best} calls win most often" if best
                 else "Win rate by weekly calls")
    _title(ax, title)
    return ax


def plot_effects(data: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Odds ratios with their confidence intervals (a forest plot on a log scale, 1 = no difference).

    ``data`` has term, odds_ratio, odds_ratio_low, odds_ratio_high (e.g. the rows of one
    model in ``ActivityOutcome.effects()``); an optional ``model`` column is shown in the labels.
    """
    ax = _axes(ax)
    colours = palette()
    rows = data.reset_index(drop=True)
    pos = np.arange(len(rows))
    est = rows["odds_ratio"].to_numpy(dtype="float64")
    lo = rows["odds_ratio_low"].to_numpy(dtype="float64")
    hi = rows["odds_ratio_high"].to_numpy(dtype="float64")
    clear = (lo > 1) | (hi < 1)
    ax.hlines(pos, lo, hi, color=[colours[2] if c else "0.5" for c in clear], linewidth=2.5)
    ax.scatter(est, pos, color=[colours[2] if c else "0.3" for c in clear], zorder=3, s=40, **kws)
    line = ax.axvline(1.0, color="black", linestyle="--", linewidth=1.2)
    line.set_gid("no-effect")
    if "model" in rows.columns and rows["model"].nunique() > 1:
        labels = [f"{t} · {m}" for t, m in zip(rows["term"], rows["model"], strict=True)]
    else:
        labels = [str(t) for t in rows["term"]]
    ax.set_yticks(pos, labels, parse_math=False)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.set_xlabel("odds ratio of winning (log scale; interval not crossing 1 = clear difference)")
    if title is None:
        title = f"{int(clear.sum())} of {len(rows)} effects clearly different from no effect"
    _title(ax, title)
    return ax


def plot_quota_attainment(data: pd.DataFrame, *, top: int = 40, label: tuple[str, ...] = ("name", "owner_id"),
                          ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Quota attainment per owner as bars, a dashed line at 100% and a black tick at the share of the period gone.

    ``data`` is a ``metrics.activity.quota_attainment`` frame (optionally with name);
    owners behind the share of the period gone are highlighted.
    """
    shown = data.head(top)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, max(4.5, 0.3 * len(shown) + 1)))
    colours = palette()
    att = shown["attainment"].to_numpy(dtype="float64")
    gone = shown["elapsed_share"].to_numpy(dtype="float64")
    pos = np.arange(len(shown))
    behind = np.nan_to_num(att) < np.nan_to_num(gone)
    ax.barh(pos, np.nan_to_num(att), color=[colours[3] if b else colours[0] for b in behind], height=0.7, **kws)
    ax.scatter(gone, pos, marker="|", s=120, linewidths=2, color="black", zorder=3,
               label="share of the period gone")
    line = ax.axvline(1.0, color="black", linestyle="--", linewidth=1.2, label="target")
    line.set_gid("target")
    names = [narrative._label(r, label, missing="(no owner)") for _, r in shown.iterrows()]
    ax.set_yticks(pos, names, parse_math=False)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: narrative.pct(v)))
    ax.set_xlabel("share of target achieved")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=True)
    if title is None:
        title = f"{narrative.count(int(behind.sum()), 'owner')} behind the share of the period gone"
    _title(ax, title)
    return ax


# ----------------------------------------------------------------------------- conversion (report 03)
def plot_funnel(data, *, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Horizontal bars of the deals that reached each funnel stage (first stage on top), the biggest drop-off highlighted.

    ``data`` is a ``Funnel`` (from ``conversion.stage_funnel``) or its ``table``; each bar
    is labelled with its count and share of the cohort.
    """
    table = data.table if hasattr(data, "table") else data
    ax = _axes(ax)
    colours = palette()
    pos = np.arange(len(table))
    reached = table["reached"].to_numpy(dtype="float64")
    steps = table.iloc[1:].dropna(subset=["drop_off_share"])
    worst = int(steps.loc[steps["drop_off_share"].idxmax(), "step"]) if len(steps) else None
    bar_colours = [colours[3] if worst is not None and s == worst else colours[0] for s in table["step"]]
    ax.barh(pos, reached, color=bar_colours, height=0.7, **kws)
    cohort = reached[0] if len(reached) else 0
    for p, v in zip(pos, reached, strict=True):
        share = narrative.pct(v / cohort) if cohort else narrative.NA_TEXT
        ax.text(v, p, f"  {narrative.count(v)} ({share})", va="center", fontsize=9, parse_math=False)
    ax.set_yticks(pos, [str(s) for s in table["stage"]], parse_math=False)
    ax.invert_yaxis()
    ax.set_xlim(0, max(cohort, 1) * 1.25)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("deals of the cohort that reached the stage")
    if title is None:
        if worst is not None:
            row = table.loc[table["step"] == worst].iloc[0]
            before = table.loc[table["step"] == worst - 1, "stage"].iloc[0]
            title = (f"Biggest drop-off: {before} to {row['stage']} "
                     f"({narrative.pct(row['drop_off_share'])} go no further)")
        else:
            title = f"Stage funnel of {narrative.count(cohort, 'deal')}"
    _title(ax, title)
    return ax


def plot_source_conversion(data: pd.DataFrame, *, rate: str = "lead_to_won", label: str = "source",
                           n_col: str = "leads", ax: Axes | None = None, title: str | None = None,
                           **kws) -> Axes:
    """Each source's conversion rate as a dot with its 95% interval as a line, best on top.

    ``data`` is a ``conversion.lead_conversion`` (or ``source_table``) frame with
    ``rate``, ``<rate>_low`` and ``<rate>_high``; rows without a rate are left out.
    """
    ax = _axes(ax)
    shown = data.dropna(subset=[rate]).sort_values(rate, ascending=False, kind="stable")
    colours = palette()
    pos = np.arange(len(shown))
    est = shown[rate].to_numpy(dtype="float64")
    lo = shown[f"{rate}_low"].to_numpy(dtype="float64")
    hi = shown[f"{rate}_high"].to_numpy(dtype="float64")
    ax.errorbar(est, pos, xerr=np.vstack([est - lo, hi - est]), fmt="o", color=colours[0],
                ecolor=colours[0], capsize=4, **kws)
    names = [f"{narrative._label(r, (label,), missing='(no source)')} (n = {narrative.count(r[n_col])})"
             if n_col in shown.columns else narrative._label(r, (label,), missing="(no source)")
             for _, r in shown.iterrows()]
    ax.set_yticks(pos, names, parse_math=False)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: narrative.pct(x)))
    ax.set_xlim(left=0)
    ax.set_xlabel(f"{rate.replace('_', ' ')} (dot) with 95% interval (line)")
    if title is None:
        if len(shown) >= 2 and est[-1] > 0:
            title = (f"Leads from {narrative._label(shown.iloc[0], (label,))} convert "
                     f"{narrative._conv_times(est[0], est[-1])} as often as leads from "
                     f"{narrative._label(shown.iloc[-1], (label,))}")
        elif len(shown) >= 2:
            title = (f"Leads from {narrative._label(shown.iloc[0], (label,))} convert best "
                     f"({narrative.pct(est[0])}), from {narrative._label(shown.iloc[-1], (label,))} not at all")
        else:
            title = "Conversion by source"
    _title(ax, title)
    return ax


def plot_leads_by_period(data: pd.DataFrame, *, by: str = "source", ax: Axes | None = None,
                         title: str | None = None, **kws) -> Axes:
    """Stacked bars of incoming leads per period, one colour per source (from ``conversion.leads_by_period``)."""
    ax = _axes(ax)
    wide = data.pivot_table(index="period", columns=by, values="leads", aggfunc="sum", sort=False,
                            fill_value=0)
    order = wide.sum().sort_values(ascending=False, kind="stable").index
    wide = wide[order]
    colours = palette(max(len(order), 1))
    bottom = np.zeros(len(wide))
    pos = np.arange(len(wide))
    for i, col in enumerate(wide.columns):
        values = wide[col].to_numpy(dtype="float64")
        ax.bar(pos, values, bottom=bottom, color=colours[i % len(colours)], width=0.8,
               label=str(col), **kws)
        bottom += values
    ax.set_xticks(pos, [str(p) for p in wide.index], rotation=45, ha="right", parse_math=False)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("leads created")
    if len(order):
        legend = ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=True)
        for text in legend.get_texts():
            text.set_parse_math(False)
    if title is None:
        total = wide.to_numpy().sum()
        title = (f"Most incoming leads come from {order[0]} ({narrative.pct(wide[order[0]].sum() / total)})"
                 if total else "No incoming leads")
    _title(ax, title)
    return ax


def plot_lost(data: pd.DataFrame, *, by: str = "lost_reason", top: int = 15, ax: Axes | None = None,
              title: str | None = None, **kws) -> Axes:
    """Lost deals per reason, stage at loss or owner as horizontal bars, the largest group highlighted (from ``conversion.lost_summary``)."""
    ax = _axes(ax)
    shown = data.head(top)
    colours = palette()
    counts = shown["lost"].to_numpy(dtype="float64")
    pos = np.arange(len(shown))
    peak = counts.max() if len(counts) else 0
    ax.barh(pos, counts, color=[colours[3] if c == peak else colours[0] for c in counts], height=0.7, **kws)
    total = data["lost"].sum()
    for p, c in zip(pos, counts, strict=True):
        ax.text(c, p, f"  {narrative.count(c)} ({narrative.pct(c / total)})", va="center", fontsize=9,
                parse_math=False)
    ax.set_yticks(pos, [str(s) for s in shown[by]], parse_math=False)
    ax.invert_yaxis()
    ax.set_xlim(0, max(peak, 1) * 1.25)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("lost deals")
    if title is None:
        if len(shown):
            row = shown.iloc[int(np.argmax(counts))]
            title = f"Most lost deals: {row[by]} ({narrative.pct(row['lost'] / total)})"
        else:
            title = "No lost deals"
    _title(ax, title)
    return ax


__all__ += ["plot_funnel", "plot_source_conversion", "plot_leads_by_period", "plot_lost"]


# ----------------------------------------------------------------------------- customers and cohorts (reports 09, 10)
__all__ += ["plot_pareto", "plot_rfm_segments", "plot_clv_check", "plot_cohort_heatmap", "plot_retention_by_group"]


def plot_pareto(data: pd.DataFrame, *, top: float = 0.2, ax: Axes | None = None, title: str | None = None,
                **kws) -> Axes:
    """Pareto curve: cumulative share of revenue against the share of customers (largest first), the top ``top`` marked.

    ``data`` is a ``customer_profitability`` table (``cumulative_share``, ranked);
    the ABC class limits are drawn as dotted lines when it has ``abc_class``.
    """
    ax = _axes(ax)
    known = data[data["rank"].notna()] if "rank" in data.columns else data
    n = len(known)
    colours = palette()
    if n == 0:
        return _empty(ax, "No customer revenue", title or "No customer revenue yet")
    x = np.arange(0, n + 1) / n
    y = np.concatenate([[0.0], known["cumulative_share"].to_numpy(dtype="float64")])
    ax.plot(x, y, color=colours[0], linewidth=2, label="customers, largest first", **kws)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="all customers equal")
    k = int(np.ceil(top * n - 1e-9))
    share = float(y[k])
    ax.scatter([k / n], [share], color=colours[3], zorder=3, s=40)
    ax.annotate(f"top {narrative.pct(top)}: {narrative.pct(share)} of revenue", (k / n, share),
                xytext=(10, -18), textcoords="offset points", fontsize=9)
    if "abc_class" in known.columns:
        for cls in ("A", "B"):
            last = known.index[known["abc_class"] == cls]
            if len(last):
                pos = known.index.get_loc(last[-1]) + 1
                ax.axvline(pos / n, color="0.4", linestyle=":", linewidth=1)
                ax.text(pos / n, 0.03, f" end of class {cls}", fontsize=8, color="0.3", rotation=90,
                        va="bottom")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, pos: narrative.pct(v)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, pos: narrative.pct(v)))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("share of customers (largest first)")
    ax.set_ylabel("share of revenue")
    ax.legend(loc="lower right", frameon=True)
    _title(ax, title or f"The top {narrative.pct(top)} of customers bring {narrative.pct(share)} of revenue")
    return ax


def plot_rfm_segments(data: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Share of customers and share of revenue of each RFM segment as paired horizontal bars.

    ``data`` is an ``rfm_segments`` table (segment order kept, best first).
    """
    ax = _axes(ax)
    colours = palette()
    pos = np.arange(len(data))
    ax.barh(pos - 0.2, data["customer_share"].to_numpy(dtype="float64"), height=0.4, color=colours[0],
            label="share of customers", **kws)
    ax.barh(pos + 0.2, data["revenue_share"].to_numpy(dtype="float64"), height=0.4, color=colours[1],
            label="share of revenue", **kws)
    ax.set_yticks(pos, [f"{s} ({narrative.count(n)})" for s, n in zip(data["segment"], data["customers"],
                                                                        strict=True)], parse_math=False)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, p: narrative.pct(v)))
    ax.set_xlabel("share")
    ax.legend(loc="lower right", frameon=True)
    if title is None:
        best = data.loc[data["revenue_share"].idxmax()] if len(data) else None
        title = (f"{best['segment']}: {narrative.pct(best['customer_share'])} of customers, "
                 f"{narrative.pct(best['revenue_share'])} of revenue" if best is not None else "RFM segments")
    _title(ax, title)
    return ax


def plot_clv_check(check, *, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Hold-out check of the purchase model: mean repeat purchases in the hold-out weeks, predicted and actual,
    by the number of repeat purchases before it (a ``ModelCheck`` from ``purchase_model_check``)."""
    ax = _axes(ax)
    f = check.by_frequency
    colours = palette()
    pos = np.arange(len(f))
    ax.bar(pos - 0.2, f["actual"].to_numpy(dtype="float64"), width=0.4, color=colours[0], label="actual", **kws)
    ax.bar(pos + 0.2, f["predicted"].to_numpy(dtype="float64"), width=0.4, color=colours[1],
           label="predicted by BG/NBD", **kws)
    ax.set_xticks(pos, [f"{lbl}\n({narrative.count(n)})" for lbl, n in zip(f["label"], f["customers"], strict=True)],
                  parse_math=False)
    ax.set_xlabel("repeat purchases before the hold-out (customers)")
    ax.set_ylabel("mean purchases in the hold-out")
    ax.legend(loc="upper left", frameon=True)
    if title is None:
        err = check.error
        title = (f"Hold-out: {narrative.count(round(check.predicted))} purchases predicted, "
                 f"{narrative.count(check.actual)} happened" + (f" ({err:+.0%})" if np.isfinite(err) else ""))
    _title(ax, title)
    return ax


def plot_cohort_heatmap(data: pd.DataFrame, *, value: str = "retention", kind: str = "pct",
                        currency: str | None = None, highlight=(), ax: Axes | None = None,
                        title: str | None = None, annotate: bool | None = None, **kws) -> Axes:
    """Heat-map of a cohort table: one row per cohort, one column per age; cells not yet observed hatched grey.

    ``data`` is a tidy frame with ``cohort``, ``age`` and ``value`` columns (a
    ``cohort_activity`` or ``deal_cohort_win_rates`` table); ``kind`` is ``"pct"`` or
    ``"money"`` (for the cell labels and the colour bar). Cohorts in ``highlight`` get
    their label in bold. Extra ``**kws`` go to ``seaborn.heatmap``.
    """
    wide = data.pivot(index="cohort", columns="age", values=value).astype("float64")
    if ax is None:
        _, ax = plt.subplots(figsize=(min(2 + 0.6 * wide.shape[1], 12), max(3, 0.28 * len(wide) + 1.5)))
    fmt = (lambda v: narrative.pct(v)) if kind == "pct" else (lambda v: narrative.money(v, currency, short=True))
    if annotate is None:
        annotate = wide.shape[0] <= 48 and wide.shape[1] <= 16
    labels = wide.apply(lambda col: col.map(lambda v: "" if pd.isna(v) else fmt(v))).to_numpy() if annotate else False
    shown = wide.copy()
    if value == "retention" and 0 in shown.columns:
        shown[0] = np.nan  # age 0 is 100% by definition: keep it out of the colour scale
    vmax = np.nanpercentile(shown.to_numpy(), 98) if np.isfinite(shown.to_numpy()).any() else 1.0
    ax.set_facecolor("0.92")
    ax.grid(False)
    sns.heatmap(wide, mask=wide.isna(), ax=ax, cmap="viridis", vmin=0, vmax=vmax if vmax > 0 else None,
                annot=labels, fmt="", annot_kws={"fontsize": 7}, linewidths=0.3, linecolor="white",
                cbar_kws={"format": FuncFormatter(lambda v, p: fmt(v)), "label": value.replace("_", " ")}, **kws)
    for i, row in enumerate(wide.index):
        for j, col in enumerate(wide.columns):
            if pd.isna(wide.loc[row, col]):
                ax.add_patch(plt.Rectangle((j, i), 1, 1, fill=False, hatch="///", edgecolor="0.8", linewidth=0))
    ax.set_yticks(np.arange(len(wide)) + 0.5, [str(c) for c in wide.index], parse_math=False, rotation=0,
                  fontsize=8)
    for tick in ax.get_yticklabels():
        if tick.get_text() in {str(h) for h in highlight}:
            tick.set_fontweight("bold")
            tick.set_color(palette()[3])
    ax.set_xlabel("age (periods after acquisition; hatched: not over yet)")
    ax.set_ylabel("cohort")
    _title(ax, title or f"{value.replace('_', ' ').capitalize()} by cohort and age")
    return ax


def plot_retention_by_group(data: pd.DataFrame, *, by: str = "source", min_customers: int = 1,
                            ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Retention per group as bars with their 95% Wilson intervals and a dashed line at the overall rate.

    ``data`` is a ``cohort_retention(by=...)`` table; groups with fewer than
    ``min_customers`` counted customers are left out.
    """
    ax = _axes(ax)
    t = data[(data["customers"] >= min_customers)].dropna(subset=["retention"])
    t = t.sort_values("retention", ascending=False, kind="stable")
    colours = palette()
    pos = np.arange(len(t))
    est = t["retention"].to_numpy(dtype="float64")
    err = np.vstack([est - t["retention_low"].to_numpy(dtype="float64"),
                     t["retention_high"].to_numpy(dtype="float64") - est])
    ax.bar(pos, est, color=colours[0], width=0.6, yerr=err, capsize=4, ecolor="0.3", **kws)
    ax.set_xticks(pos, [f"{g}\n({narrative.count(n)})" for g, n in zip(t[by], t["customers"], strict=True)],
                  parse_math=False)
    overall = data["retained"].sum() / data["customers"].sum() if data["customers"].sum() else np.nan
    if np.isfinite(overall):
        line = ax.axhline(overall, color="black", linestyle="--", linewidth=1.2,
                          label=f"all customers: {narrative.pct(overall)}")
        line.set_gid("overall")
        ax.legend(loc="upper right", frameon=True)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, p: narrative.pct(v)))
    ax.set_ylabel("retained (95% interval)")
    ax.set_xlabel(f"{by.replace('_', ' ')} (customers counted)")
    if title is None and len(t):
        title = f"{t[by].iloc[0]} customers retain best: {narrative.pct(est[0])}"
    _title(ax, title or "Retention by group")
    return ax


# ----------------------------------------------------------------------------- sales forecast (07)
def plot_bookings_forecast(series: pd.DataFrame, outlook: pd.DataFrame, *, model=None,
                           currency: str | None = None, history: int = 24, ax: Axes | None = None,
                           title: str | None = None, **kws) -> Axes:
    """Bookings per period (the last ``history`` complete ones) and the forecast with 80% and 95% bands.

    ``series`` is a ``bookings_series`` table, ``outlook`` a ``bookings_outlook`` table of
    the leading forecast (the running period is drawn as booked so far plus the rest);
    ``model`` optionally another ``Forecast`` (e.g. the model when a baseline leads),
    drawn dashed.
    """
    ax = _axes(ax)
    colours = palette()
    done = series[series["complete"].astype(bool)].tail(history)
    ax.plot(done["start"], done["bookings"], marker="o", color=colours[0], label="booked", **kws)
    starts = outlook["start"]
    for lv, alpha in ((0.95, 0.15), (0.8, 0.3)):
        lo, hi = outlook.get(f"lo_{lv * 100:.0f}"), outlook.get(f"hi_{lv * 100:.0f}")
        if lo is not None and hi is not None:
            ax.fill_between(starts, lo, hi, color=colours[1], alpha=alpha, linewidth=0,
                            label=f"{lv:.0%} interval")
    ax.plot(starts, outlook["outlook"], marker="o", color=colours[1], label="forecast")
    run = outlook[outlook["status"] == "running"]
    if len(run):
        ax.scatter(run["start"], run["booked"], marker="x", s=60, color="black", zorder=3,
                   label="booked so far (running period)")
    if model is not None:
        ax.plot(starts, np.asarray(model.mean)[: len(starts)], linestyle="--", color=colours[2],
                label=f"model: {model.method}")
    ax.yaxis.set_major_formatter(money_formatter(currency))
    ax.set_ylabel(f"bookings{f' ({currency})' if currency else ''}")
    ax.set_ylim(bottom=0)
    leg = ax.legend(loc="upper left", frameon=True, fontsize=8)
    for text in leg.get_texts():
        text.set_parse_math(False)
    _title(ax, title or "Bookings and forecast")
    return ax


def plot_backtest(scores: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """MASE per forecast horizon for the model and the naive baselines (grouped bars; a dashed line at 1).

    ``scores`` is ``Backtest.scores()``.
    """
    ax = _axes(ax)
    methods = [m for m in ("model", "naive", "seasonal naive") if m in set(scores["method"])]
    horizons = sorted(scores["horizon"].unique())
    width = 0.8 / max(len(methods), 1)
    colours = palette()
    for i, m in enumerate(methods):
        s = scores[scores["method"] == m].set_index("horizon").reindex(horizons)
        ax.bar(np.arange(len(horizons)) + (i - (len(methods) - 1) / 2) * width, s["mase"], width=width,
               color=colours[i], label=m, **kws)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_xticks(np.arange(len(horizons)), [f"{h} ahead" for h in horizons])
    ax.set_ylabel("MASE (lower is better)")
    ax.legend(loc="best", frameon=True)
    if title is None:
        one = scores[scores["horizon"] == horizons[0]].set_index("method")["mase"] if horizons else pd.Series()
        best = one.idxmin() if len(one) else "n/a"
        title = f"Smallest error one period ahead: {best}"
    _title(ax, title)
    return ax


def plot_seasonal_factors(data: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None,
                          **kws) -> Axes:
    """Yearly pattern: one bar per month (factor 1 = an average month) with 95% intervals.

    ``data`` is ``SeasonalityTrend.factors`` (season, factor, low, high).
    """
    ax = _axes(ax)
    colours = palette()
    pos = np.arange(len(data))
    f = data["factor"].to_numpy(dtype="float64")
    err = np.vstack([f - data["low"].to_numpy(dtype="float64"), data["high"].to_numpy(dtype="float64") - f])
    ax.bar(pos, f, color=[colours[2] if v >= 1 else colours[0] for v in f], yerr=err, capsize=3, **kws)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    names = [narrative._month_name(s)[:3] if len(data) == 12 else str(int(s)) for s in data["season"]]
    ax.set_xticks(pos, names)
    ax.set_ylabel("bookings relative to an average month")
    if title is None:
        top = data.loc[data["factor"].idxmax()]
        title = f"Strongest month: {narrative._month_name(top['season'])} ({top['factor']:.2f}x)"
    _title(ax, title)
    return ax


def plot_calibration(data: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Observed against predicted win rate per decile of predicted probability, with 95% intervals and the diagonal.

    ``data`` is a ``calibration_table`` (predicted, observed, low, high, deals).
    """
    ax = _axes(ax)
    colours = palette()
    p = data["predicted"].to_numpy(dtype="float64")
    o = data["observed"].to_numpy(dtype="float64")
    err = np.vstack([o - data["low"].to_numpy(dtype="float64"), data["high"].to_numpy(dtype="float64") - o])
    lo = float(min(np.nanmin(p), np.nanmin(data["low"]), 0.0)) if len(data) else 0.0
    ax.plot([lo, 1], [lo, 1], color="black", linestyle="--", linewidth=1, label="perfect calibration")
    ax.errorbar(p, o, yerr=err, fmt="o", color=colours[0], capsize=3, label="decile (95% interval)", **kws)
    ax.set_xlabel("predicted win probability")
    ax.set_ylabel("observed share won")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, pos: narrative.pct(x)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, pos: narrative.pct(x)))
    ax.legend(loc="upper left", frameon=True)
    _title(ax, title or narrative.title_calibration(data))
    return ax


def plot_pipeline_forecast(data: pd.DataFrame, *, currency: str | None = None, ax: Axes | None = None,
                           title: str | None = None, **kws) -> Axes:
    """Open value and expected revenue per expected close period, with the 80% Monte Carlo interval.

    ``data`` is ``PipelineSimulation.by_period()`` (the "all open deals" row is left out).
    """
    ax = _axes(ax)
    colours = palette()
    d = data[data["period"] != "all open deals"]
    pos = np.arange(len(d))
    ax.bar(pos, d["value"], color="0.85", width=0.7, label="open value")
    exp = d["expected"].to_numpy(dtype="float64")
    err = np.vstack([exp - d["lo_80"].to_numpy(dtype="float64"), d["hi_80"].to_numpy(dtype="float64") - exp])
    ax.bar(pos, exp, color=colours[0], width=0.4, yerr=err, capsize=3, label="expected (80% interval)", **kws)
    ax.set_xticks(pos, [str(x) for x in d["period"]], parse_math=False)
    ax.yaxis.set_major_formatter(money_formatter(currency))
    ax.set_ylabel(f"revenue{f' ({currency})' if currency else ''}")
    ax.set_xlabel("expected close period")
    ax.legend(loc="best", frameon=True)
    if title is None:
        title = (f"{narrative.money(d['expected'].sum(), currency)} expected from "
                 f"{narrative.count(d['deals'].sum(), 'open deal')}" if len(d) else "No open deals")
    _title(ax, title)
    return ax


# ----------------------------------------------------------------------------- campaigns (report 12)
def plot_campaign_roi(data: pd.DataFrame, *, top: int = 30, label: tuple[str, ...] = ("name", "campaign_id"),
                      ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Horizontal bars of ROI per campaign (best on top), money-losing campaigns in a contrasting colour.

    ``data`` is a ``campaign_performance`` table; ROI is shown as a percentage. With more
    than ``top`` campaigns, the ``top`` with the largest spend are drawn (the axis says so;
    the default title still counts every campaign).
    """
    every = data.dropna(subset=["roi"])
    d = every.nlargest(top, "spend", keep="first") if len(every) > top else every
    d = d.sort_values("roi", kind="stable")
    ax = _axes(ax, rows=len(d))
    colours = palette()
    pos = np.arange(len(d))
    vals = d["roi"].to_numpy(dtype=float) * 100
    ax.barh(pos, vals, color=[colours[3] if v < 0 else colours[0] for v in vals], **kws)
    names = [" ".join(str(r[c]) for c in label if c in d.columns and pd.notna(r[c])) for _, r in d.iterrows()]
    ax.set_yticks(pos)
    ax.set_yticklabels(names)
    for t in ax.get_yticklabels():
        t.set_parse_math(False)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("ROI, % of spend ((won revenue - spend) / spend)", parse_math=False)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, pos: f"{x:,.0f}%"))
    if len(d) < len(every):
        ax.set_ylabel(f"the {len(d)} campaigns with the largest spend, of {narrative.count(len(every), 'campaign')}")
    if title is None:
        neg = int((every["roi"] < 0).sum())
        title = ("Every campaign pays back" if neg == 0 else
                 f"{narrative.count(neg, 'campaign')} of {narrative.count(len(every))} lose money")
    _title(ax, title)
    return ax


def plot_bounce_rates(data: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Bounce rate per channel with its 95% Wilson interval, flagged channels in a contrasting colour.

    ``data`` is a ``high_bounce_channels`` table (channel, bounce_rate, low, high, alert).
    """
    d = data.sort_values("bounce_rate")
    ax = _axes(ax, rows=len(d))
    colours = palette()
    pos = np.arange(len(d))
    est = d["bounce_rate"].to_numpy(dtype=float) * 100
    err = np.vstack([est - d["low"].to_numpy(dtype=float) * 100, d["high"].to_numpy(dtype=float) * 100 - est])
    ax.barh(pos, est, xerr=err, color=[colours[3] if a else colours[0] for a in d["alert"]], capsize=3, **kws)
    ax.set_yticks(pos)
    ax.set_yticklabels([str(c) for c in d["channel"]])
    for t in ax.get_yticklabels():
        t.set_parse_math(False)
    ax.set_xlabel("bounce rate, % of sends (bar: 95% interval)", parse_math=False)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, pos: f"{x:,.0f}%"))
    if title is None:
        hit = d.loc[d["alert"]]
        title = ("No channel bounces far above the others" if len(hit) == 0 else
                 ", ".join(str(c) for c in hit["channel"]) + " bounces far more than the other channels")
    _title(ax, title)
    return ax


def plot_mailing_list(data: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Mailing-list size (distinct addresses) per period as a line, new addresses as bars on a second axis."""
    ax = _axes(ax)
    colours = palette()
    x = pd.to_datetime(data["period_start"]).dt.tz_localize(None) if len(data) else data["period_start"]
    ax.plot(x, data["total_emails"], color=colours[0], lw=2, label="addresses on the list", **kws)
    ax.set_ylabel("distinct email addresses")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, pos: f"{v:,.0f}"))
    ax2 = ax.twinx()
    ax2.bar(x, data["new_emails"], width=20, color=colours[1], alpha=0.4, label="new in the period")
    ax2.set_ylabel("new addresses per period")
    ax2.grid(False)
    if title is None:
        title = (f"The list grew to {narrative.count(data['total_emails'].iloc[-1], 'address', 'addresses')}"
                 if len(data) else "No email addresses")
    _title(ax, title)
    return ax


# ----------------------------------------------------------------------------- customer service (11)
def plot_sla_weeks(alerts: pd.DataFrame, *, min_gap: float | None = None, ax: Axes | None = None,
                   title: str | None = None, **kws) -> Axes:
    """Weekly SLA compliance as bars (alerted weeks highlighted), the trailing baseline as a line.

    ``alerts`` is a ``service.sla_breach_alerts`` table; ``min_gap`` draws the baseline
    minus the material gap as a dashed line.
    """
    ax = _axes(ax)
    colours = palette()
    weeks = pd.to_datetime(alerts["week"])
    rate = alerts["compliance"].astype("float64").to_numpy()
    flagged = alerts["alert"].astype(bool).to_numpy()
    ax.bar(weeks, np.nan_to_num(rate), width=5.5, color=[colours[3] if f else colours[0] for f in flagged],
           label="SLA compliance", **kws)
    base = alerts["baseline_compliance"].astype("float64")
    ax.step(weeks, base, where="mid", color="black", linewidth=1.2, label="baseline (weeks before)")
    if min_gap is not None:
        line, = ax.step(weeks, base - float(min_gap), where="mid", color=colours[3], linestyle="--",
                        linewidth=1.0, label=f"alert level: {float(min_gap) * 100:.0f} points below")
        line.set_gid("min-gap")
    ax.set_ylim(0, 1.3)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, pos: narrative.pct(v)))
    ax.set_ylabel("tickets resolved by the SLA due date")
    ax.set_xlabel("week tickets were created (Monday)")
    ax.legend(loc="upper center", ncol=3, frameon=True, fontsize=8)
    if title is None:
        n = int(flagged.sum())
        title = f"{narrative.count(n, 'week')} with an SLA breach" if n else "No week with an SLA breach"
    _title(ax, title)
    return ax


def plot_ticket_flow(flow: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """Tickets opened and closed per period as lines, the backlog at each period's end as bars.

    ``flow`` is a ``service.ticket_flow`` table.
    """
    ax = _axes(ax)
    colours = palette()
    x = pd.to_datetime(flow["start"]).dt.tz_localize(None) if len(flow) else pd.to_datetime(flow["start"])
    ax.bar(x, flow["backlog"], width=4.0 if len(flow) < 2 or (x.iloc[1] - x.iloc[0]).days <= 7 else 20,
           color=colours[7], alpha=0.6, label="backlog at the end", **kws)
    ax.plot(x, flow["opened"], marker="o", color=colours[0], label="opened")
    ax.plot(x, flow["closed"], marker="s", color=colours[2], label="closed")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("tickets")
    ax.set_xlabel("period start")
    ax.legend(loc="upper left", frameon=True)
    _title(ax, title or "Tickets opened, closed and open per period")
    return ax


def plot_nps_trend(trend: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None, **kws) -> Axes:
    """NPS per period (points) with its 95% interval as error bars; periods without answers are left out.

    ``trend`` is a ``service.satisfaction_trend`` table.
    """
    ax = _axes(ax)
    colours = palette()
    t = trend.loc[trend["nps_answers"] > 0]
    x = pd.to_datetime(t["start"]).dt.tz_localize(None) if len(t) else pd.to_datetime(t["start"])
    y = t["nps"].astype("float64")
    err = np.vstack([(y - t["nps_low"]).to_numpy(dtype="float64"), (t["nps_high"] - y).to_numpy(dtype="float64")])
    ax.errorbar(x, y, yerr=err, fmt="o-", color=colours[0], capsize=3, label="NPS (95% CI)", **kws)
    ax.axhline(0, color="0.4", linewidth=0.8)
    ax.set_ylim(-100, 100)
    ax.set_ylabel("NPS (promoters minus detractors, points)")
    ax.set_xlabel("period start")
    _title(ax, title or "Net Promoter Score per period")
    return ax
