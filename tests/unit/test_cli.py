"""crmlib.cli: parses, calls crmlib, sets the exit code (runner and data faked here)."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from crmlib import cli, runner
from crmlib.errors import CrmConfigError, CrmDataError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "notebooks"


def fake_result(tmp_path, failed=0):
    manifest = {"counts": {"ok": 2, "skipped": 1, "failed": failed},
                "timings": {"total_s": 1.5}, "reports": []}
    pack = tmp_path / "2024-06-30"
    return runner.RunResult(manifest=manifest, pack_dir=pack, index_path=pack / "index.html")


@pytest.fixture
def calls(monkeypatch, tmp_path):
    seen = {}

    def fake_run_pack(**kwargs):
        seen.update(kwargs)
        result = runner.ReportResult(report="01_x", number="01", title="X", status="ok", duration_s=0.5)
        kwargs["on_start"]({"as_of": "2024-06-30", "source": "s", "reports": ["01_x"], "jobs": 1,
                            "target": str(tmp_path)})
        kwargs["on_report_done"](result, 1, 1)
        return fake_result(tmp_path, failed=seen.get("_failed", 0))

    monkeypatch.setattr(runner, "run_pack", fake_run_pack)
    return seen


def test_run_passes_every_option_to_the_runner(calls, capsys, tmp_path):
    code = cli.main(["run", "--only", "02,03", "--only", "pipeline", "--as-of", "2024-06-30",
                     "--source", "data/sample", "--out", "packs", "--jobs", "2", "--config", "c.yaml",
                     "--with-code", "--timeout", "30", "--notebooks", "nbs"])
    assert code == 0
    assert calls["only"] == ["02,03", "pipeline"]
    assert (calls["as_of"], calls["source"], calls["out"], calls["jobs"], calls["config"]) == \
        ("2024-06-30", "data/sample", "packs", 2, "c.yaml")
    assert calls["with_code"] is True and calls["timeout"] == 30.0 and calls["notebooks_dir"] == "nbs"
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1] == str(tmp_path / "2024-06-30" / "index.html")
    assert "01_x" in err and "2 ok, 1 skipped, 0 failed" in err


def test_run_defaults(calls):
    assert cli.main(["run"]) == 0
    assert calls["only"] is None and calls["as_of"] is None and calls["source"] is None
    assert calls["out"] == "reports_out" and calls["jobs"] == 1 and calls["with_code"] is False
    assert calls["timeout"] == runner.DEFAULT_TIMEOUT_S


def test_only_takes_space_separated_names(calls):
    cli.main(["run", "--only", "01", "02_pipeline"])
    assert calls["only"] == ["01", "02_pipeline"]


def test_a_failed_report_gives_exit_1(calls):
    calls["_failed"] = 1
    assert cli.main(["run"]) == 1


def test_a_crm_error_is_one_line_and_exit_2(monkeypatch, capsys):
    def bad(**kwargs):
        raise CrmConfigError("report 02_pipeline does not declare parameter 'x';\n it declares: a, b")

    monkeypatch.setattr(runner, "run_pack", bad)
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "02_pipeline" in err and "Traceback" not in err


def test_interruptions_have_their_own_exit_codes(monkeypatch, capsys):
    def interrupted(**kwargs):
        raise KeyboardInterrupt

    def terminated(**kwargs):
        raise runner.RunInterrupted("terminated by SIGTERM")

    monkeypatch.setattr(runner, "run_pack", interrupted)
    assert cli.main(["run"]) == 130
    monkeypatch.setattr(runner, "run_pack", terminated)
    assert cli.main(["run"]) == 143
    assert "no pack was written" in capsys.readouterr().err


def test_a_usage_mistake_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--jobs", "many"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--jobs" in err


def test_list_prints_number_name_and_title(capsys):
    assert cli.main(["list", "--notebooks", str(FIXTURES)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split(None, 2) == ["01", "01_headline", "Headline fixture"]
    assert [line.split()[1] for line in lines] == ["01_headline", "02_raises", "03_sleeps",
                                                   "04_dies", "05_skipped"]


def test_sample_calls_write_sample(monkeypatch, capsys, tmp_path):
    seen = {}
    module = types.ModuleType("crmlib.sample")

    def write_sample(out_dir, **kwargs):
        seen.update(kwargs, out_dir=out_dir)
        return Path(out_dir)

    module.write_sample = write_sample
    monkeypatch.setitem(sys.modules, "crmlib.sample", module)
    assert cli.main(["sample", "--size", "small", "--seed", "7", "--out", str(tmp_path)]) == 0
    assert seen == {"size": "small", "seed": 7, "out_dir": str(tmp_path)}
    assert cli.main(["sample", "--size", "5000", "--out", str(tmp_path)]) == 0
    assert seen["size"] == 5000
    with pytest.raises(SystemExit):
        cli.main(["sample", "--size", "gigantic"])


def test_audit_prints_counts_and_quarantine_reasons(monkeypatch, capsys, tmp_path):
    import crmlib.data as data_module
    counts = pd.DataFrame({"table": ["deals", "users"], "input": [10, 3], "kept": [8, 3],
                           "quarantined": [2, 0], "score": [80.0, 100.0]})
    quarantine = pd.DataFrame({"table": ["deals", "deals"], "source": ["deals.csv"] * 2, "row": [3, 7],
                               "key": ["D3", "D7"], "column": ["amount", "amount"],
                               "check": ["negative_amount"] * 2,
                               "reason": ["negative amount", "negative amount"]})
    findings = quarantine.iloc[:0]
    seen = {}

    def open_data(source, **kwargs):
        seen["source"] = source
        return types.SimpleNamespace(counts=counts, quarantine=quarantine, findings=findings,
                                     fingerprint="abc123")

    monkeypatch.setattr(data_module, "open_data", open_data)
    assert cli.main(["audit", "--source", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert seen["source"] == str(tmp_path.resolve())
    assert "deals" in out and "negative_amount" in out and "abc123" in out
    assert "2 of 13 rows quarantined" in out and "counts add up" in out


def test_audit_error_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    import crmlib.data as data_module

    def open_data(source, **kwargs):
        raise CrmDataError("deals.csv: no column amount")

    monkeypatch.setattr(data_module, "open_data", open_data)
    assert cli.main(["audit", "--source", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "crm-reports: error: deals.csv: no column amount"


def test_audit_refuses_a_password_url(capsys):
    assert cli.main(["audit", "--source", "mysql://root:hunter22@localhost/crm"]) == 2
    err = capsys.readouterr().err
    assert "hunter22" not in err and "env:CRM_DB_URL" in err


def test_python_dash_m_crmlib_is_the_command():
    done = subprocess.run([sys.executable, "-m", "crmlib", "list", "--notebooks", str(FIXTURES)],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          timeout=60)
    assert done.returncode == 0 and "01_headline" in done.stdout
