"""Hardening (issue 10): injection, personal data, faults and determinism.

The bad-input corpus is tests/badinput. Covered elsewhere and not repeated here: markup
in names, stages, reasons and campaign names across the whole pack (tests/test_pack.py),
escaped column headers, row labels and index names of report tables
(tests/unit/test_display.py), a report that raises, times out or kills its kernel while
the others complete, SIGTERM without an earlier pack, and passwords kept out of every
file (tests/test_runner.py).

Three small pack runs are shared: a hostile one (markup in a column name, a `</script>`
in deal names, payloads in parameters, plus a deliberately unsafe report), and two
masked runs of the same data (personal data and determinism), with a third on changed
data. The fault tests use the runner's fixture notebooks and a faked snapshot.
"""

from __future__ import annotations

import contextlib
import errno
import html
import json
import os
import re
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from crmlib import cli, runner
from crmlib.data import open_data
from crmlib.htmlcheck import SCRIPT_TYPES, URL_ATTRIBUTES, _dangerous_scheme, audit_html
from crmlib.privacy import pseudonym
from crmlib.sample import write_sample
from helpers import NOTEBOOKS, ROOT, run_until_a_kernel_sleeps

FIXTURES = ROOT / "tests" / "fixtures" / "notebooks"
AS_OF = "2024-06-30"
MARK = "crmxss"  # every payload carries it; live markup mentioning it is a hole
COLUMN = f"<img src=x onerror=alert('{MARK}-column')>"
BREAKOUT = f"</script><script>alert('{MARK}-json')</script>"
MDLINK = f"[open](javascript:alert('{MARK}-md'))"
OWNER = f"<script>alert('{MARK}-owner')</script>"
STALL = f"<img src=x onerror=alert('{MARK}-param')>"
SALT, OTHER_SALT = "hardening-salt-1", "hardening-salt-2"


# ---------------------------------------------------------------- page scan
class _PageScan(HTMLParser):
    """Live markup anywhere in a page (not only inside the cell wrappers) that mentions a
    marker: an executable <script> holding it, an on* handler or a javascript: URL with it.
    A `</script>` in data written raw into an embedded JSON block closes that block, and
    whatever follows becomes a live script: this finds it wherever the block sits."""

    def __init__(self, marker: str) -> None:
        super().__init__(convert_charrefs=True)
        self.marker = marker
        self.script: tuple[bool, list[str]] | None = None
        self.findings: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            value = value or ""
            if self.marker not in value:
                continue
            if name.lower().startswith("on"):
                self.findings.append(f"<{tag} {name}=...> at line {self.getpos()[0]}")
            elif name.lower() in URL_ATTRIBUTES and _dangerous_scheme(value):
                self.findings.append(f"<{tag} {name}={value[:30]!r}> at line {self.getpos()[0]}")
        if tag == "script":
            kind = (dict(attrs).get("type") or "").strip().lower().split(";")[0]
            self.script = (kind in SCRIPT_TYPES, [])

    def handle_data(self, data):
        if self.script is not None:
            self.script[1].append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self.script is not None:
            runs, parts = self.script
            if runs and self.marker in "".join(parts):
                self.findings.append(f"a live <script> with {''.join(parts)[:40]!r}")
            self.script = None


def live_markers(page: str, marker: str = MARK) -> list[str]:
    """Live markup mentioning ``marker`` anywhere in the HTML ``page`` (empty: safe)."""
    scan = _PageScan(marker)
    scan.feed(page)
    scan.close()
    return scan.findings


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.skip -= tag in ("script", "style") and self.skip > 0

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def page_text(page: str) -> str:
    """What a reader sees of a page: its text, character references resolved."""
    parser = _Text()
    parser.feed(page)
    return "".join(parser.parts)


