"""The README's scheduling recipes (cron, systemd service + timer, Airflow DAG, GitHub Actions)
are valid: their syntax parses, their schedule is Monday 06:00, and every ``crm-reports``
command line in them is accepted by the real argument parser."""

import configparser
import datetime as dt
import re
import shlex
import shutil
import subprocess
import sys
import types

import jinja2
import pytest
import yaml
from cronsim import CronSim

from crmlib.cli import build_parser
from tests.helpers import ROOT

RECIPE = re.compile(r"<!-- recipe: (?P<name>[\w-]+) -->\n```\w*\n(?P<body>.*?)\n```", re.S)
SUNDAY_NOON = dt.datetime(2026, 9, 27, 12, 0)
MONDAY_SIX = dt.datetime(2026, 9, 28, 6, 0)


@pytest.fixture(scope="module")
def recipes() -> dict[str, str]:
    found = {m["name"]: m["body"] for m in RECIPE.finditer((ROOT / "README.md").read_text(encoding="utf-8"))}
    assert set(found) == {"cron", "systemd-service", "systemd-timer", "airflow", "github-actions"}
    return found


def _crm_args(command: str) -> list[str]:
    """The arguments of the crm-reports call inside a shell command line."""
    tokens = shlex.split(command, comments=False)
    start = next(i for i, t in enumerate(tokens) if t.endswith("crm-reports"))
    args = []
    for token in tokens[start + 1:]:
        if token in ("&&", "||", ";", "|", ">>", ">", "2>&1"):
            break
        args.append(token)
    return args


def _parses(args: list[str]) -> None:
    parsed = build_parser().parse_args(args)  # argparse exits (code 2) on a mistake
    assert parsed.command == "run"


def _next_run(expr: str) -> dt.datetime:
    return next(CronSim(expr, SUNDAY_NOON))


def test_cron_line(recipes):
    line = next(x for x in recipes["cron"].splitlines() if x.strip() and not x.startswith("#"))
    fields = line.split(None, 5)
    assert _next_run(" ".join(fields[:5])) == MONDAY_SIX
    command = fields[5]
    subprocess.run(["sh", "-n", "-c", command], check=True)  # cron runs it with /bin/sh
    _parses(_crm_args(command))


def _unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, comment_prefixes=("#", ";"))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(text)
    return parser


def test_systemd_service_and_timer(recipes):
    service = _unit(recipes["systemd-service"])
    assert service["Service"]["Type"] == "oneshot"
    exec_start = service["Service"]["ExecStart"]
    assert exec_start.startswith("/")  # systemd needs an absolute path
    assert service["Service"]["EnvironmentFile"].startswith("/")
    _parses(_crm_args(exec_start))
    timer = _unit(recipes["systemd-timer"])
    assert timer["Install"]["WantedBy"] == "timers.target"
    on_calendar = timer["Timer"]["OnCalendar"]
    assert re.fullmatch(r"Mon \*-\*-\* 06:00:00", on_calendar)
    if shutil.which("systemd-analyze"):  # the real parser, where systemd is installed
        out = subprocess.run(["systemd-analyze", "calendar", on_calendar], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


def test_airflow_dag_builds_with_its_operators_and_renders_a_valid_command(recipes, monkeypatch):
    """Airflow itself is not installed for the tests (hundreds of MB): minimal stand-ins of the
    two imported names record what the DAG file builds; the command template is rendered with
    Airflow's ``ds`` filter and ``macros.ds_add`` semantics."""
    built = {}

    class DAG:
        def __init__(self, **kwargs):
            built["dag"] = kwargs

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class BashOperator:
        def __init__(self, **kwargs):
            built.setdefault("tasks", []).append(kwargs)

    airflow = types.ModuleType("airflow")
    airflow.DAG = DAG
    bash = types.ModuleType("airflow.operators.bash")
    bash.BashOperator = BashOperator
    pendulum = types.ModuleType("pendulum")
    pendulum.datetime = lambda *a, **k: dt.datetime(*a)
    for name, module in {"airflow": airflow, "airflow.operators": types.ModuleType("airflow.operators"),
                         "airflow.operators.bash": bash, "pendulum": pendulum}.items():
        monkeypatch.setitem(sys.modules, name, module)
    exec(compile(recipes["airflow"], "crm_weekly.py", "exec"), {})  # noqa: S102 (our own README)

    assert built["dag"]["dag_id"] == "crm_weekly_pack" and built["dag"]["catchup"] is False
    assert _next_run(built["dag"]["schedule"]) == MONDAY_SIX
    (task,) = built["tasks"]
    assert "env" not in task  # secrets never in a templated field
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["ds"] = lambda value: value.strftime("%Y-%m-%d")
    macros = types.SimpleNamespace(ds_add=lambda ds, days: (dt.date.fromisoformat(ds)
                                                            + dt.timedelta(days=days)).isoformat())
    command = env.from_string(task["bash_command"]).render(data_interval_end=MONDAY_SIX, macros=macros)
    args = _crm_args(command)
    _parses(args)
    assert args[args.index("--as-of") + 1] == "2026-09-27"  # the Sunday ending the reported week


def test_github_actions_schedule(recipes):
    workflow = yaml.safe_load(recipes["github-actions"])
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert _next_run(triggers["schedule"][0]["cron"]) == MONDAY_SIX
    steps = workflow["jobs"]["pack"]["steps"]
    runs = [line for step in steps for line in str(step.get("run", "")).splitlines() if line.strip()]
    assert runs[0] == "make install"
    assert subprocess.run(["make", "-n", "install"], cwd=ROOT, capture_output=True).returncode == 0
    _parses(_crm_args(next(line for line in runs if "crm-reports" in line)))
    assert "${{ secrets.CRM_DB_URL }}" in recipes["github-actions"]  # from the repository's secrets
