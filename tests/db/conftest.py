"""A real PostgreSQL server, a SQLite file and a DuckDB file, each holding the sample.

The server comes from the project's own script (scripts/pg_server.py: it installs Debian's
postgresql package when the binaries are missing, runs initdb in a temporary folder and
serves on a free port of 127.0.0.1). It runs in America/New_York so that PostgreSQL hands
timestamps back with a non-UTC offset. Its password is random, exists only in this process
and in ``CRM_DB_URL`` (set for every test of this folder), and the server is always stopped
and its folder removed at the end of the session.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from crmlib.data import open_data
from crmlib.db import write_database
from helpers import ROOT, SAMPLE

SCRIPT = ROOT / "scripts" / "pg_server.py"
SERVER_TIMEZONE = "America/New_York"
SAMPLE_MAPPING = SAMPLE / "export.yaml"  # the sample's settings: timezone, currency, extracted_at
URL_VARIABLE = "CRM_DB_URL"


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    database: str
    password: str

    @property
    def url(self) -> str:
        """The URL with the password: only ever put into the environment."""
        return (f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/"
                f"{self.database}")


def _script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    # starting may run apt-get install on a machine without PostgreSQL: allow for it
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=900, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def pg_server():
    """A running PostgreSQL server with an empty database ``crm``; stopped and removed after."""
    folder = Path(tempfile.mkdtemp(prefix="crm-pg-"))
    password = f"pw-{secrets.token_hex(12)}"
    try:
        started = _script("start", str(folder), "--timezone", SERVER_TIMEZONE,
                          env=dict(os.environ, PGPASSWORD=password))
        assert started.returncode == 0, started.stderr
        info = json.loads(started.stdout.strip().splitlines()[-1])
        assert password not in started.stdout + started.stderr
        yield PgServer(info["host"], int(info["port"]), info["user"], info["database"], password)
    finally:
        stopped = _script("stop", str(folder))
        assert stopped.returncode == 0, stopped.stderr
        assert not folder.exists()


@pytest.fixture(autouse=True)
def _database_url(request, monkeypatch):
    """``CRM_DB_URL`` for the tests that use the server (the password lives only there)."""
    if "pg_server" in request.fixturenames:
        server = request.getfixturevalue("pg_server")
        monkeypatch.setenv(URL_VARIABLE, server.url)
        monkeypatch.delenv("CRM_DB_PASSWORD", raising=False)


@pytest.fixture(scope="session")
def databases(pg_server, tmp_path_factory) -> dict[str, str]:
    """The sample written once into each database: name -> the source a user passes."""
    folder = tmp_path_factory.mktemp("databases")
    sources = {"postgresql": f"env:{URL_VARIABLE}", "sqlite": str(folder / "crm.sqlite"),
               "duckdb": str(folder / "crm.duckdb")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(URL_VARIABLE, pg_server.url)
        for source in sources.values():
            write_database(SAMPLE, source)
    return sources


@pytest.fixture(scope="session")
def csv_sample():
    """The committed sample read from its CSV files, the reference every database must match."""
    return open_data(SAMPLE)


@pytest.fixture(scope="session")
def loaded(databases, pg_server):
    """Each database read and audited once, with the sample's settings."""
    cache: dict = {}

    def load(name: str):
        if name not in cache:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv(URL_VARIABLE, pg_server.url)
                cache[name] = open_data(databases[name], mapping=SAMPLE_MAPPING)
        return cache[name]

    return load
