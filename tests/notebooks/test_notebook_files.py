"""The committed notebooks: stripped, parameterised, thin. (nbval executes them; see pyproject.)"""

import json

import papermill as pm
import pytest

from helpers import ROOT
from crmlib.report import COMMON_PARAMETERS

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_report_notebooks():
    names = [p.stem for p in NOTEBOOKS]
    assert {"00_start_here", "01_data_audit", "02_pipeline"} <= set(names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_cell_is_the_title_and_first_code_cell_the_parameters(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["cells"][0]["cell_type"] == "markdown"
    assert "".join(nb["cells"][0]["source"]).startswith(f"# {path.stem[:2]} ")
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_report_declares_the_common_parameters_with_a_comment(path):
    declared = pm.inspect_notebook(str(path))
    assert set(COMMON_PARAMETERS) <= set(declared)
    assert all(p["help"] for p in declared.values()), "every parameter has a comment"
    nb = json.loads(path.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    assigned = [ln.split("=")[0].strip() for ln in "".join(cell["source"]).splitlines()
                if ln.strip() and not ln.startswith((" ", "#"))]
    # papermill skips a parameter whose comment holds "=": every assignment must be seen
    assert sorted(assigned) == sorted(declared)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_hold_no_function_or_class_definitions(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            src = "".join(cell["source"])
            assert "def " not in src and "class " not in src and "lambda" not in src
