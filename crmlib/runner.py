"""Run the report pack: papermill executes each notebook, nbconvert writes its HTML,
the runner writes ``manifest.json`` and ``index.html`` and moves the pack into place.

Public surface: :func:`run_pack`, :func:`list_reports`, :func:`build_index`,
:func:`notebook_to_html`; the command line (``crm-reports``) is a thin layer over them.

A run, step by step:

1. Resolve the inputs and refuse bad ones before anything starts (a
   :class:`~crmlib.errors.CrmConfigError`, exit 2): the source (a URL with a password is
   refused: credentials come from the environment, ``--source env:CRM_DB_URL``), the
   as_of date, the report selection, the YAML configuration, and every parameter's name
   against what each notebook declares (``papermill.inspect_notebook``).
2. Create a staging folder beside the target, ``<out>/.<as_of>.tmp-<pid>-<random>``.
3. Load and audit the data ONCE (``crmlib.data.open_data``) and save the snapshot into
   ``<staging>/_run/snapshot``; every notebook gets its path as ``snapshot`` and
   ``<staging>/_run/records`` as ``results_dir``.
4. Execute the notebooks in ``--jobs`` worker processes (one kernel each, cwd = the
   notebooks folder, figures rendered inline). The runner decides success itself: a report is ok
   only if papermill raised nothing, no cell has an error output (cells tagged
   ``raises-exception`` excepted) and every non-empty code cell was executed. A notebook
   that raises ``ReportSkipped`` (its Recorder wrote status "skipped") is "skipped".
   A failing report keeps its executed notebook and an HTML page showing the error.
5. Write ``manifest.json`` and ``index.html``, then swap the staging folder into
   ``<out>/<as_of>`` (an older pack is moved aside and removed only once the new one is
   in place). Any exception, Ctrl-C or SIGTERM stops the workers and their kernels and
   removes the staging folder: a half-written pack never appears.

What stays in a pack: ``NN_name.html`` (manager view, no code), ``NN_name.code.html``
(analyst view, with ``--with-code``), ``NN_name.ipynb`` (executed), ``index.html``,
``manifest.json`` and ``_run/``, which keeps ``_run/records/<report>.json`` (what each
report recorded) and ``_run/logs/<report>.log`` (the kernel's and papermill's stderr).
The data snapshot (``_run/snapshot``) is removed before the swap: it can be large and
it is reproducible from the source and the fingerprint.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import difflib
import hashlib
import html
import json
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from crmlib.errors import CrmConfigError, CrmError

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
DEFAULT_SOURCE = PROJECT_ROOT / "data" / "sample"
DEFAULT_OUT = "reports_out"
TEMPLATES_DIR = PACKAGE_DIR / "templates"
HTML_TEMPLATE = "crm"  # crmlib/templates/crm: nbconvert's lab template without remote scripts
INDEX_TEMPLATE = "pack_index.html.j2"
KERNEL_NAME = "python3"
# a kernel that dies before its first reply ran no cell (see execute_report)
KERNEL_START_DIED = "Kernel died before replying to kernel_info"
# ... or did not reply within start_timeout (jupyter_client: "Kernel didn't respond in 60 seconds"):
# seen in CI on a loaded machine; no cell has run either, so it is started again too
KERNEL_START_SILENT = "Kernel didn't respond in"
_KERNEL_START_FAILURES = {KERNEL_START_DIED: "died while starting",
                          KERNEL_START_SILENT: "did not reply while starting"}
KERNEL_START_ATTEMPTS = 3
DEFAULT_TIMEOUT_S = 600.0

#: Parameters the runner passes to every report; a configuration may not set them.
RUNNER_PARAMETERS = ("source", "as_of", "snapshot", "results_dir")
#: Exception names that mean "this report does not apply to this export".
SKIP_ERRORS = ("ReportSkipped", "MissingTableError")
#: Libraries whose versions the manifest records.
VERSIONED = ("pandas", "numpy", "papermill", "nbconvert", "nbformat", "ipykernel",
             "statsmodels", "matplotlib", "seaborn", "pandera")
#: Config keys understood at the top level and per report.
CONFIG_KEYS = ("params", "reports", "mapping")
REPORT_CONFIG_KEYS = ("params",)

REPORT_FILE = re.compile(r"^(?P<number>\d{2})_(?P<short>[A-Za-z0-9_]+)\.ipynb$")
INDEX_NUMBER = "99"  # reserved: the index page the runner builds
STAGING_NAME = re.compile(r"^\.(?P<as_of>\d{4}-\d{2}-\d{2})\.(?P<kind>tmp|old)-(?P<pid>\d+)-[A-Za-z0-9_]+$")

_URL_WITH_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):(?P<password>[^\s@/]*)@")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# ----------------------------------------------------------------------------------
# Small value types
# ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Report:
    """One report notebook, known by its path."""

    number: str
    name: str  # NN_short, e.g. "02_pipeline"
    title: str
    path: Path

    @property
    def short(self) -> str:
        return self.name.split("_", 1)[1]


@dataclass
class ReportResult:
    """How one report of a run ended (one entry of manifest["reports"])."""

    report: str
    number: str
    title: str
    status: str  # ok | skipped | failed
    error: str | None = None
    reason: str | None = None
    html: str | None = None
    code_html: str | None = None
    notebook: str | None = None
    duration_s: float = 0.0
    timings: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    headlines: list = field(default_factory=list)
    alerts: list = field(default_factory=list)
    verdict: str = ""
    results_sha256: str | None = None  # see results_hash: equal runs give equal hashes

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunResult:
    """What :func:`run_pack` returns: the manifest and where the pack is."""

    manifest: dict
    pack_dir: Path
    index_path: Path

    @property
    def exit_code(self) -> int:
        """0 when every report is ok or skipped, 1 when some report failed."""
        return 1 if self.manifest["counts"]["failed"] else 0

    @property
    def reports(self) -> list[dict]:
        return self.manifest["reports"]


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by SIGTERM (Ctrl-C raises a plain KeyboardInterrupt)."""


# ----------------------------------------------------------------------------------
# Secrets: credentials only from the environment, never written anywhere
# ----------------------------------------------------------------------------------

class _Secrets:
    """Literal secret values to mask in every message (passwords read from env URLs)."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def add_url(self, url: str) -> None:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            self.values.update({password, unquote(password), url})
        # crmlib.load also takes the password from CRM_DB_PASSWORD
        if os.environ.get("CRM_DB_PASSWORD"):
            self.values.add(os.environ["CRM_DB_PASSWORD"])

    def mask(self, text: str) -> str:
        text = mask_url_passwords(text)
        for value in sorted(self.values, key=len, reverse=True):
            if value and len(value) >= 3:
                text = text.replace(value, "***")
        return text


def mask_url_passwords(text: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:***@host`` anywhere in ``text``."""
    return _URL_WITH_PASSWORD.sub(lambda m: f"{m.group('head')}:***@", str(text))


