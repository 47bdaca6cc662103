"""How the pack scales on one machine: load + audit, the whole pack, peak memory, and the
aggregation step against the same aggregation written by hand in DuckDB SQL.

    python benchmarks/scale.py --size large            # 10M activities (1M deals, 2M orders)
    python benchmarks/scale.py --size 1000000          # 1M activities
    python benchmarks/scale.py --size huge             # 100M activities: a long run, not in the suite
    python benchmarks/scale.py --size huge --pack-only # the pack alone (its snapshot is the load)

The data is generated once by :mod:`crmlib.sample_large` into ``--data`` (default
``benchmarks/.data/<size>``, ignored by git) and reused. Measured, in one run:

* **load + audit**: ``open_data`` on the large source (the small tables audited in pandas,
  the large light and the heavy ones audited, and the heavy ones aggregated, in DuckDB), in
  a child process: wall time and peak resident memory;
* **pack**: ``crm-reports run`` on it (every report, ``--jobs 1``): wall time, peak resident
  memory of the whole process tree (runner, workers, kernels; sampled every 100 ms; also
  the largest single process from ``getrusage(RUSAGE_CHILDREN)``; the processes the tree
  held at its peak), and each report's status;
* **aggregation ratio**: the five aggregations of :mod:`crmlib.pushdown` run through Ibis on
  DuckDB over the Parquet files, against the same five written by hand as DuckDB SQL,
  both returning pandas frames, best of ``--repeat`` runs each.

Targets (issue 9): at 10M activities the pack in under 5 minutes and 4 GiB; at 100M under
20 minutes and 8 GiB; the aggregation step within 1.5x of the hand-written SQL.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _tree import describe_parts, have_psutil, run_tree  # noqa: E402  (benchmarks/_tree.py, beside this script)

TARGETS = {10_000_000: (300.0, 4.0), 100_000_000: (1200.0, 8.0)}  # activities: (pack seconds, GiB)
RATIO_TARGET = 1.5
GIB = 2**30

LOAD_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from crmlib.data import open_data
data = open_data(sys.argv[1])
took = time.perf_counter() - t0
counts = data.counts.set_index("table")
print(json.dumps({"seconds": took, "input": int(counts.loc["all", "input"]),
                  "quarantined": int(counts.loc["all", "quarantined"]),
                  "activity_rows_loaded": data.rows("activities"),
                  # counted from the files' metadata: reading the aggregates would add their memory
                  # (4-5 GiB of stage durations at 100M) to the load's peak
                  "aggregate_rows": {k: data.aggregates.rows(k) if hasattr(data.aggregates, "rows")
                                     else len(data.aggregates[k]) for k in data.aggregates}}))
"""

# the aggregations of crmlib.pushdown, as one would write them by hand for DuckDB (UTC weeks)
HAND_SQL = {
    "activity_weeks": """
        WITH a AS (
            SELECT owner_id, type, created_at, due_at, completed_at,
                   CASE WHEN type IN ('meeting', 'task') THEN completed_at ELSE created_at END AS done_at
            FROM read_parquet('{folder}/activities.parquet')),
        both_ AS (
            SELECT owner_id, date_trunc('week', done_at) AS week, type, 1 AS done, 0 AS scheduled
            FROM a WHERE done_at < TIMESTAMPTZ '{as_of}'
            UNION ALL
            SELECT owner_id, date_trunc('week', due_at), type, 0, 1
            FROM a WHERE due_at IS NOT NULL AND created_at < TIMESTAMPTZ '{as_of}'
              AND (completed_at IS NULL OR completed_at >= TIMESTAMPTZ '{as_of}'))
        SELECT owner_id, week, type, sum(done) AS done, sum(scheduled) AS scheduled
        FROM both_ GROUP BY owner_id, week, type""",
    "deal_activity": """
        SELECT deal_id, count(*) AS activities,
               count(*) FILTER (WHERE type = 'call') AS call, count(*) FILTER (WHERE type = 'email') AS email,
               count(*) FILTER (WHERE type = 'meeting') AS meeting, count(*) FILTER (WHERE type = 'task') AS task,
               count(*) FILTER (WHERE type = 'note') AS note, min(created_at) AS first_at, max(created_at) AS last_at
        FROM read_parquet('{folder}/activities.parquet')
        WHERE deal_id IS NOT NULL AND created_at < TIMESTAMPTZ '{as_of}' GROUP BY deal_id""",
    "activity_firsts": """
        SELECT type, direction, lead_id IS NOT NULL AS with_lead, min(created_at) AS first_at
        FROM read_parquet('{folder}/activities.parquet') WHERE created_at < TIMESTAMPTZ '{as_of}'
        GROUP BY ALL""",
    "stage_durations": """
        WITH h AS (
            SELECT deal_id, stage, epoch_us(entered_at) AS t, file_row_number AS pos,
                   lag(stage) OVER (PARTITION BY deal_id ORDER BY entered_at, file_row_number) AS prev
            FROM read_parquet('{folder}/stage_history.parquet', file_row_number = true)
            WHERE entered_at < TIMESTAMPTZ '{as_of}'),
        v AS (
            SELECT deal_id, stage, t, lead(t) OVER (PARTITION BY deal_id ORDER BY t, pos) AS left_t
            FROM h WHERE prev IS NULL OR prev <> stage)
        SELECT deal_id, stage, count(*) AS visits, count(left_t) AS completed,
               sum(coalesce(left_t, epoch_us(TIMESTAMPTZ '{as_of}')) - t) / 86400e6 AS days,
               coalesce(sum(left_t - t), 0) / 86400e6 AS completed_days,
               make_timestamp(min(t)) AS first_entered_at, make_timestamp(max(t)) AS last_entered_at,
               count(*) > count(left_t) AS current
        FROM v GROUP BY deal_id, stage""",
    "customer_orders": """
        SELECT account_id, currency, count(*) AS orders, coalesce(sum(revenue), 0) AS revenue,
               coalesce(sum(cost), 0) AS cost, min(ordered_at) AS first_at, max(ordered_at) AS last_at
        FROM read_parquet('{folder}/orders.parquet')
        WHERE account_id IS NOT NULL AND ordered_at < TIMESTAMPTZ '{as_of}' GROUP BY account_id, currency""",
}
PAIR = ("activity_weeks", "deal_activity")  # the reference: weekly owner x type + per deal


