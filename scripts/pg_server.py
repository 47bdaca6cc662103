#!/usr/bin/env python3
"""A throwaway PostgreSQL server in a folder, for the tests and for trying the pack on a database.

    PGPASSWORD=... python3 scripts/pg_server.py start DIR [--timezone TZ]
    python3 scripts/pg_server.py stop DIR

``start`` installs Debian's ``postgresql`` package (``apt-get update && apt-get install -y
postgresql``) only when ``initdb``/``pg_ctl`` are found neither on PATH nor under
``/usr/lib/postgresql/*/bin``; creates a cluster in ``DIR/data`` whose superuser ``crm`` has
the password in ``PGPASSWORD`` (password authentication on every connection); starts it on a
free port of 127.0.0.1 (its unix socket in DIR, nothing else listening); creates the database
``crm``; and prints one JSON line: host, port, user, database, socket_dir. The password is
read from the environment only and is never printed or left on disk.

``stop`` stops the server (if it runs) and removes DIR. initdb refuses to run as root, so
as root the server runs as the unprivileged ``postgres`` user that Debian's package creates
(DIR is handed to that user, its parent folders must let it pass).

Standard library only: the script runs with any python3, inside or outside the project's
environment. Exit 0 on success, 2 with one line on stderr otherwise.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

USER = "crm"  # the superuser role the tests connect as
DATABASE = "crm"
SYSTEM_USER = "postgres"  # who runs the server when we are root
HOST = "127.0.0.1"
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it


class ServerError(Exception):
    """A failure of this script, shown as one line."""


# ---------------------------------------------------------------- finding the binaries
def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, then the newest Debian version."""
    on_path = [shutil.which(name) for name in ("initdb", "pg_ctl")]
    if all(on_path):
        return Path(os.path.realpath(on_path[0])).parent
    candidates = [Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin")
                  if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists()]

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in path.parent.name.split(".") if part.isdigit())

    return max(candidates, key=version) if candidates else None


def ensure_postgres() -> Path:
    """The binaries' folder, installing Debian's postgresql package first when they are missing."""
    found = find_bin_dir()
    if found is not None:
        return found
    if shutil.which("apt-get") is None:
        raise ServerError("initdb/pg_ctl not found and apt-get is not available: install "
                          "PostgreSQL (the server binaries) and put them on PATH")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            last = (done.stdout.strip().splitlines() or ["no output"])[-1]
            raise ServerError(f"{' '.join(command)} failed ({last})")
    found = find_bin_dir()
    if found is None:
        raise ServerError("apt-get installed postgresql but initdb/pg_ctl are still not found")
    return found


# ---------------------------------------------------------------- running as the server's user
def server_user() -> str | None:
    """The user the server runs as: None for the current user, ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise ServerError(f"running as root needs the unprivileged user {SYSTEM_USER!r} "
                          "(Debian's postgresql package creates it); initdb refuses root") from None
    return SYSTEM_USER


def as_server_user(command: list[str], user: str | None) -> list[str]:
    """``command`` run as ``user`` (runuser, else su), or unchanged for the current user."""
    if user is None:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *command]
    import shlex

    return ["su", "-s", "/bin/sh", user, "-c", shlex.join(command)]


def run(command: list[str], *, cwd: Path, env: dict | None = None, what: str) -> None:
    """Run a command; on failure raise a one-line error quoting its last line of output."""
    done = subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        last = (done.stdout.strip().splitlines() or ["no output"])[-1]
        raise ServerError(f"{what} failed ({last})")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- start / stop
def start(folder: Path, *, timezone: str) -> dict:
    """Create, start and fill in a cluster in ``folder``; return how to reach it (no password)."""
    password = os.environ.get("PGPASSWORD", "")
    if not password:
        raise ServerError("set PGPASSWORD to the password the role crm should get")
    bin_dir = ensure_postgres()
    user = server_user()
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise ServerError(f"{folder} is not empty; give a new or empty folder")
    folder = folder.resolve()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    os.chmod(folder, 0o700)
    if user is not None and subprocess.run(as_server_user(["test", "-w", str(folder)], user),
                                           cwd="/", stdin=subprocess.DEVNULL).returncode != 0:
        raise ServerError(f"the user {user} cannot reach {folder}; give a folder whose parents "
                          "it may pass through (e.g. in the system temporary folder)")
    data = folder / "data"

    # the password reaches initdb through a private file that is removed right away
    fd, pwfile = tempfile.mkstemp(dir=folder, prefix=".pw-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(password + "\n")
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        run(as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", USER,
                            f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                            "--locale=C", "--no-instructions"], user),
            cwd=folder, what="initdb")
    finally:
        os.unlink(pwfile)

    options = (f"-c listen_addresses={HOST} -c unix_socket_directories={folder} "
               f"-c timezone={timezone} -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off")
    port, error = None, None
    for _ in range(START_ATTEMPTS):
        candidate = free_port()
        try:
            run(as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l",
                                str(folder / "server.log"), "-w", "-t", "60", "-o",
                                f"-p {candidate} {options}", "start"], user),
                cwd=folder, what="pg_ctl start")
            port = candidate
            break
        except ServerError as exc:  # most likely the port was taken meanwhile
            error = exc
    if port is None:
        raise ServerError(f"{error}; see {folder / 'server.log'}")

    createdb = bin_dir / "createdb"
    env = dict(os.environ, PGPASSWORD=password)
    run([str(createdb), "-h", HOST, "-p", str(port), "-U", USER, DATABASE],
        cwd=folder, env=env, what="createdb")
    return {"host": HOST, "port": port, "user": USER, "database": DATABASE,
            "socket_dir": str(folder)}


def stop(folder: Path) -> None:
    """Stop the server of ``folder`` if it runs, then remove ``folder``."""
    folder = folder.resolve()
    data = folder / "data"
    if (data / "postmaster.pid").exists():
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise ServerError("pg_ctl not found: cannot stop the server")
        owner = pwd.getpwuid(data.stat().st_uid).pw_name if os.geteuid() == 0 else None
        run(as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                            "stop"], owner), cwd=Path("/"), what="pg_ctl stop")
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start or stop a throwaway PostgreSQL server.")
    sub = parser.add_subparsers(dest="command", required=True)
    start_cmd = sub.add_parser("start", help="create and start a server in DIR (PGPASSWORD set)")
    start_cmd.add_argument("dir", type=Path)
    start_cmd.add_argument("--timezone", default="UTC", help="the server's TimeZone (default UTC)")
    stop_cmd = sub.add_parser("stop", help="stop the server of DIR and remove DIR")
    stop_cmd.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            print(json.dumps(start(args.dir, timezone=args.timezone)), flush=True)
        else:
            stop(args.dir)
    except ServerError as exc:
        print(f"pg_server: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