def _has_password(value: str) -> bool:
    if "://" not in value:
        return False
    if _URL_WITH_PASSWORD.search(value):
        return True
    try:
        return bool(urlsplit(value.strip()).password)
    except ValueError:
        return False


def resolve_source(source: str | os.PathLike | None, secrets_: _Secrets | None = None
                   ) -> tuple[str, str]:
    """The source to load and the source to show (parameter, manifest, messages).

    ``env:NAME`` means the URL is in the environment variable NAME (checked to be set);
    crmlib.load reads it there, so notebooks and the manifest only ever see
    ``env:NAME``. A URL with a password anywhere else is refused. A folder is made
    absolute (and must exist).
    """
    if source is None or str(source) == "":
        source = DEFAULT_SOURCE
    text = str(source).strip()
    if text.startswith("env:"):
        name = text[4:].strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise CrmConfigError(f"--source {text!r}: write env:NAME with the name of an "
                                 "environment variable, e.g. env:CRM_DB_URL")
        url = os.environ.get(name, "").strip()
        if not url:
            raise CrmConfigError(f"--source env:{name}: the environment variable {name} is not "
                                 "set or empty; export it with the database URL first")
        if secrets_ is not None:
            secrets_.add_url(url)  # masked in every message, should one ever quote it
        # crmlib.load reads env:NAME itself: the URL never passes through the runner
        return f"env:{name}", f"env:{name}"
    if "://" in text:
        if _has_password(text):
            raise CrmConfigError(
                f"--source {mask_url_passwords(text)!r} contains a password: put the URL in an "
                "environment variable (e.g. export CRM_DB_URL=...) and pass "
                "--source env:CRM_DB_URL instead")
        return text, text
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    path = path.resolve()
    if not path.exists():
        raise CrmConfigError(f"--source {text}: no such file or folder ({path})")
    return str(path), str(path)


def _refuse_secrets_in(params: Mapping, where: str) -> None:
    """Refuse any parameter value that holds a URL with a password."""

    def walk(value: Any, name: str) -> None:
        if isinstance(value, str):
            if _has_password(value):
                raise CrmConfigError(
                    f"parameter {name!r} in {where} contains a URL with a password "
                    f"({mask_url_passwords(value)!r}): credentials come only from the "
                    "environment; put the URL in a variable such as CRM_DB_URL and use "
                    "--source env:CRM_DB_URL")
        elif isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, f"{name}.{key}")
        elif isinstance(value, (list, tuple, set)):
            for i, item in enumerate(value):
                walk(item, f"{name}[{i}]")

    for key, value in params.items():
        walk(value, str(key))


# ----------------------------------------------------------------------------------
# Reports, as_of, configuration, parameters
# ----------------------------------------------------------------------------------

def _notebook_title(nb: Mapping, fallback: str) -> str:
    """The first heading of the first markdown cell, without the #s."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        for line in source.splitlines():
            stripped = line.strip()
            if stripped.startswith("#"):
                title = stripped.lstrip("#").strip()
                if title:
                    return title
        return fallback
    return fallback


def list_reports(notebooks_dir: str | os.PathLike | None = None) -> list[Report]:
    """The report notebooks ``NN_name.ipynb`` of a folder, in number order (99 excluded)."""
    folder = Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOKS_DIR
    if not folder.is_dir():
        raise CrmConfigError(f"notebooks folder {folder} does not exist")
    reports = []
    for path in sorted(folder.iterdir()):
        match = REPORT_FILE.match(path.name)
        if not match or match["number"] == INDEX_NUMBER:
            continue
        name = path.stem
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CrmConfigError(f"report {name}: {path} is not a readable notebook ({exc})") from None
        reports.append(Report(match["number"], name, _notebook_title(nb, name), path.resolve()))
    return reports


def select_reports(reports: Sequence[Report], only: str | Iterable[str] | None) -> list[Report]:
    """Reports picked by ``--only`` (names, numbers or short names; comma/space separated)."""
    if only is None:
        return list(reports)
    tokens = [only] if isinstance(only, str) else list(only)
    wanted = [t for token in tokens for t in re.split(r"[\s,]+", str(token)) if t]
    if not wanted:
        return list(reports)
    chosen: list[Report] = []
    for token in wanted:
        report = _find_report(reports, token, "--only")
        if report not in chosen:
            chosen.append(report)
    return [r for r in reports if r in chosen]


def _find_report(reports: Sequence[Report], token: str, where: str) -> Report:
    token = str(token).strip()
    for report in reports:
        if token in (report.name, report.short, report.number, report.path.name):
            return report
        if token.isdigit() and int(token) == int(report.number):
            return report
    names = [r.name for r in reports]
    close = difflib.get_close_matches(token, names + [r.short for r in reports], n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise CrmConfigError(f"{where}: no report {token!r}{hint}; the reports are: {', '.join(names)}")


def last_complete_week_end(today: dt.date | None = None) -> dt.date:
    """The Sunday that ends the last complete ISO week before ``today``."""
    today = today or dt.date.today()
    return today - dt.timedelta(days=today.isoweekday())


def _parse_as_of(value: Any, where: str) -> str:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise CrmConfigError(f"{where} {text!r} is not a date: write it as YYYY-MM-DD, "
                             "e.g. 2024-06-30") from None


def resolve_as_of(as_of: Any, source: str | None, *, today: dt.date | None = None) -> str:
    """``as_of`` given, else the one the export recorded, else the last complete week's end."""
    if as_of not in (None, ""):
        return _parse_as_of(as_of, "--as-of")
    if source is not None:
        try:
            from crmlib.data import export_settings
        except ImportError:
            export_settings = None
        if export_settings is not None:
            recorded = (export_settings(source) or {}).get("as_of")
            if recorded not in (None, ""):
                return _parse_as_of(recorded, "as_of recorded in the source's export.yaml:")
    return last_complete_week_end(today).isoformat()