def size_arg(value: str):
    if value in ("large", "huge"):
        return value
    try:
        n = int(value.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {value!r}: large, huge or a number of activities") from None
    return n


def activities_of(size) -> int:
    from crmlib.sample_large import plan

    return plan(size).activities


def ensure_data(size, folder: Path) -> float:
    """Generate the data into ``folder`` unless it is there for this size; returns the seconds spent."""
    import yaml

    settings = folder / "export.yaml"
    if settings.exists():
        gen = (yaml.safe_load(settings.read_text(encoding="utf-8")) or {}).get("generator") or {}
        if str(gen.get("size")) == str(size):
            return 0.0
    from crmlib.sample_large import write_large

    t0 = time.perf_counter()
    write_large(folder, size=size)
    return time.perf_counter() - t0


def measure_load(folder: Path) -> dict:
    run = run_tree([sys.executable, "-c", LOAD_SCRIPT, str(folder)], env=_env())
    if run["code"] != 0:
        raise SystemExit(f"load failed: {run['stderr'].strip().splitlines()[-1:]}")
    return {**json.loads(run["stdout"].strip().splitlines()[-1]), "peak_gib": run["peak_tree_gib"]}


def measure_pack(folder: Path, out: Path, jobs: int, memory_cap_gib: float | None = None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    run = run_tree([sys.executable, "-m", "crmlib", "run", "--source", str(folder), "--out", str(out),
                    "--jobs", str(jobs)], env=_env(), memory_cap_gib=memory_cap_gib)
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, the largest child so far
    lines = run["stdout"].strip().splitlines()
    manifest = {}
    if lines and lines[-1].endswith("index.html"):
        path = Path(lines[-1]).parent / "manifest.json"
        if path.exists():
            manifest = json.loads(path.read_text(encoding="utf-8"))
    reports = [(r["report"], r["status"], float(r.get("duration_s") or 0.0), r.get("error") or "")
               for r in manifest.get("reports", [])]
    return {"wall_s": run["wall_s"], "peak_tree_gib": run["peak_tree_gib"], "peak_pss_gib": run["peak_pss_gib"],
            "peak_parts": run["peak_parts"], "largest_process_gib": max(largest, before) * 1024 / GIB, "code": run["code"],
            "timings": manifest.get("timings", {}), "reports": reports,
            "error": run["stderr"].strip().splitlines()[-1:] if run["code"] not in (0, 1) else []}


def measure_ratio(folder: Path, repeat: int) -> dict:
    """Best-of-``repeat`` seconds of the Ibis aggregation step and of the hand-written SQL."""
    import duckdb
    import pandas as pd

    from crmlib.periods import as_of_instant
    from crmlib.pushdown import backends

    as_of = as_of_instant("2026-09-27", "UTC")
    ours, hand = {}, {}
    for _ in range(repeat):
        con = backends.connect("duckdb")
        tables = backends.parquet_tables(con, folder)
        for name in HAND_SQL:
            t0 = time.perf_counter()
            backends.run(con, tables, as_of=as_of, timezone="UTC", names=(name,))
            ours[name] = min(ours.get(name, float("inf")), time.perf_counter() - t0)
        con.disconnect()
        raw = duckdb.connect()
        raw.execute("SET TimeZone = 'UTC'")
        for name, sql in HAND_SQL.items():
            t0 = time.perf_counter()
            with warnings.catch_warnings():  # duckdb's .df() uses a deprecated pandas keyword
                warnings.simplefilter("ignore")
                frame = raw.sql(sql.format(folder=str(folder.resolve()).replace("'", "''"),
                                           as_of=as_of.isoformat())).df()
            hand[name] = min(hand.get(name, float("inf")), time.perf_counter() - t0)
            assert isinstance(frame, pd.DataFrame)
        raw.close()
    return {"ours": ours, "hand": hand}


def _gib(value) -> str:
    return "n/a" if value is None else f"{value:.2f} GiB"


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _load_and_ratio(folder: Path, repeat: int) -> list[str]:
    """Measure and print load + audit and the aggregation ratio; returns the targets missed."""
    load = measure_load(folder)
    print(f"load + audit: {load['seconds']:.1f} s, peak {load['peak_gib']:.2f} GiB "
          f"({load['input']:,} rows in, {load['quarantined']:,} quarantined; {load['activity_rows_loaded']:,} "
          f"activity rows in the window)", flush=True)

    ratio = measure_ratio(folder, repeat)
    ours, hand = sum(ratio["ours"].values()), sum(ratio["hand"].values())
    pair = sum(ratio["ours"][k] for k in PAIR) / sum(ratio["hand"][k] for k in PAIR)
    for name in HAND_SQL:
        print(f"  {name:<16} ibis {ratio['ours'][name]:6.2f} s   hand-written SQL {ratio['hand'][name]:6.2f} s")
    print(f"aggregation step: {ours:.1f} s (Ibis on DuckDB) against {hand:.1f} s (hand-written DuckDB SQL): "
          f"ratio {ours / hand:.2f} (target <= {RATIO_TARGET}); weekly owner x type + per deal alone: {pair:.2f}",
          flush=True)

    return ["aggregation ratio"] if ours / hand > RATIO_TARGET else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=size_arg, default="large", help="large (10M activities), huge (100M) "
                        "or a number of activities")
    parser.add_argument("--data", default=None, help="where the generated data is kept "
                        "(default benchmarks/.data/<size>)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each aggregation; the fastest counts")
    parser.add_argument("--jobs", type=int, default=1, help="crm-reports run --jobs (default 1)")
    parser.add_argument("--skip-pack", action="store_true", help="measure load + audit and the ratio only")
    parser.add_argument("--pack-only", action="store_true", help="measure the pack only (it loads and audits "
                        "the data itself, as its snapshot: at 100M that saves a second 15-minute load)")
    parser.add_argument("--memory-cap", type=float, default=None, metavar="GIB",
                        help="cap each process of the pack at GIB of address space (RLIMIT_AS), so a "
                             "report that needs more fails instead of exhausting a shared machine")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if not have_psutil("benchmarks/scale.py"):
        return 2

    n = activities_of(args.size)
    folder = Path(args.data) if args.data else ROOT / "benchmarks" / ".data" / str(args.size)
    generated = ensure_data(args.size, folder)
    print(f"data: {folder} ({n:,} activities{f', generated in {generated:.0f} s' if generated else ', cached'})",
          flush=True)

    missed = []
    if not args.pack_only:
        missed += _load_and_ratio(folder, args.repeat)
    if not args.skip_pack:
        with tempfile.TemporaryDirectory(prefix="crm-scale-") as tmp:
            pack = measure_pack(folder, Path(tmp) / "out", args.jobs, args.memory_cap)
        counts = {s: sum(1 for _, st, _, _ in pack["reports"] if st == s) for s in ("ok", "skipped", "failed")}
        print(f"pack: {pack['wall_s']:.0f} s wall (snapshot {pack['timings'].get('snapshot_s', float('nan')):.0f} s), "
              f"peak {pack['peak_tree_gib']:.2f} GiB for the process tree (RSS summed; "
              f"{_gib(pack['peak_pss_gib'])} PSS; largest process {pack['largest_process_gib']:.2f} GiB); "
              f"reports {counts}", flush=True)
        print(f"  the tree at its peak (GiB RSS): {describe_parts(pack['peak_parts'])}")
        for name, status, seconds, error in pack["reports"]:
            print(f"  {name:<22} {status:<8} {seconds:7.1f} s  {error[:100]}")
        if pack["error"]:
            print(f"  crm-reports run: {pack['error']}")
        target = TARGETS.get(n)
        if target:
            ok_time, ok_mem = pack["wall_s"] <= target[0], pack["peak_tree_gib"] <= target[1]
            print(f"target at {n:,} activities: under {target[0] / 60:.0f} min and {target[1]:.0f} GiB: "
                  f"time {'met' if ok_time else 'MISSED'}, memory {'met' if ok_mem else 'MISSED'}")
            missed += [] if ok_time else ["pack time"]
            missed += [] if ok_mem else ["pack memory"]
    return 1 if (args.check and missed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
