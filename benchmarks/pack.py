"""How long the weekly pack takes, and how close it is to the floor.

Runs ``crm-reports run`` on data/sample with ``--jobs 1`` and ``--jobs 2`` and measures
the wall time and the peak memory of the runner with all its children (workers and
kernels: the resident set of the whole process tree, sampled every 50 ms). The floor
is measured in the same run, executed the same way: as many trivial notebooks as the
pack has reports, each with the same parameters cell, that only import the libraries
(pandas, matplotlib, seaborn, statsmodels, crmlib). The difference is what the reports
themselves cost. Target: ``--jobs 2`` within 1.3x of the floor.

    python benchmarks/pack.py [--source data/sample] [--only 01,02] [--repeat 2] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _tree import have_psutil, run_tree  # noqa: E402  (benchmarks/_tree.py, beside this script)
from crmlib import runner  # noqa: E402

TARGET = 1.3
FLOOR_IMPORTS = ("import pandas\nimport matplotlib.pyplot\nimport seaborn\n"
                 "import statsmodels.api\nimport crmlib")


def floor_notebooks(reports, folder: Path) -> None:
    """One trivial notebook per report: its title, its parameters cell, the imports."""
    import nbformat

    for report in reports:
        nb = nbformat.read(report.path, as_version=4)
        params = next(c for c in nb.cells if c.cell_type == "code"
                      and "parameters" in c.metadata.get("tags", []))
        floor = nbformat.v4.new_notebook(metadata=nb.metadata)
        floor.cells = [nbformat.v4.new_markdown_cell(f"# {report.title} (floor)"),
                       nbformat.v4.new_code_cell(params.source, metadata={"tags": ["parameters"]}),
                       nbformat.v4.new_code_cell(FLOOR_IMPORTS)]
        nbformat.write(floor, folder / report.path.name)


def measure(args: list[str], out: Path) -> dict:
    """Run the command; wall time and peak RSS of its whole process tree."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = run_tree([sys.executable, "-m", "crmlib", "run", *args, "--out", str(out)], env=env)
    manifest = None
    lines = run["stdout"].strip().splitlines()
    if lines and Path(lines[-1]).name == "index.html":
        manifest_path = Path(lines[-1]).parent / "manifest.json"
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return {"wall_s": run["wall_s"], "peak_mb": run["peak_tree_gib"] * 1024, "code": run["code"],
            "stderr": run["stderr"].strip(), "manifest": manifest}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=str(ROOT / "data" / "sample"))
    parser.add_argument("--notebooks", default=str(runner.NOTEBOOKS_DIR))
    parser.add_argument("--only", default=None, help="reports to include (as crm-reports run --only)")
    parser.add_argument("--timeout", default="600")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the fastest counts")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)

    if not have_psutil("benchmarks/pack.py"):
        return 2
    try:
        reports = runner.select_reports(runner.list_reports(args.notebooks), args.only)
    except runner.CrmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not reports:
        print(f"error: no report notebooks in {args.notebooks}", file=sys.stderr)
        return 2

    common = ["--source", args.source, "--timeout", args.timeout]
    results: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp:
        tmp = Path(tmp)
        floor_dir = tmp / "floor"
        floor_dir.mkdir()
        floor_notebooks(reports, floor_dir)
        names = ",".join(r.name for r in reports)
        cases = [("floor", 1, floor_dir), ("pack", 1, Path(args.notebooks)),
                 ("floor", 2, floor_dir), ("pack", 2, Path(args.notebooks))]
        for repeat in range(args.repeat):
            for kind, jobs, folder in cases:
                out = tmp / f"out-{kind}-{jobs}-{repeat}"
                run = measure([*common, "--notebooks", str(folder), "--only", names,
                               "--jobs", str(jobs)], out)
                if run["code"] == 2:
                    print(f"{kind} --jobs {jobs}: exit 2: {run['stderr'].splitlines()[-1:]}",
                          file=sys.stderr)
                    return 2
                best = results.get((kind, jobs))
                if best is None or run["wall_s"] < best["wall_s"]:
                    results[(kind, jobs)] = run

    print(f"{len(reports)} reports on {args.source} (python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs)")
    print(f"{'case':<16}{'wall s':>9}{'peak MB':>10}{'exit':>6}{'x floor':>9}  reports")
    for kind, jobs, _ in cases:
        run = results[(kind, jobs)]
        ratio = run["wall_s"] / results[("floor", jobs)]["wall_s"]
        counts = (run["manifest"] or {}).get("counts", {})
        summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        print(f"{kind + ' --jobs ' + str(jobs):<16}{run['wall_s']:>9.1f}{run['peak_mb']:>10.0f}"
              f"{run['code']:>6}{ratio:>8.2f}x  {summary}")
    ratio = results[("pack", 2)]["wall_s"] / results[("floor", 2)]["wall_s"]
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"target: --jobs 2 within {TARGET}x of the floor: {ratio:.2f}x ({verdict})")
    return 1 if args.check and ratio > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