def _native(value: Any) -> Any:
    """YAML values as plain Python values a notebook parameter can hold."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_native(v) for v in value]
    if isinstance(value, set):
        return sorted(_native(v) for v in value)
    return value


@dataclass
class RunConfig:
    """The ``--config`` file: parameters for every report, per-report overrides."""

    params: dict = field(default_factory=dict)
    reports: dict = field(default_factory=dict)  # report token -> {"params": {...}}
    mapping: str | None = None
    path: str | None = None


def _check_keys(mapping: Mapping, allowed: Sequence[str], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CrmConfigError(f"{where}: unknown key {key!r}{hint}; allowed: {', '.join(allowed)}")


def load_config(config: str | os.PathLike | Mapping | None) -> RunConfig:
    """Read and check the YAML run configuration (a dict is accepted as it is)."""
    if config is None:
        return RunConfig()
    where = "configuration"
    base = Path.cwd()
    if isinstance(config, Mapping):
        raw = config
    else:
        import yaml

        path = Path(config)
        where = f"config {path}"
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CrmConfigError(f"{where}: cannot read it ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}:" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise CrmConfigError(f"{where}:{line} not valid YAML ({problem})") from None
        base = path.resolve().parent
        if raw is None:
            raw = {}
    if not isinstance(raw, Mapping):
        raise CrmConfigError(f"{where}: expected a mapping with keys {', '.join(CONFIG_KEYS)}")
    _check_keys(raw, CONFIG_KEYS, where)
    params = raw.get("params") or {}
    if not isinstance(params, Mapping):
        raise CrmConfigError(f"{where}: 'params' must be a mapping of parameter names to values")
    reports = raw.get("reports") or {}
    if not isinstance(reports, Mapping):
        raise CrmConfigError(f"{where}: 'reports' must map report names to {{params: {{...}}}}")
    checked_reports = {}
    for name, entry in reports.items():
        entry = entry or {}
        if not isinstance(entry, Mapping):
            raise CrmConfigError(f"{where}: reports.{name} must be a mapping like {{params: {{...}}}}")
        _check_keys(entry, REPORT_CONFIG_KEYS, f"{where}: reports.{name}")
        report_params = entry.get("params") or {}
        if not isinstance(report_params, Mapping):
            raise CrmConfigError(f"{where}: reports.{name}.params must be a mapping")
        checked_reports[str(name)] = {"params": _native(dict(report_params))}
    mapping = raw.get("mapping")
    if mapping is not None:
        mapping = str(mapping)
        if mapping.endswith((".yaml", ".yml")) and not Path(mapping).is_absolute():
            mapping = str(base / mapping)
    params = _native(dict(params))
    for key in params:
        if key in ("source", "as_of"):
            raise CrmConfigError(f"{where}: params.{key} is set by the runner; use the "
                                 f"--{key.replace('_', '-')} option instead")
        if key in RUNNER_PARAMETERS:
            raise CrmConfigError(f"{where}: params.{key} is set by the runner for every run; "
                                 "remove it from the configuration")
    for name, entry in checked_reports.items():
        for key in entry["params"]:
            if key in RUNNER_PARAMETERS:
                raise CrmConfigError(f"{where}: reports.{name}.params.{key} is set by the runner")
    _refuse_secrets_in(params, where)
    _check_common_values(params, where)
    for name, entry in checked_reports.items():
        _refuse_secrets_in(entry["params"], f"{where} (reports.{name})")
        _check_common_values(entry["params"], f"{where} (reports.{name})")
    return RunConfig(params=params, reports=checked_reports, mapping=mapping,
                     path=None if isinstance(config, Mapping) else str(config))


def _check_common_values(params: Mapping, where: str) -> None:
    """Refuse a reporting currency or a period every report would fail on (before any runs)."""
    currency = params.get("currency")
    if currency is not None and not (isinstance(currency, str) and re.fullmatch(r"[A-Z]{3}", currency)):
        raise CrmConfigError(f"{where}: params.currency {currency!r} is not a three-letter ISO "
                             "currency code such as EUR or USD")
    period = params.get("period")
    if period is not None and period not in ("week", "month", "quarter"):
        raise CrmConfigError(f"{where}: params.period {period!r} must be week, month or quarter")


def declared_parameters(report: Report) -> dict[str, dict]:
    """The parameters a notebook declares: ``papermill.inspect_notebook``, completed by
    the top-level assignments of the ``parameters`` cell (papermill's line parser skips a
    line whose comment holds an ``=``, e.g. ``cap = 50  # 30 x 20 = 600``)."""
    import logging

    nb = json.loads(report.path.read_text(encoding="utf-8"))
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"
             and "parameters" in (c.get("metadata", {}).get("tags") or [])]
    if not cells:
        raise CrmConfigError(f"report {report.name} has no code cell tagged 'parameters' "
                             f"({report.path}); tag its first code cell 'parameters'")
    import papermill

    translator_log = logging.getLogger("papermill.translators")
    level = translator_log.level
    translator_log.setLevel(logging.ERROR)
    try:
        declared = dict(papermill.inspect_notebook(str(report.path)))
    finally:
        translator_log.setLevel(level)
    source = cells[0].get("source", "")
    source = "".join(source) if isinstance(source, list) else source
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return declared
    for node in tree.body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None
                   else [])
        for target in targets:
            if isinstance(target, ast.Name) and target.id not in declared:
                declared[target.id] = {"name": target.id, "inferred_type_name": "None",
                                       "default": ast.get_source_segment(source, node.value),
                                       "help": ""}
    return declared


def check_parameters(report: Report, params: Mapping, declared: Mapping[str, Mapping]) -> None:
    """Every parameter passed must be declared by the notebook, with a compatible type."""
    names = list(declared)
    for key, value in params.items():
        if key not in declared:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            why = (" which the runner passes to every report; add it to the notebook's "
                   "parameters cell" if key in RUNNER_PARAMETERS else "")
            raise CrmConfigError(f"report {report.name} does not declare parameter {key!r}{hint}"
                                 f"{why}; it declares: {', '.join(names) or 'nothing'}")
        default_src = declared[key].get("default")
        try:
            default = ast.literal_eval(default_src) if default_src else None
        except (ValueError, SyntaxError):
            continue
        if (isinstance(default, str) and isinstance(value, (int, float))
                and not isinstance(value, bool)):
            raise CrmConfigError(
                f"report {report.name}: parameter {key!r} is text in the notebook "
                f"(default {default_src}) but got the number {value!r}; quote it in the "
                f"configuration (e.g. {key}: '{value}') so ids keep their leading zeros")


# ----------------------------------------------------------------------------------
# The data snapshot (built once per run)
# ----------------------------------------------------------------------------------

SnapshotBuilder = Callable[..., Mapping]


def build_snapshot(source: str, snapshot_dir: Path, *, timezone: str = "UTC",
                   mapping: Any = None, mask_pii: bool = False, as_of: str | None = None) -> dict:
    """Load and audit the source once and save the audited snapshot as Parquet.

    ``as_of`` is the run's report date: a large source's engine aggregates are computed
    at it (:mod:`crmlib.pushdown`), so ``--as-of`` in the past gets aggregates of then.

    Returns ``{"fingerprint": str, "meta": dict}``. The default ``prepare_snapshot`` of
    :func:`run_pack`; tests pass their own.
    """
    from crmlib.data import open_data

    data = open_data(source, timezone=timezone, mapping=mapping, mask_pii=mask_pii, as_of=as_of)
    data.save(snapshot_dir)
    return {"fingerprint": str(data.fingerprint), "meta": dict(getattr(data, "meta", {}) or {})}


