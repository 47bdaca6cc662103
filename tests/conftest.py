import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def sample_pack(tmp_path_factory):
    """The whole pack on the bundled sample (with the code views), built once per session
    and shared by tests/test_pack.py and tests/browser: tests read it, never change it."""
    from crmlib import runner

    return runner.run_pack(source=SAMPLE, out=tmp_path_factory.mktemp("out"), jobs=2, with_code=True)


@pytest.fixture
def write_export(tmp_path):
    """Write files into a fresh export folder: write_export({"deals.csv": "..."}) -> folder."""

    def _write(files: dict, folder: str = "export") -> Path:
        out = tmp_path / folder
        out.mkdir(exist_ok=True)
        for name, content in files.items():
            path = out / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8", newline="")
        return out

    return _write


@pytest.fixture(params=["frame", "scan"])
def table_as(request, tmp_path):
    """A heavy table (``stage_history``, ``activities``) as the metrics can be handed it: the
    frame itself, or a scan of it written to Parquet (``CrmData.scan`` of a large snapshot:
    DuckDB reduces the file), so each hand-computed test checks both paths."""
    from itertools import count

    from crmlib.pushdown.scan import ParquetScan

    files = count()

    def make(frame, name="stage_history"):
        if request.param == "frame" or frame is None:
            return frame
        path = tmp_path / f"{name}_{next(files)}.parquet"
        frame.to_parquet(path, index=False)
        return ParquetScan(name, path)

    return make


@pytest.fixture
def history_as(table_as):
    """:func:`table_as` for the stage history tests."""
    return table_as
