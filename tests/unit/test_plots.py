import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from crmlib import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_figures():
    plots.set_theme()
    yield
    plt.close("all")


@pytest.fixture
def rng():
    return np.random.default_rng(20260927)


def pipeline_table():
    return pd.DataFrame({"stage": ["qualify", "proposal", "invoicing"], "deals": [2, 2, 1],
                         "value": [400.0, 1000.0, 500.0], "weighted_value": [40.0, 400.0, 450.0]})


def test_pipeline_by_stage_draws_a_value_and_a_weighted_bar_per_stage_first_stage_on_top():
    ax = plots.plot_pipeline_by_stage(pipeline_table(), currency="EUR")
    assert isinstance(ax, Axes)
    assert len(ax.patches) == 6
    widths = sorted(round(p.get_width()) for p in ax.patches)
    assert widths == [40, 400, 400, 450, 500, 1000]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["qualify", "proposal", "invoicing"]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # inverted: first stage at the top
    assert ax.get_title(loc="left") == "Open pipeline: 5 deals worth €1,900"
    assert ax.xaxis.get_major_formatter()(250_000, 0) == "€250k"


def test_pipeline_plot_draws_on_the_given_axes_with_the_given_title():
    fig, ax = plt.subplots()
    out = plots.plot_pipeline_by_stage(pipeline_table(), weighted=None, ax=ax, title="Proposal holds half")
    assert out is ax and len(ax.patches) == 3 and ax.get_title(loc="left") == "Proposal holds half"


def waterfall_frame(advanced=2):
    return pd.DataFrame({
        "component": ["start", "new", "advanced", "won", "lost", "slipped", "end"],
        "kind": ["level", "in", "memo", "out", "out", "memo", "level"],
        "deals": pd.array([6, 2, advanced, 3, 1, 2, 4], dtype="Int64"),
        "value": [440.0, 80.0, None if advanced is None else 140.0, 260.0, 30.0, 50.0, 230.0],
    })


def test_waterfall_bars_climb_and_fall_to_the_end_level():
    ax = plots.plot_waterfall(waterfall_frame(), currency="EUR")
    bars = ax.patches
    assert len(bars) == 7
    start, new, won, lost, end = bars[:5]
    assert (start.get_y(), start.get_height()) == (0, 440)
    assert (new.get_y(), new.get_height()) == (440, 80)
    assert (won.get_y(), won.get_height()) == (260, 260)   # 520 - 260
    assert (lost.get_y(), lost.get_height()) == (230, 30)  # 260 - 30
    assert (end.get_y(), end.get_height()) == (0, 230)
    assert [t.get_text() for t in ax.get_xticklabels()][-2:] == ["(advanced)", "(slipped)"]
    assert ax.get_title(loc="left") == "Open pipeline went from €440 to €230"


def test_waterfall_without_advanced_and_in_deal_counts():
    ax = plots.plot_waterfall(waterfall_frame(advanced=None).assign(
        deals=lambda f: f["deals"].astype("Float64").where(f["value"].notna())), value="deals")
    assert len(ax.patches) == 6
    assert ax.patches[-1].get_height() == 2  # slipped deals


def test_stalled_bars_and_norm_ticks(rng):
    n = 20
    data = pd.DataFrame({"deal_id": [f"D{i}" for i in range(n)], "name": [f"Deal {i}" for i in range(n)],
                         "stage": rng.choice(["proposal", "invoicing"], n),
                         "days_in_stage": rng.uniform(5, 30, n), "norm_days": rng.uniform(2, 5, n)})
    ax = plots.plot_stalled(data, top=15)
    assert len(ax.patches) == 15
    ticks = ax.collections[0].get_offsets()
    assert np.allclose(ticks[:, 0], data["norm_days"].head(15))
    assert ax.get_yticklabels()[0].get_text() == f"Deal 0 · {data['stage'].iloc[0]}"
    assert ax.get_title(loc="left") == "20 deals stuck longer than their stage norm"


def test_stalled_plot_of_nothing_says_so():
    empty = pd.DataFrame(columns=["deal_id", "name", "stage", "days_in_stage", "norm_days"])
    ax = plots.plot_stalled(empty)
    assert len(ax.patches) == 0 and "No deal" in ax.get_title(loc="left")


def test_owner_load_has_a_cap_line_and_highlights_owners_over_it():
    data = pd.DataFrame({"owner_id": ["u1", "u2", "u3"], "name": ["Ann", "Bob", "Cy"],
                         "open_deals": [63, 40, 20], "cap": [50, 50, 50]})
    ax = plots.plot_owner_load(data)
    assert len(ax.patches) == 3
    cap = [line for line in ax.lines if line.get_gid() == "cap"]
    assert len(cap) == 1 and tuple(cap[0].get_xdata()) == (50, 50)
    colours = [p.get_facecolor() for p in ax.patches]
    assert colours[0] != colours[1] and colours[1] == colours[2]
    assert ax.get_title(loc="left") == "1 owner over the cap of 50 open deals"


def test_names_with_dollars_and_markup_are_drawn_as_plain_text():
    name = r"<script>alert(1)</script> $\frac{1$"  # broken mathtext if it were parsed
    data = pd.DataFrame({"owner_id": ["u1"], "name": [name], "open_deals": [3]})
    ax = plots.plot_owner_load(data, cap=2, title="Cost $5 and $6")
    ax.figure.canvas.draw()  # would raise on broken mathtext
    assert ax.get_yticklabels()[0].get_text() == name
    assert ax.get_title(loc="left") == "Cost $5 and $6"


def test_quality_scores_highlight_weak_tables_and_draw_the_overall_line():
    import pandas as pd

    from crmlib.plots import plot_quality_scores

    counts = pd.DataFrame({"table": ["deals", "leads", "all"], "score": [70.0, 99.0, 85.0]})
    ax = plot_quality_scores(counts, threshold=90)
    assert len(ax.patches) == 2
    assert any(line.get_gid() == "overall" for line in ax.lines)
    assert "1 table below 90: deals" == ax.get_title(loc="left")
    import matplotlib.pyplot as plt

    plt.close("all")