_BUILD_SNAPSHOT = build_snapshot


def build_snapshot_apart(source: str, snapshot_dir: Path, **kwargs) -> dict:
    """:func:`build_snapshot` in a child process of its own (the runner's default).

    Reading and auditing a large export takes gigabytes that pandas and Arrow keep
    after they are freed; in a child they go back to the system when it exits, before
    the report kernels start, instead of staying in the runner for the whole run. Its
    errors come back as they were raised; an interrupt stops it with the runner.
    """
    import concurrent.futures
    import multiprocessing

    if build_snapshot is not _BUILD_SNAPSHOT:  # replaced (a test's fault injection): run it here
        return build_snapshot(source, snapshot_dir, **kwargs)
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        future = pool.submit(build_snapshot, source, snapshot_dir, **kwargs)
        try:
            return future.result()
        except BaseException:
            for proc in list(getattr(pool, "_processes", {}).values()):  # no waiting for a long read
                with contextlib.suppress(Exception):
                    proc.terminate()
            raise


# ----------------------------------------------------------------------------------
# Executing one report (inside a worker process)
# ----------------------------------------------------------------------------------

def _one_line(text: Any, limit: int = 400) -> str:
    text = " ".join(_ANSI.sub("", str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _md_text(text: str) -> str:
    """Text safe inside a markdown cell: HTML-escaped, no markdown syntax left live."""
    special = set("&<>\"'[]()*_`\\!#|~")
    return "".join(f"&#{ord(ch)};" if ch in special else ch for ch in text)


def _cell_count(cell: Mapping) -> str:
    count = cell.get("execution_count")
    return f"In [{count}]" if count is not None else "a cell"


def inspect_executed(nb: Mapping) -> dict:
    """What an executed notebook shows: its first error output, unexecuted cells, and
    the cell that was running last (papermill stamps ``start_time`` when a cell starts).

    Errors in cells tagged ``raises-exception`` are allowed (nbclient's convention).
    Empty code cells are never executed by nbclient and are ignored.
    """
    first_error = None
    running = "the first cell"
    previous_count = None
    unexecuted = []
    allowed_errors = 0
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        if not source.strip():
            continue
        tags = cell.get("metadata", {}).get("tags") or []
        count = cell.get("execution_count")
        if count is None:
            unexecuted.append(index)
        if (cell.get("metadata", {}).get("papermill") or {}).get("start_time") or count is not None:
            # the kernel may die before it echoes the execution count of the running cell
            running = (f"In [{count}]" if count is not None else
                       f"after In [{previous_count}]" if previous_count is not None else "the first cell")
        if count is not None:
            previous_count = count
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            if "raises-exception" in tags:
                allowed_errors += 1
            elif first_error is None:
                first_error = {"ename": output.get("ename", ""), "evalue": output.get("evalue", ""),
                               "cell": _cell_count(cell)}
    return {"error": first_error, "unexecuted": unexecuted, "allowed_errors": allowed_errors,
            "running": running}


def _banner_cell(message: str):
    import nbformat

    cell = nbformat.v4.new_markdown_cell(
        f'<p class="crm-runner-error">This report failed: {_md_text(message)}</p>')
    cell.metadata["tags"] = ["crm-runner-error"]
    return cell


_EXPORTERS: dict[tuple, Any] = {}


def _exporter(with_code: bool):
    key = (with_code,)
    if key not in _EXPORTERS:
        from nbconvert import HTMLExporter
        from traitlets.config import Config

        config = Config()
        # nbconvert's TagRemovePreprocessor (a default preprocessor) honours these tags
        config.TagRemovePreprocessor.enabled = True
        config.TagRemovePreprocessor.remove_cell_tags = {"remove-cell", "remove_cell"}
        config.TagRemovePreprocessor.remove_all_outputs_tags = {"remove-output", "remove_output"}
        exporter = HTMLExporter(config=config, template_name=HTML_TEMPLATE,
                                extra_template_basedirs=[str(TEMPLATES_DIR)])
        if not with_code:
            exporter.exclude_input = True
        exporter.exclude_input_prompt = True
        exporter.exclude_output_prompt = True
        _EXPORTERS[key] = exporter
    return _EXPORTERS[key]


def notebook_to_html(nb, *, with_code: bool = False, title: str | None = None) -> str:
    """One notebook as a self-contained HTML page (no remote scripts).

    ``with_code=False`` is the manager view: no code cells' input and no prompts.
    """
    import copy

    import nbformat

    if isinstance(nb, (str, os.PathLike)):
        nb = nbformat.read(str(nb), as_version=4)
    nb = copy.deepcopy(nb)
    if title:
        nb.metadata["title"] = title
    body, _ = _exporter(with_code).from_notebook_node(nb, resources={"metadata": {"name": title or ""}})
    return body


def _fallback_html(title: str, message: str) -> str:
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='crm-runner-error'>This report failed: {html.escape(message)}</p>"
            "</body></html>")


def execute_report(task: Mapping) -> dict:
    """Execute one report notebook and write its outputs (runs in a worker process).

    ``task`` keys: report, title, input, output_dir, cwd, parameters, timeout_s,
    kernel_name, with_code, results_dir. Never raises for a notebook's own failure: the
    returned dict says ok / skipped / failed with a one-line error.
    """
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from crmlib.results import read_record

    report, title = task["report"], task["title"]
    out_dir = Path(task["output_dir"])
    ipynb = out_dir / f"{report}.ipynb"
    timings: dict[str, float] = {}
    start = time.perf_counter()
    kind, message = None, None
    timeout = task.get("timeout_s") or None
    try:
        for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
            try:
                papermill.execute_notebook(
                    task["input"], str(ipynb), parameters=dict(task["parameters"]),
                    kernel_name=task.get("kernel_name", KERNEL_NAME), progress_bar=False,
                    log_output=False, execution_timeout=timeout, start_timeout=60,
                    cwd=task["cwd"])
                break
            except RuntimeError as exc:
                # Two kernels started at once can be handed the same free TCP port by
                # jupyter_client (it probes ports, then the kernel binds them later); the
                # loser dies before its first reply and no cell has run, so starting it
                # again is safe. Anything else is the report's own failure.
                what = next((w for m, w in _KERNEL_START_FAILURES.items() if m in str(exc)), None)
                if what is None or attempt == KERNEL_START_ATTEMPTS:
                    raise
                print(f"{report}: the kernel {what} (attempt {attempt} of "
                      f"{KERNEL_START_ATTEMPTS}); starting another", file=sys.stderr, flush=True)
                time.sleep(0.2 * attempt + secrets.randbelow(300) / 1000)
    except PapermillExecutionError as exc:
        kind = "error"
        message = f"{exc.ename}: {exc.evalue} (cell In [{exc.exec_count}])"
    except CellTimeoutError:
        kind = "timeout"
    except DeadKernelError:
        kind = "dead"
    except Exception as exc:  # anything else from the execution is this report's failure
        kind = "other"
        message = f"{type(exc).__name__}: {exc}"
    timings["execute_s"] = round(time.perf_counter() - start, 3)

    if ipynb.exists():
        nb = nbformat.read(str(ipynb), as_version=4)
    else:
        nb = nbformat.read(task["input"], as_version=4)
        kind = kind or "other"
        message = message or "papermill wrote no executed notebook"
    seen = inspect_executed(nb)
    try:
        record = read_record(task["results_dir"], report)
    except (OSError, ValueError):
        record = None
    error = seen["error"]
    status, reason = "ok", None
    record_skipped = bool(record and record.get("status") == "skipped")
    if kind == "timeout":
        status = "failed"
        message = (f"cell {seen['running']} ran longer than the {timeout:g} s timeout "
                   "(raise --timeout or make the cell faster)")
    elif kind == "dead":
        status = "failed"
        message = (f"the kernel died while running the cell {seen['running']} "
                   "(out of memory, os._exit or a crash in native code)")
    elif error is not None and error["ename"] in SKIP_ERRORS:
        status = "skipped"
        reason = (record or {}).get("reason") or error["evalue"] or "the report does not apply"
    elif kind == "other":
        status = "failed"
    elif error is not None:
        status = "failed"
        message = f"{error['ename']}: {error['evalue']} (cell {error['cell']})"
    elif seen["unexecuted"]:
        status = "failed"
        message = (f"{len(seen['unexecuted'])} code cell(s) were not executed "
                   f"(first: cell #{seen['unexecuted'][0]})")
    elif kind == "error" and not seen["allowed_errors"]:
        status = "failed"
    elif record_skipped:
        status = "skipped"
        reason = record.get("reason") or "the report does not apply"
    if status == "failed":
        message = _one_line(message or "the report failed")
    # Papermill's red banner belongs to failures only; our own banner covers the failures
    # papermill does not mark (timeout, dead kernel, unexecuted cells).
    if status != "failed" or kind in ("timeout", "dead", "other") or error is None:
        nb.cells = [c for c in nb.cells
                    if "papermill-error-cell-tag" not in (c.get("metadata", {}).get("tags") or [])]
    if status == "failed" and (kind in ("timeout", "dead", "other") or error is None):
        nb.cells.insert(0, _banner_cell(message))
    nbformat.write(nb, str(ipynb))

    start_convert = time.perf_counter()
    html_name, code_name = f"{report}.html", (f"{report}.code.html" if task.get("with_code") else None)
    for name, with_code in ((html_name, False), (code_name, True)):
        if name is None:
            continue
        try:
            page = notebook_to_html(nb, with_code=with_code, title=title)
        except Exception as exc:
            page = None
            if status != "failed":
                status, reason = "failed", None
                message = _one_line(f"HTML conversion failed: {type(exc).__name__}: {exc}")
            page = _fallback_html(title, message or "HTML conversion failed")
        (out_dir / name).write_text(page, encoding="utf-8")
    timings["convert_s"] = round(time.perf_counter() - start_convert, 3)
    timings["total_s"] = round(time.perf_counter() - start, 3)
    return {"report": report, "status": status, "error": message if status == "failed" else None,
            "reason": _one_line(reason) if reason else None, "html": html_name,
            "code_html": code_name, "notebook": ipynb.name, "timings": timings}


def _worker_main(conn, env: Mapping[str, str], parent_pid: int) -> None:
    """A worker process: executes the tasks the runner sends, one at a time.

    Ignores Ctrl-C (the runner decides); SIGTERM unwinds the current execution so the
    kernel is shut down. Exits by itself when the runner disappears.
    """
    os.environ.update({k: v for k, v in env.items() if k != DROP_ENV})
    # the reports read the run's snapshot, never the database: credentials stay out of the
    # kernels' environment (a notebook cell printing os.environ cannot leak them)
    for name in env.get(DROP_ENV, "").split(","):
        os.environ.pop(name, None)
    # Ctrl-C reaches the whole process group: the runner decides, the worker waits for
    # SIGTERM. (A handler, not SIG_IGN: SIG_IGN would be inherited by the kernel.)
    signal.signal(signal.SIGINT, lambda signum, frame: None)

    def on_term(signum, frame):
        raise RunInterrupted("terminated")

    signal.signal(signal.SIGTERM, on_term)

    def watch_parent():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(10)
                os._exit(3)

    threading.Thread(target=watch_parent, daemon=True).start()
    try:
        _worker_loop(conn)
    except RunInterrupted:
        sys.exit(143)  # quietly: the runner asked us to stop (the kernel is shut down)


def _worker_loop(conn) -> None:
    try:
        import nbconvert  # noqa: F401  (warm up before the first task arrives)
        import papermill  # noqa: F401
    except ImportError:
        pass
    saved_out, saved_err = os.dup(1), os.dup(2)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        log = open(task["log"], "ab", buffering=0)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            result = execute_report(task)
        except RunInterrupted:
            raise
        except BaseException as exc:  # a bug in the runner: report it, keep the pack going
            traceback.print_exc()
            result = {"report": task["report"], "status": "failed",
                      "error": _one_line(f"runner error: {type(exc).__name__}: {exc}"),
                      "timings": {}}
        finally:
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            log.close()
        conn.send(result)


class _WorkerPool:
    """``jobs`` worker processes (spawned, each running one kernel at a time)."""

    def __init__(self, jobs: int, env: Mapping[str, str]):
        import multiprocessing

        self.ctx = multiprocessing.get_context("spawn")
        self.jobs = jobs
        self.env = dict(env)
        self.workers: list[dict] = []

    def _start_one(self) -> dict:
        parent_conn, child_conn = self.ctx.Pipe()
        process = self.ctx.Process(target=_worker_main, args=(child_conn, self.env, os.getpid()),
                                   name="crm-reports-worker", daemon=False)
        process.start()
        child_conn.close()
        worker = {"process": process, "conn": parent_conn, "task": None, "started": 0.0}
        self.workers.append(worker)
        return worker

    def start(self, count: int) -> None:
        for _ in range(max(1, min(self.jobs, count))):
            self._start_one()

    def run(self, tasks: Sequence[dict], on_done: Callable[[dict, dict], None]) -> None:
        """Run every task; ``on_done(task, result)`` as each finishes."""
        from multiprocessing.connection import wait

        pending = list(tasks)
        while pending or any(w["task"] is not None for w in self.workers):
            # replace workers that died while idle, so pending tasks always find one
            for worker in [w for w in self.workers if w["task"] is None and not w["process"].is_alive()]:
                self.workers.remove(worker)
                with contextlib.suppress(OSError):
                    worker["conn"].close()
            busy_count = sum(1 for w in self.workers if w["task"] is not None)
            while pending and len(self.workers) < min(self.jobs, busy_count + len(pending)):
                self._start_one()
            for worker in self.workers:
                if worker["task"] is None and pending:
                    task = pending.pop(0)
                    worker["task"], worker["started"] = task, time.perf_counter()
                    try:
                        worker["conn"].send(task)
                    except (OSError, BrokenPipeError):
                        pass  # found dead below through its sentinel
            busy = [w for w in self.workers if w["task"] is not None]
            ready = wait([w["conn"] for w in busy] + [w["process"].sentinel for w in busy],
                         timeout=1.0)
            for worker in busy:
                task = worker["task"]
                result = None
                if worker["conn"] in ready:
                    try:
                        result = worker["conn"].recv()
                    except (EOFError, OSError):
                        result = None
                if result is None and worker["process"].sentinel in ready:
                    worker["process"].join(1)
                    code = worker["process"].exitcode
                    result = {"report": task["report"], "status": "failed",
                              "error": f"the runner's worker process died (exit code {code})",
                              "timings": {"total_s": round(time.perf_counter() - worker["started"], 3)}}
                    self.workers.remove(worker)
                    with contextlib.suppress(OSError):
                        worker["conn"].close()
                if result is not None:
                    worker["task"] = None
                    on_done(task, result)

    def close(self, *, abort: bool = False) -> None:
        """Stop the workers: politely after a run, with SIGTERM (then SIGKILL) on abort."""
        for worker in self.workers:
            process = worker["process"]
            if not process.is_alive():
                continue
            if abort:
                process.terminate()
            else:
                with contextlib.suppress(OSError, BrokenPipeError):
                    worker["conn"].send(None)
        deadline = time.monotonic() + (10.0 if abort else 15.0)
        for worker in self.workers:
            process = worker["process"]
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)
            with contextlib.suppress(OSError):
                worker["conn"].close()
        self.workers = []


