import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


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
