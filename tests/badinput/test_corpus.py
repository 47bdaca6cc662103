"""The bad-input corpus: every broken export gives a clean load or one clear error.

Each folder of ``cases/`` is a tiny export (plus the files ``make_cases.py`` writes)
and an ``expected.yaml`` written by hand from the case's few rows:

* ``error:`` (the exact message) or ``error_match:`` (a regular expression for the whole
  message): ``crm-reports audit`` exits 2 with exactly ``crm-reports: error: <message>``
  on one line, and ``open_data`` raises a CrmError with the same message;
* otherwise a clean load: ``kept: {table: n}`` names every table loaded,
  ``quarantined: {table: {check: n}}`` and ``flagged: {table: {check: n}}`` list every
  quarantined and flagged row by check (tables left out have none), and optionally
  ``rows`` (the source rows quarantined per check), ``reasons`` (patterns that some
  quarantine reason of the table matches), ``values`` (a kept column, in order),
  ``notes`` (patterns the load notes match) and ``money_error`` (the one-line error of
  converting the amounts to EUR).

Whatever the case, no output holds a traceback, and input = kept + quarantined for
every table, where the input is the hand count kept + quarantined of expected.yaml.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

import make_cases
from crmlib import cli
from crmlib.audit import CHECKS
from crmlib.data import open_data
from crmlib.errors import CrmError, CurrencyError
from crmlib.money import to_reporting

CASES = sorted(p for p in make_cases.CASES_DIR.iterdir() if p.is_dir())
PREFIX = "crm-reports: error: "
KEYS = {"about", "error", "error_match", "kept", "quarantined", "flagged", "rows", "reasons", "values",
        "notes", "money_error"}


def expected_of(case: Path) -> dict:
    expected = yaml.safe_load((case / make_cases.EXPECTED).read_text(encoding="utf-8"))
    unknown = set(expected) - KEYS
    assert not unknown, f"{case.name}/expected.yaml: unknown key(s) {unknown}"
    assert expected.get("about"), f"{case.name}: say what the case is about"
    assert ("error" in expected or "error_match" in expected) != ("kept" in expected), case.name
    return expected


def plain(value):
    """A kept value as YAML writes it: timestamps as ISO text, missing as None."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def run_audit(source: Path, capsys) -> tuple[int, str, str]:
    code = cli.main(["audit", "--source", str(source)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case, tmp_path, capsys):
    expected = expected_of(case)
    source = make_cases.materialise(case, tmp_path / case.name)
    code, out, err = run_audit(source, capsys)
    assert "Traceback" not in out + err
    if "kept" not in expected:
        assert code == 2, out
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(PREFIX), err
        message = lines[0][len(PREFIX):]
        if "error" in expected:
            assert message == expected["error"]
        else:
            assert re.fullmatch(expected["error_match"], message), message
        assert out == ""
        with pytest.raises(CrmError) as info:
            open_data(source)
        assert str(info.value) == message
        return

    assert (code, err) == (0, ""), err
    data = open_data(source)
    kept, quarantined = expected["kept"], expected.get("quarantined", {})
    flagged = expected.get("flagged", {})
    assert set(quarantined) <= set(kept) and set(flagged) <= set(kept)
    counts = data.counts.set_index("table")
    assert sorted(data.tables) == sorted(kept)
    q, f = data.quarantine, data.findings
    for table, n_kept in kept.items():
        by_check = quarantined.get(table, {})
        n_in = n_kept + sum(by_check.values())  # the rows of the file, counted by hand
        assert len(data.tables[table]) == counts.loc[table, "kept"] == n_kept, table
        assert counts.loc[table, "quarantined"] == sum(by_check.values()), table
        row = counts.loc[table]
        assert row["input"] == n_in == row["kept"] + row["quarantined"], table  # input = kept + quarantined
        assert q.loc[q["table"] == table, "check"].value_counts().to_dict() == by_check, table
        assert f.loc[f["table"] == table, "check"].value_counts().to_dict() == flagged.get(table, {}), table
    for table, rows_by_check in expected.get("rows", {}).items():
        for check, rows in rows_by_check.items():
            got = q.loc[(q["table"] == table) & (q["check"] == check), "row"]
            assert sorted(got) == rows, (table, check)
    for table, patterns in expected.get("reasons", {}).items():
        reasons = list(q.loc[q["table"] == table, "reason"])
        for pattern in patterns:
            assert any(re.search(pattern, r) for r in reasons), (pattern, reasons)
    for table, columns in expected.get("values", {}).items():
        for column, values in columns.items():
            got = [plain(v) for v in data.tables[table][column]]
            assert got == pytest.approx(values) if all(isinstance(v, float) for v in values) \
                else got == values, (table, column, got)
    for pattern in expected.get("notes", []):
        assert any(re.search(pattern, n) for n in data.meta["notes"]), (pattern, data.meta["notes"])
    if "money_error" in expected:
        with pytest.raises(CurrencyError) as info:
            to_reporting(data.tables["deals"], "amount", currency="EUR",
                         fx_rates=data.tables.get("fx_rates"), date_col="created_at")
        assert str(info.value) == expected["money_error"]

    total_in = sum(counts.loc[t, "input"] for t in kept)
    total_q = sum(counts.loc[t, "quarantined"] for t in kept)
    assert f"{total_q:,} of {total_in:,} rows quarantined" in out
    assert "counts add up (input = kept + quarantined)" in out


def test_the_corpus_has_at_least_40_cases_and_exercises_every_check():
    assert len(CASES) >= 40
    seen = set()
    for case in CASES:
        expected = expected_of(case)
        for part in ("quarantined", "flagged"):
            for checks in expected.get(part, {}).values():
                seen |= set(checks)
    assert set(CHECKS) - seen == set(), "add a case for each check the audit knows"


def test_a_generated_file_belongs_to_a_case_folder():
    assert set(make_cases.GENERATED) <= {c.name for c in CASES}


def test_the_generator_writes_the_whole_corpus(tmp_path, capsys):
    assert make_cases.main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [c.name for c in CASES]
    assert (tmp_path / "24_utf16_spreadsheet_export" / "deals.csv").read_bytes()[:2] == b"\xff\xfe"
    assert not list(tmp_path.rglob(make_cases.EXPECTED))