#: Environment variables the workers remove: credentials the reports never need.
SECRET_ENV = ("CRM_DB_URL", "CRM_DB_PASSWORD", "CRM_SMTP_PASSWORD", "CRM_SMTP_USER", "PGPASSWORD")
DROP_ENV = "_CRM_DROP_ENV"


def _kernel_env(source: Any = None) -> dict[str, str]:
    """Environment for the workers and their kernels (inherited by the kernel); the
    credential variables (SECRET_ENV, and NAME of an ``env:NAME`` source) are removed."""
    drop = list(SECRET_ENV)
    if isinstance(source, str) and source.startswith("env:"):
        drop.append(source[4:].strip())
    python_path = os.environ.get("PYTHONPATH", "")
    parts = [str(PROJECT_ROOT)] + [p for p in python_path.split(os.pathsep) if p]
    jupyter_path = os.environ.get("JUPYTER_PATH", "")
    jparts = [str(Path(sys.prefix) / "share" / "jupyter")] + [p for p in jupyter_path.split(os.pathsep) if p]
    return {
        # figures must render inline into the executed notebook (Agg would drop every picture)
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(parts)),
        # the venv's kernelspec (python -m ipykernel install --sys-prefix) comes first
        "JUPYTER_PATH": os.pathsep.join(dict.fromkeys(jparts)),
        "JUPYTER_PLATFORM_DIRS": "1",
        # one BLAS thread per kernel: --jobs kernels share the cores; nested threads thrash
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", "1"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        DROP_ENV: ",".join(drop),
    }