def test_the_page_scan_finds_a_script_that_breaks_out_of_embedded_json():
    raw = json.dumps({"name": BREAKOUT}, ensure_ascii=False)
    page = f'<html><head><script type="application/json">{raw}</script></head><body></body></html>'
    assert live_markers(page) == [f"a live <script> with \"alert('{MARK}-json')\""]
    safe = raw.replace("</", "<\\/")  # how embedded JSON must be written
    assert live_markers(page.replace(raw, safe)) == []
    assert live_markers(f"<p>{html.escape(BREAKOUT)}</p>") == []
    assert len(live_markers(f'<div><img src=x onerror="alert(\'{MARK}\')"><a href="javascript:{MARK}">'
                            "x</a></div>")) == 2
    assert BREAKOUT in page_text(f"<p>{html.escape(BREAKOUT)}</p><script>var a = '{MARK}';</script>")


# ---------------------------------------------------------------- hostile pack
def _edit(folder: Path, table: str, fn) -> None:
    path = folder / f"{table}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = fn(frame)
    frame.to_csv(path, index=False)


@pytest.fixture(scope="module")
def small_export(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("small") / "export"
    write_sample(src, size="small", seed=11)
    return src


@pytest.fixture(scope="module")
def hostile_run(small_export, tmp_path_factory):
    """01 and 02 with payloads in a column name, deal names and parameters, beside a copy of
    the deliberately unsafe fixture report (03), in one run with the analyst view."""
    base = tmp_path_factory.mktemp("hostile")
    src = base / "export"
    shutil.copytree(small_export, src)

    def deals(frame):
        frame["name"] = [BREAKOUT if i % 2 else MDLINK for i in range(len(frame))]
        frame[COLUMN] = "x"  # a column the schema does not know: named in the load notes
        return frame

    _edit(src, "deals", deals)
    owners = sorted(pd.read_csv(src / "users.csv", dtype=str)["user_id"])
    notebooks = base / "notebooks"
    notebooks.mkdir()
    for name in ("01_data_audit", "02_pipeline"):
        shutil.copy(NOTEBOOKS / f"{name}.ipynb", notebooks)
    shutil.copy(FIXTURES / "unsafe_data_html.ipynb", notebooks / "03_unsafe_data_html.ipynb")
    config = {"params": {"owners": owners + [OWNER]},
              "reports": {"02_pipeline": {"params": {"stall_overrides": {STALL: 5}}}}}
    return runner.run_pack(source=src, out=base / "out", notebooks_dir=notebooks, config=config,
                           jobs=2, with_code=True)


def _pages(result, *reports):
    entries = [r for r in result.manifest["reports"] if r["report"] in reports]
    assert len(entries) == len(reports)
    return {(r["report"], view): (result.pack_dir / r[view]).read_text(encoding="utf-8")
            for r in entries for view in ("html", "code_html")}


def test_hostile_column_names_data_and_parameters_end_escaped(hostile_run):
    statuses = {r["report"]: r["status"] for r in hostile_run.manifest["reports"]}
    assert statuses == {"01_data_audit": "ok", "02_pipeline": "ok", "03_unsafe_data_html": "ok"}
    pages = _pages(hostile_run, "01_data_audit", "02_pipeline")
    for (report, view), page in pages.items():
        assert audit_html(page) == [], (report, view)
        assert live_markers(page) == [], (report, view)
    text = {key: page_text(page) for key, page in pages.items()}
    assert COLUMN in text["01_data_audit", "html"]  # the load notes name the unknown column
    assert BREAKOUT in text["02_pipeline", "html"] and MDLINK in text["02_pipeline", "html"]
    for report in ("01_data_audit", "02_pipeline"):  # the analyst view shows the parameters
        assert OWNER in text[report, "code_html"]
    assert STALL in text["02_pipeline", "code_html"]
    index = hostile_run.index_path.read_text(encoding="utf-8")
    assert audit_html(index) == [] and live_markers(index) == []


def test_the_unsafe_fixture_report_fails_the_same_audit(hostile_run):
    """The test of the test: HTML(df.to_html(escape=False)) of the same data is caught."""
    page = _pages(hostile_run, "03_unsafe_data_html")["03_unsafe_data_html", "html"]
    assert any(f.problem == "live script" for f in audit_html(page))
    assert live_markers(page)


def test_no_manifest_value_can_put_live_markup_on_the_front_page(hostile_run):
    """Every text of the manifest (titles, labels, verdicts, alerts, errors, parameters,
    notes, the source) replaced by a payload: the index shows it as text only."""
    keep = {"status", "unit", "severity", "html", "code_html", "notebook", "index", "run_dir"}

    def poison(value, key=None):
        if isinstance(value, dict):
            return {k: poison(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [poison(v, key) for v in value]
        if isinstance(value, str) and key not in keep:
            return f"{value}{BREAKOUT}{MDLINK}"
        return value

    manifest = poison(json.loads(json.dumps(hostile_run.manifest)))
    page = runner.build_index(manifest)
    assert audit_html(page) == [] and live_markers(page) == []
    assert BREAKOUT in page_text(page)


@pytest.mark.parametrize("params, word", [({"currency": OWNER}, "currency"),
                                          ({"period": STALL}, "period")])
def test_a_hostile_currency_or_period_is_refused_with_one_line(tmp_path, capsys, params, word):
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"params": params}), encoding="utf-8")  # JSON is YAML
    code = cli.main(["run", "--notebooks", str(FIXTURES), "--only", "01", "--source", str(ROOT),
                     "--as-of", AS_OF, "--config", str(config), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"params.{word}" in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- personal data + determinism
@contextlib.contextmanager
def _salt(value: str):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRM_PII_SALT", value)
        yield


@pytest.fixture(scope="module")
def small_data(small_export):
    return open_data(small_export)


@pytest.fixture(scope="module")
def masked_runs(small_export, small_data, tmp_path_factory):
    """Runs A and B: 01 and 02 on the same data with the same salt; run C: 02 on the same
    data with one open deal's amount changed."""
    base = tmp_path_factory.mktemp("masked")
    config = {"params": {"mask_pii": True}}
    with _salt(SALT):
        a = runner.run_pack(source=small_export, out=base / "a", only="01 02", config=config, jobs=2)
        b = runner.run_pack(source=small_export, out=base / "b", only="01 02", config=config, jobs=2)
        changed = base / "changed"
        shutil.copytree(small_export, changed)

        deals = small_data.tables["deals"]
        kept_open = deals.loc[deals["status"] == "open", "deal_id"].iloc[0]  # counted by 02

        def bump(frame):
            row = frame.index[frame["deal_id"] == kept_open][0]
            frame.loc[row, "amount"] = str(float(frame.loc[row, "amount"]) + 1000)
            return frame

        _edit(changed, "deals", bump)
        c = runner.run_pack(source=changed, out=base / "c", only="02", config=config, jobs=1)
    return a, b, c


def _personal_data(export: Path) -> tuple[set[str], set[str]]:
    """Every email address and phone number of the export (contacts and leads)."""
    emails, phones = set(), set()
    for table in ("contacts", "leads"):
        frame = pd.read_csv(export / f"{table}.csv", dtype=str, keep_default_na=False)
        emails |= {v.strip() for v in frame["email"] if len(v.strip()) >= 6}
        phones |= {v.strip() for v in frame["phone"] if len(re.sub(r"\D", "", v)) >= 7}
    return emails, phones


def _files(pack: Path) -> dict[Path, str]:
    """Every file of a pack as text (HTML character references resolved)."""
    return {p: html.unescape(p.read_text(encoding="utf-8", errors="replace"))
            for p in pack.rglob("*") if p.is_file()}


def _leaks(text: str, emails: set[str], phones: set[str]) -> set[str]:
    """The emails and phone numbers of ``emails``/``phones`` that occur in ``text``.

    Emails are matched as whole tokens (a token of email characters around an @, malformed
    ones included); the few without an @ by plain search. Phone numbers are matched by
    their digits inside any run of phone characters, so another spelling of the same
    number counts too."""
    tokens = set(re.findall(r"[A-Za-z0-9._%+'@-]*@[A-Za-z0-9._%+'@-]*", text))
    tokens |= {t.strip(".'-") for t in tokens}  # the end of a sentence, quotes
    found = tokens & emails | {e for e in emails if "@" not in e and e in text}
    digits = {re.sub(r"\D", "", p): p for p in phones}
    lengths = sorted({len(d) for d in digits})
    for run in set(re.findall(r"[+(]?\d[\d ()./-]{5,}\d", text)):
        d = re.sub(r"\D", "", run)
        found |= {digits[d[i:i + n]] for n in lengths for i in range(len(d) - n + 1) if d[i:i + n] in digits}
    return found


def test_the_leak_finder_finds_what_it_should():
    text = "<td>ann.lee@example.com</td> call +49 (30) 123-4567 or 'bob at example' 2026-09-27"
    emails = {"ann.lee@example.com", "bob at example", "zed@example.com"}
    phones = {"+49 30 1234567", "+49 40 7654321"}
    assert _leaks(text, emails, phones) == {"ann.lee@example.com", "bob at example", "+49 30 1234567"}
    ann = {"ann.lee@example.com"}
    assert _leaks("Write to 'ann.lee@example.com'.", ann, set()) == ann
    assert _leaks("+00 123456789 and 1,234,567", set(), phones) == set()


def test_mask_pii_leaves_no_email_or_phone_of_the_input_in_any_output(masked_runs, small_export):
    emails, phones = _personal_data(small_export)
    assert len(emails) > 100 and len(phones) > 100
    for result in masked_runs:
        files = _files(result.pack_dir)
        names = {p.name for p in files}
        assert {"manifest.json", "index.html", "02_pipeline.html", "02_pipeline.ipynb",
                "02_pipeline.json"} <= names
        for path, text in files.items():
            assert not _leaks(text, emails, phones), (path.name, sorted(_leaks(text, emails, phones))[:5])
            assert SALT not in text, path.name


def test_pseudonyms_come_from_the_salt_in_the_environment(masked_runs, small_export):
    a, b, _ = masked_runs
    emails, _ = _personal_data(small_export)
    shown = [page_text((run.pack_dir / "01_data_audit.html").read_text(encoding="utf-8")) for run in (a, b)]

    def pseudonyms(salt):
        return {pseudonym(v, kind="email", salt=salt) for e in emails for v in (e, e.lower())}

    ours = {p for p in pseudonyms(SALT) if p in shown[0]}
    assert ours, "the audit report shows masked email addresses"
    assert ours == {p for p in pseudonyms(SALT) if p in shown[1]}  # same salt, same pseudonyms
    assert not any(p in shown[0] for p in pseudonyms(OTHER_SALT))


def test_the_same_salt_gives_the_same_pseudonyms_and_another_salt_others(small_data):
    def masked_contacts(salt):
        with _salt(salt):
            data = small_data.masked()  # the salt is read from CRM_PII_SALT
        return data.tables["contacts"][["email", "phone"]], data.findings["reason"]

    first, again, other = masked_contacts(SALT), masked_contacts(SALT), masked_contacts(OTHER_SALT)
    pd.testing.assert_frame_equal(first[0], again[0])
    pd.testing.assert_series_equal(first[1], again[1])
    emails = first[0]["email"].dropna()
    assert emails.str.endswith("@masked.invalid").all()
    changed = (emails != other[0]["email"].dropna()).mean()
    assert changed == 1.0


def test_two_runs_on_the_same_data_record_the_same_results_hash(masked_runs):
    a, b, c = masked_runs
    hashes = [{r["report"]: r["results_sha256"] for r in run.manifest["reports"]} for run in (a, b, c)]
    assert set(hashes[0]) == {"01_data_audit", "02_pipeline"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes[0].values())
    assert hashes[0] == hashes[1]
    assert a.manifest["results_sha256"] == b.manifest["results_sha256"]
    assert a.manifest["started_at"] != b.manifest["started_at"] or a.pack_dir != b.pack_dir
    assert hashes[2]["02_pipeline"] != hashes[0]["02_pipeline"]  # one amount changed
    on_disk = json.loads((a.pack_dir / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk["results_sha256"] == a.manifest["results_sha256"]


def test_the_results_hash_is_canonical_and_leaves_out_timings_and_paths():
    record = {"report": "02_pipeline", "status": "ok",
              "headlines": [{"key": "open_value", "value": 1234.5, "unit": "money"}]}
    shuffled = {"headlines": [{"unit": "money", "value": 1234.5, "key": "open_value"}],
                "status": "ok", "report": "02_pipeline", "timings": {"total_s": 9.9},
                "path": "/somewhere/else"}
    assert runner.results_hash("ok", record) == runner.results_hash("ok", shuffled)
    changed = json.loads(json.dumps(record))
    changed["headlines"][0]["value"] = 1234.6
    assert runner.results_hash("ok", changed) != runner.results_hash("ok", record)
    assert runner.results_hash("failed", record) != runner.results_hash("ok", record)
    assert runner.run_results_hash({"a": "1", "b": "2"}) == runner.run_results_hash({"b": "2", "a": "1"})


# ---------------------------------------------------------------- faults
def _fake_snapshot(source, snapshot_dir, **kwargs):
    Path(snapshot_dir, "marker.txt").write_text("fp-test", encoding="utf-8")
    return {"fingerprint": "fp-test", "meta": {}}


def _old_pack(out: Path) -> dict[str, str]:
    (out / AS_OF).mkdir(parents=True)
    files = {"index.html": "the previous pack", "manifest.json": '{"as_of": "2024-06-30"}'}
    for name, text in files.items():
        (out / AS_OF / name).write_text(text, encoding="utf-8")
    return files


def _assert_only_the_old_pack(out: Path, files: dict[str, str]) -> None:
    assert sorted(os.listdir(out)) == [AS_OF], "debris left in the output folder"
    assert {p.name: p.read_text(encoding="utf-8") for p in (out / AS_OF).iterdir()} == files


def _run_cli(out: Path, capsys, *extra) -> tuple[int, str]:
    code = cli.main(["run", "--notebooks", str(FIXTURES), "--only", "01", "--source", str(ROOT),
                     "--as-of", AS_OF, "--out", str(out), "--timeout", "60", *extra])
    stdout, stderr = capsys.readouterr()
    assert "Traceback" not in stdout + stderr
    return code, stderr


def _one_clear_line(stderr: str, out: Path, problem: str) -> None:
    """The run's last word is one error line (progress lines may come before it)."""
    lines = stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("crm-reports:")] == lines[-1:], stderr
    assert lines[-1].startswith(f"crm-reports: error: cannot write the pack into {out}: {problem}")
    assert "an earlier pack there is unchanged" in lines[-1]


def _oserror(code: int, path) -> OSError:
    return OSError(code, os.strerror(code), str(path))


def test_a_full_disk_when_the_manifest_is_written_stops_with_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "build_snapshot", _fake_snapshot)
    out = tmp_path / "out"
    old = _old_pack(out)
    write_text = Path.write_text

    def full_disk(self, *args, **kwargs):
        if self.name == "manifest.json":
            raise _oserror(errno.ENOSPC, self)
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    code, stderr = _run_cli(out, capsys)
    assert code == 2
    _one_clear_line(stderr, out, "No space left on device")
    _assert_only_the_old_pack(out, old)


def test_a_failing_swap_puts_the_previous_pack_back(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "build_snapshot", _fake_snapshot)
    out = tmp_path / "out"
    old = _old_pack(out)
    rename = Path.rename

    def refused(self, target):
        if Path(target).name == AS_OF and self.name.startswith(f".{AS_OF}.tmp-"):
            raise _oserror(errno.EACCES, target)
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", refused)
    code, stderr = _run_cli(out, capsys)
    assert code == 2
    _one_clear_line(stderr, out, "Permission denied")
    _assert_only_the_old_pack(out, old)


@pytest.mark.parametrize("where", ["staging", "snapshot"])
def test_no_room_for_the_staging_folder_or_the_snapshot_is_exit_2(tmp_path, capsys, monkeypatch, where):
    out = tmp_path / "out"
    old = _old_pack(out)
    if where == "staging":
        monkeypatch.setattr(runner, "build_snapshot", _fake_snapshot)

        def mkdtemp(*args, **kwargs):
            raise _oserror(errno.EROFS, kwargs.get("dir"))

        monkeypatch.setattr(runner.tempfile, "mkdtemp", mkdtemp)
    else:
        def no_room(source, snapshot_dir, **kwargs):
            raise _oserror(errno.ENOSPC, Path(snapshot_dir) / "deals.parquet")

        monkeypatch.setattr(runner, "build_snapshot", no_room)
    code, stderr = _run_cli(out, capsys)
    assert code == 2
    _one_clear_line(stderr, out, "Read-only file system" if where == "staging" else "No space left")
    _assert_only_the_old_pack(out, old)


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    """A small tmpfs at ``path`` (skips the test where mounting is not allowed)."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(path: Path) -> None:
    """Write zeros into ``path`` until the disk is full."""
    with open(path, "wb") as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()


def test_a_really_full_disk(tmp_path, capsys, monkeypatch):
    """A 4 MB tmpfs that the data snapshot fills up: no report page and no fallback page
    can be written, the run stops with one line, the earlier pack stays as it was."""

    def filling_snapshot(source, snapshot_dir, **kwargs):
        _fill(Path(snapshot_dir) / "filler.bin")
        return {"fingerprint": "fp-test", "meta": {}}

    monkeypatch.setattr(runner, "build_snapshot", filling_snapshot)
    with _tmpfs(tmp_path / "disk", "4m") as out:
        old = _old_pack(out)
        code, stderr = _run_cli(out, capsys)
        assert code == 2
        _one_clear_line(stderr, out, "No space left on device")
        _assert_only_the_old_pack(out, old)
        assert os.statvfs(out).f_bfree > 0.9 * os.statvfs(out).f_blocks  # the snapshot went too


def test_a_really_read_only_output_folder(tmp_path, capsys, monkeypatch):
    """chmod does not stop root: a tmpfs remounted read-only does."""
    monkeypatch.setattr(runner, "build_snapshot", _fake_snapshot)
    with _tmpfs(tmp_path / "ro", "1m") as out:
        old = _old_pack(out)
        subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True, capture_output=True)
        code, stderr = _run_cli(out, capsys)
        assert code == 2
        _one_clear_line(stderr, out, "Read-only file system")
        _assert_only_the_old_pack(out, old)


def test_sigterm_mid_run_keeps_the_previous_pack_and_leaves_no_debris(tmp_path):
    out = tmp_path / "out"
    old = _old_pack(out)
    process, _ = run_until_a_kernel_sleeps(out, tmp_path, AS_OF)
    try:
        assert process.poll() is None, process.communicate()
        staging = [p for p in out.iterdir() if p.name.startswith(f".{AS_OF}.tmp-")]
        assert staging, "the run is under way in a staging folder"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143 and "Traceback" not in stderr
    _assert_only_the_old_pack(out, old)


def test_an_unreadable_export_file_is_one_line(tmp_path, capsys, monkeypatch):
    src = tmp_path / "export"
    src.mkdir()
    (src / "deals.csv").write_text("deal_id,status,amount,created_at\nD1,open,1,2024-01-02\n")
    read_bytes = Path.read_bytes

    def denied(self):
        if self.name == "deals.csv":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    code = cli.main(["audit", "--source", str(src)])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in out + err
    assert err == ("crm-reports: error: deals.csv: cannot be read (Permission denied); "
                   "export the table again\n")
