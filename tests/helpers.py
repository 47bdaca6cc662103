"""Paths shared by the tests (importable from every test folder)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
NOTEBOOKS = ROOT / "notebooks"


def page_links(path: Path) -> list[str]:
    """The local hrefs of the <a> elements of an HTML page (no #fragments, web or mail links)."""
    from html.parser import HTMLParser

    hrefs: list[str] = []

    class _Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            href = dict(attrs).get("href")
            if tag == "a" and href and not href.startswith(("#", "http", "mailto:")):
                hrefs.append(href)

    _Links().feed(Path(path).read_text(encoding="utf-8"))
    return hrefs


FIXTURE_NOTEBOOKS = ROOT / "tests" / "fixtures" / "notebooks"

# crm-reports with its default snapshot builder faked: the runner's own signal handling
# is what a test of an interrupted run exercises, not reading an export
_FAKE_SNAPSHOT_CLI = """
import sys
from crmlib import cli, runner

def fake(source, snapshot_dir, **kwargs):
    return {"fingerprint": "fp-test", "meta": {}}

runner.build_snapshot = fake
sys.exit(cli.main(sys.argv[1:]))
"""


def run_until_a_kernel_sleeps(out: Path, cwd: Path, as_of: str, *, wait_s: float = 60):
    """Start ``crm-reports run`` of the sleeping fixture report (03) into ``out`` and return
    ``(process, kernels)`` once its kernel runs (``kernels`` empty if none came within
    ``wait_s``, or the process ended first). The caller stops the process."""
    import os
    import subprocess
    import sys
    import time

    import psutil

    process = subprocess.Popen(
        [sys.executable, "-c", _FAKE_SNAPSHOT_CLI, "run", "--notebooks", str(FIXTURE_NOTEBOOKS), "--only", "03",
         "--source", str(ROOT), "--as-of", as_of, "--out", str(out), "--timeout", "60"],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=cwd)
    deadline, kernels = time.monotonic() + wait_s, []
    while time.monotonic() < deadline and process.poll() is None:
        children = psutil.Process(process.pid).children(recursive=True)
        kernels = [c for c in children if "ipykernel_launcher" in " ".join(c.cmdline())]
        if kernels:
            break
        time.sleep(0.2)
    return process, kernels


def as_text(frame):
    """``frame`` with its categorical columns as text: a large snapshot reads repetitive text
    columns as categories (crmlib.data.CATEGORY_SHARE), and comparisons of its frames with
    text frames (or a scan's) compare the values the categories stand for."""
    import pandas as pd

    cats = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    return frame.astype({c: "str" for c in cats}) if cats else frame