# ----------------------------------------------------------------------------------
# Versions, manifest, index
# ----------------------------------------------------------------------------------

def library_versions() -> dict[str, str | None]:
    """Versions of python, the libraries the pack depends on and crmlib."""
    import platform
    from importlib import metadata

    import crmlib

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["crmlib"] = getattr(crmlib, "__version__", None)
    return versions


def build_index(manifest: Mapping) -> str:
    """The weekly summary (report 99): the pack's front page (index.html) from its manifest.

    Everything shown comes from ``manifest``, which carries each report's recorded
    headlines, alerts and verdict; :mod:`crmlib.summary` formats them (changes of rates
    in percentage points) and orders the alerts. Every value is HTML-escaped by jinja2's
    autoescape.
    """
    import jinja2

    from crmlib import summary

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                             autoescape=True, undefined=jinja2.ChainableUndefined)
    env.filters["fmt"] = summary.format_value
    env.filters["change"] = summary.format_change
    env.filters["urlquote"] = lambda value: quote(str(value), safe="/.-_~#")
    params = manifest.get("parameters") or {}
    period = str(params.get("period") or "week")
    reports = list(manifest.get("reports") or [])
    currency = manifest.get("currency")
    verdicts = {r["report"]: summary.report_verdict(r, currency=currency, period=period) for r in reports}
    info_alerts = {r["report"]: [a for a in r.get("alerts") or [] if a.get("severity") not in summary.RAISED]
                   for r in reports}
    period_label = {"week": "This week", "month": "This month", "quarter": "This quarter"}.get(period, "This period")
    return env.get_template(INDEX_TEMPLATE).render(
        m=manifest, alerts=summary.front_page_alerts(reports), verdicts=verdicts, info_alerts=info_alerts,
        period=period, period_label=period_label)


# ----------------------------------------------------------------------------------
# Atomic output
# ----------------------------------------------------------------------------------

