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
        ax.text(0.5, 0.5, "No stalled deals", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        _title(ax, title or "No deal is stuck longer than its stage norm")
        return ax
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
    ax = _axes(ax)
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
        ax.legend(loc="lower left", frameon=True)
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
def _axes(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    return ax


def _title(ax: Axes, title: str) -> None:
    ax.set_title(str(title), loc="left", parse_math=False)


def _fmt(v: float, value: str, currency, *, sign: str = "") -> str:
    prefix = {"in": "+", "out": "-"}.get(sign, "")
    text = narrative.money(v, currency, short=True) if value == "value" else narrative.count(v)
    return prefix + text
