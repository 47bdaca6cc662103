"""The stage norms of a large stage history: DuckDB over the Parquet file (the scan reports
02-04 use on a large snapshot) against pandas over the table read whole.

    python benchmarks/history_scan.py                 # the 10M-activity sample's history x 10
    python benchmarks/history_scan.py --times 1       # as it is (4.5M rows)

The history of the ``large`` sample (:mod:`crmlib.sample_large`, generated into ``--data``
once, like ``benchmarks/scale.py``) is written ``--times`` times with distinct deal ids
(x10: 45M rows, the size of the history at 100M activities) to a scratch Parquet file.
Each side runs in its own child process, so its peak resident memory is its own
(``getrusage`` of the child): ``cycle.stage_time_norms`` on a ``ParquetScan`` of the file,
and the same on the file read with pandas (read time included). Both must give the same
norms (within 1e-9 relative: DuckDB sums and interpolates in its own order).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
import pandas as pd
from crmlib.metrics import cycle
from crmlib.pushdown.scan import ParquetScan
side, path, as_of = sys.argv[1], sys.argv[2], pd.Timestamp(sys.argv[3])
t0 = time.perf_counter()
history = ParquetScan("stage_history", path) if side == "scan" else pd.read_parquet(path)
norms = cycle.stage_time_norms(history, as_of=as_of)
seconds = time.perf_counter() - t0
norms.to_parquet(sys.argv[4])
print(json.dumps({"seconds": seconds, "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


MULTIPLY = r"""
import sys, duckdb
source, times, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]
con = duckdb.connect()
con.execute(f"COPY (SELECT k::VARCHAR || '-' || deal_id AS deal_id, stage, entered_at "
            f"FROM read_parquet('{source}'), range({times}) r(k) ORDER BY k) "
            f"TO '{target}' (FORMAT parquet, ROW_GROUP_SIZE 500000)")
print(con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0])
"""


def multiplied(source: Path, times: int, target: Path) -> int:
    """The history written ``times`` times (deal ids prefixed by the copy's number); its rows.
    In a child process: Linux carries a process's peak memory over into the children it
    starts, so this process stays small for the measured ones."""
    done = subprocess.run([sys.executable, "-c", MULTIPLY, str(source), str(times), str(target)],
                          capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def run_side(side: str, path: Path, as_of: str, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, side, str(path), as_of, str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{side} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="the large sample's folder (default benchmarks/.data/large)")
    parser.add_argument("--times", type=int, default=10, help="copies of the history (default 10: 45M rows)")
    args = parser.parse_args(argv)

    import pandas as pd
    import yaml

    from benchmarks.scale import ensure_data

    folder = Path(args.data) if args.data else ROOT / "benchmarks" / ".data" / "large"
    ensure_data("large", folder)
    settings = yaml.safe_load((folder / "export.yaml").read_text(encoding="utf-8")) or {}
    as_of = pd.Timestamp(str(settings.get("as_of", "2026-09-27")), tz="UTC") + pd.Timedelta(days=1)
    with tempfile.TemporaryDirectory(prefix="history-scan-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        rows = multiplied(folder / "stage_history.parquet", args.times, tmp / "stage_history.parquet")
        print(f"history: {rows:,} rows ({args.times} x the large sample's), written in "
              f"{time.perf_counter() - t0:.1f} s")
        got = {side: run_side(side, tmp / "stage_history.parquet", as_of.isoformat(), tmp / f"{side}.parquet")
               for side in ("scan", "pandas")}
        pd.testing.assert_frame_equal(pd.read_parquet(tmp / "scan.parquet"), pd.read_parquet(tmp / "pandas.parquet"),
                                      rtol=1e-9)
    for side, r in got.items():
        print(f"  {side:7s} stage norms {r['seconds']:6.1f} s   peak {r['peak_gib']:.2f} GiB (the whole process)")
    s, p = got["scan"], got["pandas"]
    print(f"scan against pandas: {s['seconds'] / p['seconds']:.2f}x the time, "
          f"{s['peak_gib'] / p['peak_gib']:.2f}x the peak memory; the same norms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