def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(out: Path) -> None:
    """Remove staging folders of runs that died hard (SIGKILL); restore an orphaned old pack."""
    for entry in out.iterdir():
        match = STAGING_NAME.match(entry.name)
        if not match or not entry.is_dir() or _pid_alive(int(match["pid"])):
            continue
        target = out / match["as_of"]
        if match["kind"] == "old" and not target.exists():
            with contextlib.suppress(OSError):
                entry.rename(target)
                continue
        shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def _signals_blocked():
    """Hold SIGINT/SIGTERM while the pack is swapped into place (two renames)."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _swap_into_place(staging: Path, target: Path) -> None:
    """Move the finished pack into ``target``; an older pack is removed only afterwards."""
    old = None
    with _signals_blocked():
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            target.rename(old)
        try:
            staging.rename(target)
        except BaseException:
            if old is not None:
                old.rename(target)
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _sigterm_raises():
    """SIGTERM raises RunInterrupted in the main thread, so cleanup code runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise RunInterrupted("terminated by SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------

def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_pack(
    *,
    source: str | os.PathLike | None = None,
    out: str | os.PathLike = DEFAULT_OUT,
    as_of: str | dt.date | None = None,
    only: str | Iterable[str] | None = None,
    jobs: int = 1,
    config: str | os.PathLike | Mapping | None = None,
    with_code: bool = False,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    notebooks_dir: str | os.PathLike | None = None,
    prepare_snapshot: SnapshotBuilder | None = None,
    on_start: Callable[[dict], None] | None = None,
    on_report_done: Callable[[ReportResult, int, int], None] | None = None,
    kernel_name: str = KERNEL_NAME,
    today: dt.date | None = None,
    preset: str | None = None,
) -> RunResult:
    """Run the report pack into ``<out>/<as_of>/`` and return its manifest.

    ``preset`` names a mapping preset (``crmlib/presets/<name>.yaml``, e.g. "salesforce")
    to read the source with; the source folder's own export.yaml is laid over it
    (:func:`crmlib.load.preset_mapping`). It replaces the config's ``mapping:``.

    Raises :class:`~crmlib.errors.CrmError` (exit 2) for bad input or configuration,
    before any notebook runs. A failing report does not raise: it is marked "failed" in
    the manifest and ``RunResult.exit_code`` is 1. KeyboardInterrupt / SIGTERM
    (:class:`RunInterrupted`) stop the workers and leave no staging folder behind.

    ``prepare_snapshot(source, snapshot_dir, *, timezone, mapping, mask_pii, as_of) -> {"fingerprint",
    "meta"}`` builds the data snapshot (default :func:`build_snapshot`, i.e. open_data +
    save). ``on_report_done(result, done, total)`` is called as each report finishes.
    """
    started_at, t0 = _now(), time.perf_counter()
    secret_values = _Secrets()
    load_source, shown_source = resolve_source(source, secret_values)
    prepare = prepare_snapshot or build_snapshot_apart
    staging: Path | None = None
    pool: _WorkerPool | None = None
    aborted = True
    with _sigterm_raises():
        try:
            try:
                if jobs is None or int(jobs) < 1:
                    raise CrmConfigError(f"--jobs {jobs}: give a number of parallel reports, 1 or more")
                jobs = int(jobs)
                if timeout is not None and float(timeout) < 0:
                    raise CrmConfigError(f"--timeout {timeout}: give seconds per cell (0: no limit)")
                timeout = float(timeout) if timeout else None
                run_config = load_config(config)
                mapping = run_config.mapping
                if preset is not None:
                    from crmlib.load import preset_mapping

                    if mapping is not None:
                        raise CrmConfigError(f"--preset {preset} and the config's mapping: {mapping} both "
                                             "say how to read the source; keep one")
                    mapping = preset_mapping(preset, load_source)
                folder = Path(notebooks_dir).resolve() if notebooks_dir is not None else NOTEBOOKS_DIR
                reports = list_reports(folder)
                if not reports:
                    raise CrmConfigError(f"no report notebooks (NN_name.ipynb) in {folder}")
                selected = select_reports(reports, only)
                overrides: dict[str, dict] = {}
                for token, entry in run_config.reports.items():
                    report = _find_report(reports, token,
                                          f"config {run_config.path or ''} reports".strip())
                    overrides.setdefault(report.name, {}).update(entry["params"])

                # the workers import papermill and nbconvert while parameters are checked
                # and the data loads; on a configuration error they are stopped again
                pool = _WorkerPool(jobs, _kernel_env(source))
                pool.start(len(selected))

                as_of = resolve_as_of(as_of, load_source, today=today)
                common = {"source": shown_source, "as_of": as_of}
                placeholders = {"snapshot": "", "results_dir": ""}
                for report in selected:
                    params = {**common, **placeholders, **run_config.params,
                              **overrides.get(report.name, {})}
                    check_parameters(report, params, declared_parameters(report))

                out_dir = Path(out).expanduser()
                if not out_dir.is_absolute():
                    out_dir = Path.cwd() / out_dir
                try:
                    out_dir.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise CrmConfigError(f"--out {out}: cannot create the folder "
                                         f"({exc.strerror or exc})") from None
            except CrmError as exc:
                exc.args = (secret_values.mask(str(exc)),)
                raise
            _clean_stale(out_dir)
            target = out_dir / as_of

            staging = Path(tempfile.mkdtemp(prefix=f".{as_of}.tmp-{os.getpid()}-", dir=out_dir))
            os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private (0700)
            run_dir = staging / "_run"
            snapshot_dir, records_dir, logs_dir = run_dir / "snapshot", run_dir / "records", run_dir / "logs"
            for d in (snapshot_dir, records_dir, logs_dir):
                d.mkdir(parents=True)
            if on_start:
                on_start({"as_of": as_of, "source": shown_source, "reports": [r.name for r in selected],
                          "jobs": jobs, "target": str(target)})

            t_snap = time.perf_counter()
            global_params = run_config.params
            try:
                snap = prepare(load_source, snapshot_dir,
                               timezone=global_params.get("timezone", "UTC"),
                               mapping=mapping,
                               mask_pii=bool(global_params.get("mask_pii", False)), as_of=as_of)
            except CrmError as exc:
                exc.args = (secret_values.mask(str(exc)),)
                raise
            snap = dict(snap or {})
            snapshot_s = round(time.perf_counter() - t_snap, 3)

            tasks = []
            params_by_report = {}
            for report in selected:
                params = {**common, "snapshot": str(snapshot_dir), "results_dir": str(records_dir),
                          **run_config.params, **overrides.get(report.name, {})}
                params_by_report[report.name] = params
                tasks.append({
                    "report": report.name, "title": report.title, "input": str(report.path),
                    "output_dir": str(staging), "cwd": str(report.path.parent), "parameters": params,
                    "timeout_s": timeout, "kernel_name": kernel_name, "with_code": with_code,
                    "results_dir": str(records_dir), "log": str(logs_dir / f"{report.name}.log"),
                })

            by_name = {r.name: r for r in selected}
            results: dict[str, ReportResult] = {}

            def done(task: dict, raw: dict) -> None:
                report = by_name[task["report"]]
                result = _report_result(report, raw, params_by_report[report.name], records_dir,
                                        staging, secret_values)
                results[report.name] = result
                if on_report_done:
                    on_report_done(result, len(results), len(selected))

            t_reports = time.perf_counter()
            pool.run(tasks, done)
            reports_s = round(time.perf_counter() - t_reports, 3)
            pool.close()
            pool = None

            ordered = [results[r.name] for r in selected]
            counts = {s: sum(1 for r in ordered if r.status == s) for s in ("ok", "skipped", "failed")}
            meta = _jsonable(snap.get("meta") or {})
            manifest = {
                "schema_version": 1,
                "as_of": as_of,
                "source": secret_values.mask(shown_source),
                "started_at": started_at,
                "finished_at": _now(),
                "status": "failed" if counts["failed"] else "ok",
                "exit_code": 1 if counts["failed"] else 0,
                "counts": counts,
                "jobs": jobs,
                "timeout_s": timeout,
                "with_code": with_code,
                "kernel": kernel_name,
                "notebooks_dir": str(folder),
                "config": run_config.path,
                "parameters": _jsonable({**common, **run_config.params}),
                "currency": run_config.params.get("currency") or meta.get("currency"),
                "data": {"fingerprint": snap.get("fingerprint"), "meta": meta},
                "results_sha256": run_results_hash({r.report: r.results_sha256 for r in ordered}),
                "versions": library_versions(),
                "timings": {"snapshot_s": snapshot_s, "reports_s": reports_s,
                            "total_s": round(time.perf_counter() - t0, 3)},
                "index": "index.html",
                "run_dir": "_run",
                "reports": [r.to_dict() for r in ordered],
            }
            shutil.rmtree(snapshot_dir, ignore_errors=True)
            for record in records_dir.glob("*.json"):  # written private by mkstemp
                os.chmod(record, 0o666 & ~_umask())
            manifest["timings"]["total_s"] = round(time.perf_counter() - t0, 3)
            (staging / "manifest.json").write_text(
                json.dumps(manifest, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
            (staging / "index.html").write_text(build_index(manifest), encoding="utf-8")
            _scrub_secrets(staging, secret_values)
            _swap_into_place(staging, target)
            aborted = False
            staging = None
        except OSError as exc:  # a full disk, a read-only or vanished output folder, ...
            raise CrmError(secret_values.mask(_output_error(exc, out))) from None
        finally:
            with _signals_blocked():  # a second Ctrl-C must not cut the cleanup short
                if pool is not None:
                    pool.close(abort=aborted)
                if staging is not None:
                    shutil.rmtree(staging, ignore_errors=True)
    return RunResult(manifest=manifest, pack_dir=target, index_path=target / "index.html")


def _output_error(exc: OSError, out: str | os.PathLike) -> str:
    """One line for an I/O failure during a run (the staging folder is removed afterwards)."""
    where = f" ({exc.filename})" if exc.filename else ""
    return (f"cannot write the pack into {out}: {exc.strerror or exc}{where}; no pack was written "
            "and an earlier pack there is unchanged: free some space, check the folder's "
            "permissions or pass another --out")


def _scrub_secrets(folder: Path, secret_values: _Secrets) -> None:
    """Last line of defence: no file of the pack may hold a password read from the
    environment (a notebook printing its connection, a driver's message in a log)."""
    needles = [v.encode("utf-8") for v in secret_values.values if v and len(v) >= 3]
    if not needles:
        return
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        content = path.read_bytes()
        cleaned = content
        for needle in sorted(needles, key=len, reverse=True):
            cleaned = cleaned.replace(needle, b"***")
        if cleaned != content:
            path.write_bytes(cleaned)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


#: Keys of a report's record that may differ between two runs on the same data.
VOLATILE_RECORD_KEYS = frozenset({"timings", "duration_s", "started_at", "finished_at", "path",
                                  "snapshot", "results_dir"})


def results_hash(status: str, record: Mapping | None) -> str:
    """sha256 of what a report concluded: its status and its record (headline numbers,
    alerts, verdict) as canonical JSON (sorted keys, no spaces, UTF-8), without timings
    and paths. Two runs on the same data and as_of give the same hash."""

    def stable(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): stable(v) for k, v in value.items() if k not in VOLATILE_RECORD_KEYS}
        if isinstance(value, (list, tuple)):
            return [stable(v) for v in value]
        return value

    text = json.dumps({"status": status, "record": stable(record or {})}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_results_hash(hashes: Mapping[str, str | None]) -> str:
    """sha256 of every report's results hash, by report name: one hash for the whole run."""
    text = json.dumps(dict(sorted(hashes.items())), separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _report_result(report: Report, raw: Mapping, params: Mapping, records_dir: Path,
                   staging: Path, secret_values: _Secrets) -> ReportResult:
    """Merge a worker's verdict with what the report recorded."""
    from crmlib.results import read_record

    try:
        record = read_record(records_dir, report.name) or {}
    except (OSError, ValueError):
        record = {}
    status = raw.get("status", "failed")
    html_name = raw.get("html")
    if html_name is None or not (staging / html_name).exists():
        html_name = f"{report.name}.html"
        (staging / html_name).write_text(
            _fallback_html(report.title, raw.get("error") or "the report produced no page"),
            encoding="utf-8")
    notebook = raw.get("notebook") if raw.get("notebook") and (staging / raw["notebook"]).exists() else None
    code_html = raw.get("code_html") if raw.get("code_html") and (staging / raw["code_html"]).exists() else None
    error = raw.get("error")
    reason = raw.get("reason")
    timings = dict(raw.get("timings") or {})
    return ReportResult(
        report=report.name, number=report.number, title=report.title, status=status,
        error=secret_values.mask(error) if error else None,
        reason=secret_values.mask(reason) if reason else None,
        html=html_name, code_html=code_html, notebook=notebook,
        duration_s=float(timings.get("total_s", 0.0)), timings=timings,
        parameters=_jsonable(params),
        headlines=_resolve_anchors(record.get("headlines") or [], staging / html_name),
        alerts=_resolve_anchors(record.get("alerts") or [], staging / html_name),
        verdict=secret_values.mask(str(record.get("verdict") or "")),
        results_sha256=results_hash(status, record))


def _norm_anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", str(text).lower())


def _resolve_anchors(items: list, page: Path) -> list:
    """Point each recorded anchor at the id nbconvert gave its heading (case and punctuation
    differ: "which-deals-are-stuck" -> "Which-deals-are-stuck?"); drop anchors that match no
    heading so the front page never links to a missing section."""
    items = [dict(i) for i in items]
    if not any(i.get("anchor") for i in items):
        return items
    try:
        ids = re.findall(r'<h[1-6][^>]*\sid="([^"]+)"', page.read_text(encoding="utf-8"))
    except OSError:
        ids = []
    by_norm = {_norm_anchor(html.unescape(i)): html.unescape(i) for i in ids}
    for item in items:
        if item.get("anchor"):
            item["anchor"] = by_norm.get(_norm_anchor(item["anchor"]), "")
    return items
