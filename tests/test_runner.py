"""The runner end to end on small fixture notebooks (tests/fixtures/notebooks).

One run of every fixture (ok, raises, times out, kills its kernel, skipped) is shared by
most tests; the others run one report at a time. The data snapshot is faked
(``prepare_snapshot``) so these tests do not depend on crmlib.data; the real pack on
data/sample is checked by the last test when the notebooks and the sample exist.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from crmlib import runner
from crmlib.errors import CrmConfigError, CrmDataError
from crmlib.htmlcheck import audit_html
from helpers import page_links, run_until_a_kernel_sleeps

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "notebooks"
AS_OF = "2024-06-30"
SECRET = "s3cr3t-pa55"


def fake_snapshot(source, snapshot_dir, *, timezone, mapping, mask_pii, as_of):
    """Stands in for open_data + save: leaves a marker the fixture notebook reads."""
    Path(snapshot_dir, "marker.txt").write_text("fp-test", encoding="utf-8")
    return {"fingerprint": "fp-test", "meta": {"as_of": None, "currency": "EUR",
                                                "extracted_at": "2024-07-01T00:00:00+00:00"}}


def run(out, **kwargs):
    options = dict(source=str(ROOT), out=out, as_of=AS_OF, notebooks_dir=FIXTURES,
                   prepare_snapshot=fake_snapshot, timeout=30)
    options.update(kwargs)
    return runner.run_pack(**options)


def cli(*args, env=None, timeout=120):
    environment = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "crmlib", *args], capture_output=True, text=True,
                          env=environment, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("packs")
    done = []
    result = run(out, jobs=3, timeout=4, with_code=True,
                 on_report_done=lambda r, n, total: done.append((r.report, n, total)))
    return result, out, done


def report(result, name):
    return next(r for r in result.manifest["reports"] if r["report"] == name)


# ---------------------------------------------------------------- the shared run

def test_a_failing_report_gives_exit_1_while_the_others_complete(full_run):
    result, _, done = full_run
    statuses = {r["report"]: r["status"] for r in result.manifest["reports"]}
    assert statuses == {"01_headline": "ok", "02_raises": "failed", "03_sleeps": "failed",
                        "04_dies": "failed", "05_skipped": "skipped"}
    assert result.exit_code == 1
    assert result.manifest["counts"] == {"ok": 1, "skipped": 1, "failed": 3}
    assert sorted(name for name, _, _ in done) == sorted(statuses)
    assert [n for _, n, _ in done] == [1, 2, 3, 4, 5]


def test_errors_are_one_line_and_say_what_happened(full_run):
    result, _, _ = full_run
    raised = report(result, "02_raises")["error"]
    assert raised.startswith("ValueError: boom") and "\n" not in raised
    assert "timeout" in report(result, "03_sleeps")["error"]
    assert "kernel died" in report(result, "04_dies")["error"]
    assert report(result, "01_headline")["error"] is None


def test_a_report_that_raises_report_skipped_is_skipped_with_its_reason(full_run):
    result, _, _ = full_run
    skipped = report(result, "05_skipped")
    assert skipped["status"] == "skipped" and skipped["error"] is None
    assert skipped["reason"] == "This export has no activities table, so there is nothing to report."


def test_manifest_has_parameters_fingerprint_versions_and_timings(full_run):
    result, out, _ = full_run
    manifest = json.loads((out / AS_OF / "manifest.json").read_text(encoding="utf-8"))
    assert manifest == json.loads(json.dumps(result.manifest))
    assert manifest["as_of"] == AS_OF
    assert manifest["data"]["fingerprint"] == "fp-test"
    assert manifest["parameters"] == {"source": str(ROOT), "as_of": AS_OF}
    assert {"python", "pandas", "numpy", "papermill", "nbconvert", "statsmodels",
            "matplotlib", "crmlib"} <= set(manifest["versions"])
    assert manifest["timings"]["total_s"] > 0
    for entry in manifest["reports"]:
        assert entry["duration_s"] > 0 and entry["timings"]["execute_s"] > 0
        params = entry["parameters"]
        assert params["as_of"] == AS_OF and params["source"] == str(ROOT)
        assert Path(params["snapshot"]).is_absolute() and Path(params["results_dir"]).is_absolute()


def test_headlines_and_alerts_come_from_the_records(full_run):
    result, out, _ = full_run
    entry = report(result, "01_headline")
    assert entry["headlines"][0]["key"] == "open_deals" and entry["headlines"][0]["value"] == 42
    assert entry["alerts"][0]["severity"] == "critical"
    assert (out / AS_OF / "_run" / "records" / "01_headline.json").exists()
    assert not (out / AS_OF / "_run" / "snapshot").exists()


def test_every_page_exists_and_every_index_link_resolves(full_run):
    result, out, _ = full_run
    pack = out / AS_OF
    for entry in result.manifest["reports"]:
        for key in ("html", "code_html", "notebook"):
            assert (pack / entry[key]).is_file(), (entry["report"], key)
    hrefs = page_links(pack / "index.html")
    assert hrefs
    for href in hrefs:
        target = unquote(urlsplit(href).path)
        assert (pack / target).is_file(), href
    for entry in result.manifest["reports"]:
        assert entry["html"] in hrefs and entry["code_html"] in hrefs


def test_index_escapes_every_recorded_value(full_run):
    _, out, _ = full_run
    page = (out / AS_OF / "index.html").read_text(encoding="utf-8")
    assert "Deal &lt;script&gt;alert(1)&lt;/script&gt; stuck" in page
    assert "<script>alert(1)" not in page and "<b>now</b>" not in page
    assert "boom: &lt;b&gt;not bold&lt;/b&gt;" in page
    assert "<script" not in page  # no script at all, let alone a remote one


def test_failed_reports_keep_their_executed_notebook_and_show_the_error(full_run):
    _, out, _ = full_run
    pack = out / AS_OF
    raised = json.loads((pack / "02_raises.ipynb").read_text(encoding="utf-8"))
    errors = [o for c in raised["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors and errors[0]["ename"] == "ValueError"
    assert "boom" in (pack / "02_raises.html").read_text(encoding="utf-8")
    for name, words in (("03_sleeps", "timeout"), ("04_dies", "kernel died")):
        page = (pack / f"{name}.html").read_text(encoding="utf-8")
        assert "This report failed" in page and words in page


def test_parameters_arrive_as_native_values_and_the_snapshot_is_shared(full_run):
    _, out, _ = full_run
    page = (out / AS_OF / "01_headline.html").read_text(encoding="utf-8")
    assert "snapshot marker: fp-test" in page
    assert "account_id=&#x27;00123&#x27; (str)" in page or "account_id='00123' (str)" in page


def test_manager_view_hides_code_and_no_page_loads_remote_scripts(full_run):
    result, out, _ = full_run
    pack = out / AS_OF
    manager = (pack / "01_headline.html").read_text(encoding="utf-8")
    analyst = (pack / "01_headline.code.html").read_text(encoding="utf-8")
    assert "Recorder" not in manager.split("<main>", 1)[1]
    assert "Recorder" in analyst.split("<main>", 1)[1]
    assert "jp-InputPrompt" not in manager.split("<main>", 1)[1]
    for page in pack.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "require.js" not in text and "cdnjs" not in text and "mathjax" not in text.lower()
        assert audit_html(page) == [], page.name


def test_the_run_leaves_only_the_pack(full_run):
    _, out, _ = full_run
    assert [p.name for p in out.iterdir()] == [AS_OF]


# ---------------------------------------------------------------- bad input: exit 2

def test_an_unknown_parameter_exits_2_naming_report_parameter_and_declared_names(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("params:\n  lookback_period: 4\n", encoding="utf-8")
    done = cli("run", "--notebooks", str(FIXTURES), "--only", "01", "--source", str(ROOT),
               "--as-of", AS_OF, "--config", str(config), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "01_headline" in lines[0] and "'lookback_period'" in lines[0]
    assert "did you mean 'lookback_periods'" in lines[0] and "account_id" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_per_report_override_must_be_declared_by_that_report(tmp_path):
    config = {"reports": {"03": {"params": {"sleep_s": 1}}, "02_raises": {"params": {"sleep_s": 1}}}}
    with pytest.raises(CrmConfigError, match=r"02_raises does not declare parameter 'sleep_s'"):
        run(tmp_path, config=config, only="02 03")
    assert not any(tmp_path.iterdir())


def test_a_number_for_a_text_parameter_is_refused(tmp_path):
    config = {"reports": {"01": {"params": {"account_id": 123}}}}
    with pytest.raises(CrmConfigError, match="quote it"):
        run(tmp_path, config=config, only="01")


def test_unknown_report_in_only_suggests_the_closest(tmp_path):
    with pytest.raises(CrmConfigError, match="did you mean 02_raises"):
        run(tmp_path, only="02_raise")


def test_a_snapshot_error_exits_2_and_leaves_nothing(tmp_path):
    def broken(source, snapshot_dir, **kwargs):
        raise CrmDataError("deals.csv: column amount is missing; add it or map it")

    with pytest.raises(CrmDataError, match="column amount is missing"):
        run(tmp_path, prepare_snapshot=broken, only="01")
    assert list(tmp_path.iterdir()) == []


def test_bad_as_of_and_bad_config_are_one_line_errors(tmp_path):
    with pytest.raises(CrmConfigError, match="YYYY-MM-DD"):
        run(tmp_path, as_of="30/06/2024")
    with pytest.raises(CrmConfigError, match="did you mean 'params'"):
        run(tmp_path, config={"parms": {}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("params: [unclosed\n", encoding="utf-8")
    with pytest.raises(CrmConfigError, match="not valid YAML") as info:
        run(tmp_path, config=bad)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- credentials

def test_a_url_with_a_password_is_refused_and_never_printed(tmp_path):
    url = f"postgresql://crm:{SECRET}@db.example.com/crm"
    done = cli("run", "--source", url, "--notebooks", str(FIXTURES), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "env:CRM_DB_URL" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert SECRET not in done.stdout + done.stderr
    config = tmp_path / "config.yaml"
    config.write_text(f"reports:\n  '01':\n    params:\n      source_url: {url}\n", encoding="utf-8")
    done = cli("run", "--config", str(config), "--notebooks", str(FIXTURES), "--source", str(ROOT),
               "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and SECRET not in done.stdout + done.stderr
    assert "environment" in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_env_source_keeps_the_url_out_of_every_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_DB_URL", f"postgresql://crm:{SECRET}@db.example.com/crm")
    seen = {}

    def from_env(source, snapshot_dir, **kwargs):
        seen["source"] = source
        return fake_snapshot(source, snapshot_dir, **kwargs)

    result = run(tmp_path, source="env:CRM_DB_URL", prepare_snapshot=from_env, only="01")
    assert result.exit_code == 0
    assert seen["source"] == "env:CRM_DB_URL"  # crmlib.load reads the variable itself
    assert result.manifest["source"] == "env:CRM_DB_URL"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(encoding="utf-8", errors="replace"), path

    def leaky(source, snapshot_dir, **kwargs):
        raise CrmDataError(f"cannot connect to {os.environ['CRM_DB_URL']}")

    with pytest.raises(CrmDataError) as info:
        run(tmp_path / "again", source="env:CRM_DB_URL", prepare_snapshot=leaky, only="01")
    assert SECRET not in str(info.value) and "***" in str(info.value)


def test_env_source_without_the_variable_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.delenv("CRM_NO_SUCH_URL", raising=False)
    with pytest.raises(CrmConfigError, match="CRM_NO_SUCH_URL is not set"):
        run(tmp_path, source="env:CRM_NO_SUCH_URL")


# ---------------------------------------------------------------- atomic output

def test_rerunning_the_same_as_of_replaces_the_pack_cleanly(tmp_path):
    first = run(tmp_path, only="01")
    (first.pack_dir / "left-over.txt").write_text("from the first run", encoding="utf-8")
    second = run(tmp_path, only="01, 05")
    assert second.pack_dir == first.pack_dir
    assert not (second.pack_dir / "left-over.txt").exists()
    assert [r["report"] for r in second.manifest["reports"]] == ["01_headline", "05_skipped"]
    assert json.loads((second.pack_dir / "manifest.json").read_text())["started_at"] == \
        second.manifest["started_at"]
    assert [p.name for p in tmp_path.iterdir()] == [AS_OF]


def test_an_interrupted_run_leaves_the_old_pack_and_no_debris(tmp_path):
    (tmp_path / AS_OF).mkdir()
    (tmp_path / AS_OF / "index.html").write_text("old pack", encoding="utf-8")

    def interrupted(source, snapshot_dir, **kwargs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, prepare_snapshot=interrupted)
    assert [p.name for p in tmp_path.iterdir()] == [AS_OF]
    assert (tmp_path / AS_OF / "index.html").read_text(encoding="utf-8") == "old pack"


def test_sigterm_stops_the_kernels_and_removes_the_staging_folder(tmp_path):
    import psutil
    out = tmp_path / "out"
    process, kernels = run_until_a_kernel_sleeps(out, tmp_path, AS_OF, wait_s=40)
    try:
        assert process.poll() is None, process.communicate()
        assert kernels, "no kernel started"
        time.sleep(0.5)
        tree = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, stderr
    assert "no pack was written" in stderr and "Traceback" not in stderr
    gone, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive, alive
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------- as_of

@pytest.mark.parametrize("today, expected", [
    (dt.date(2024, 7, 3), dt.date(2024, 6, 30)),   # Wednesday
    (dt.date(2024, 7, 1), dt.date(2024, 6, 30)),   # Monday: yesterday's week is complete
    (dt.date(2024, 6, 30), dt.date(2024, 6, 23)),  # Sunday: this week is not over yet
])
def test_default_as_of_is_the_sunday_ending_the_last_complete_iso_week(today, expected):
    assert runner.last_complete_week_end(today) == expected


def test_as_of_recorded_by_the_export_wins_over_today(monkeypatch):
    import crmlib.data as data
    monkeypatch.setattr(data, "export_settings", lambda source: {"as_of": dt.date(2024, 3, 31)})
    assert runner.resolve_as_of(None, "somewhere", today=dt.date(2030, 1, 1)) == "2024-03-31"
    monkeypatch.setattr(data, "export_settings", lambda source: {"as_of": None})
    assert runner.resolve_as_of(None, "somewhere", today=dt.date(2024, 7, 3)) == "2024-06-30"
    assert runner.resolve_as_of("2024-05-05", "somewhere") == "2024-05-05"


def test_debris_of_a_killed_run_is_cleaned_and_an_orphaned_old_pack_restored(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".{AS_OF}.tmp-{dead.pid}-abc123").mkdir()
    (tmp_path / f".2024-06-23.old-{dead.pid}-def456").mkdir()
    (tmp_path / f".2024-06-23.old-{dead.pid}-def456" / "index.html").write_text("kept")
    (tmp_path / f".2024-06-16.tmp-{os.getpid()}-abc123").mkdir()  # a live run: left alone
    runner._clean_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".2024-06-16.tmp-{os.getpid()}-abc123",
                                                          "2024-06-23"]
    assert (tmp_path / "2024-06-23" / "index.html").read_text() == "kept"


def test_a_parameter_whose_comment_holds_an_equals_sign_is_still_declared():
    """papermill's line parser skips `owner_cap = 50  # 30 x 20 = 600`; the runner does not."""
    headline = next(r for r in runner.list_reports(FIXTURES) if r.name == "01_headline")
    declared = runner.declared_parameters(headline)
    assert declared["owner_cap"]["default"] == "50"
    runner.check_parameters(headline, {"owner_cap": 40, "account_id": "00042"}, declared)


def test_a_password_that_leaked_into_a_file_of_the_pack_is_scrubbed(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_DB_URL", f"postgresql://crm:{SECRET}@db.example.com/crm")
    secrets_ = runner._Secrets()
    runner.resolve_source("env:CRM_DB_URL", secrets_)
    (tmp_path / "_run" / "logs").mkdir(parents=True)
    log = tmp_path / "_run" / "logs" / "02_pipeline.log"
    log.write_text(f"could not connect to postgresql://crm:{SECRET}@db.example.com/crm\n")
    runner._scrub_secrets(tmp_path, secrets_)
    assert SECRET not in log.read_text() and "***" in log.read_text()
    assert SECRET not in secrets_.mask(f"error: {os.environ['CRM_DB_URL']}")


def test_credentials_in_the_environment_never_reach_the_report_kernels(tmp_path, monkeypatch):
    """The reports read the snapshot, not the database: the runner's workers drop the
    credential variables before starting kernels, so no cell can print them."""
    for name in ("CRM_DB_URL", "CRM_SMTP_PASSWORD", "PGPASSWORD"):
        monkeypatch.setenv(name, f"{name}-{SECRET}")
    result = run(tmp_path / "out", only="01", with_code=True)
    page = (result.pack_dir / result.reports[0]["code_html"]).read_text(encoding="utf-8")
    assert "credential variables seen: []" in page and SECRET not in page
    assert "MY_DB" in runner._kernel_env("env:MY_DB")[runner.DROP_ENV].split(",")


# ------------------------------------------------------- a kernel that dies while starting

def _tiny_task(tmp_path):
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = tmp_path / "tiny.ipynb"
    nbformat.write(nb, str(source))
    (tmp_path / "out").mkdir()
    (tmp_path / "records").mkdir()
    return {"report": "tiny", "title": "Tiny", "input": str(source),
            "output_dir": str(tmp_path / "out"), "cwd": str(tmp_path), "parameters": {},
            "timeout_s": 60, "with_code": True, "results_dir": str(tmp_path / "records")}


def _papermill_failing(monkeypatch, failures: int, message: str = runner.KERNEL_START_DIED):
    """papermill.execute_notebook raising what jupyter_client raises when the kernel lost
    the race for its ports (the first ``failures`` calls), then the real one."""
    import papermill
    real, calls = papermill.execute_notebook, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) <= failures:
            raise RuntimeError(message)
        return real(*args, **kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    return calls


@pytest.mark.parametrize("message, said", [
    (runner.KERNEL_START_DIED, "the kernel died while starting (attempt 1 of 3)"),
    ("Kernel didn't respond in 60 seconds", "the kernel did not reply while starting (attempt 1 of 3)"),
])
def test_a_kernel_that_dies_while_starting_is_started_again(tmp_path, monkeypatch, capfd, message, said):
    """Seen in CI: two workers' kernels given the same free port; the loser died before
    replying to kernel_info and its report failed although no cell had run. Seen too on a
    loaded machine: a kernel that did not reply to kernel_info within the 60 s start timeout."""
    calls = _papermill_failing(monkeypatch, failures=runner.KERNEL_START_ATTEMPTS - 1, message=message)
    done = runner.execute_report(_tiny_task(tmp_path))
    assert done["status"] == "ok", done
    assert len(calls) == runner.KERNEL_START_ATTEMPTS
    assert "42" in (tmp_path / "out" / "tiny.code.html").read_text(encoding="utf-8")
    assert said in capfd.readouterr().err


def test_a_kernel_that_never_starts_fails_the_report_in_one_line(tmp_path, monkeypatch):
    calls = _papermill_failing(monkeypatch, failures=99)
    done = runner.execute_report(_tiny_task(tmp_path))
    assert len(calls) == runner.KERNEL_START_ATTEMPTS
    assert done["status"] == "failed"
    assert done["error"] == f"RuntimeError: {runner.KERNEL_START_DIED}"


def test_other_runtime_errors_are_not_retried(tmp_path, monkeypatch):
    calls = _papermill_failing(monkeypatch, failures=99, message="something else broke")
    done = runner.execute_report(_tiny_task(tmp_path))
    assert len(calls) == 1 and done["status"] == "failed"
    assert done["error"] == "RuntimeError: something else broke"


def test_the_snapshot_is_built_at_the_runs_as_of(tmp_path):
    seen = {}

    def recording(source, snapshot_dir, **kwargs):
        seen.update(kwargs)
        return fake_snapshot(source, snapshot_dir, **kwargs)

    run(tmp_path, prepare_snapshot=recording, only="01")
    assert seen["as_of"] == AS_OF


def test_the_default_snapshot_is_built_in_a_child_process_and_its_errors_come_back_whole(tmp_path):
    """The gigabytes of reading a large export go back to the system with the child; a
    data error raised there reaches the user as the same one-line error, details kept."""
    bad = tmp_path / "export"
    bad.mkdir()
    (bad / "deals.csv").write_text("deal_id,name\nD1,x\n", encoding="utf-8")
    with pytest.raises(CrmDataError) as caught:
        runner.build_snapshot_apart(str(bad), tmp_path / "snap", timezone="UTC", mapping=None,
                                    mask_pii=False, as_of=AS_OF)
    direct = None
    try:
        runner.build_snapshot(str(bad), tmp_path / "snap2", timezone="UTC", mapping=None, mask_pii=False,
                              as_of=AS_OF)
    except CrmDataError as exc:
        direct = exc
    assert str(caught.value) == str(direct)
    assert (caught.value.table, caught.value.column) == (direct.table, direct.column)
    snap = runner.build_snapshot_apart(str(ROOT / "data" / "sample"), tmp_path / "ok", timezone="UTC",
                                       mapping=None, mask_pii=False, as_of=AS_OF)
    assert snap["fingerprint"] and (tmp_path / "ok" / "deals.parquet").exists()
    assert caught.value.table == "deals" and caught.value.column == "status"
