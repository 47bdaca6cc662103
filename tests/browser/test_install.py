"""Finding Chromium and installing it with scripts/install_chromium.sh (apt-get faked here:
a stand-in apt-get records its arguments and "installs" a stand-in chromium)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from crmlib import browser
from crmlib.browser import BrowserError, ensure_chromium, find_chromium

SCRIPT = browser.INSTALL_SCRIPT
BASH = shutil.which("bash")


def _executable(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_system(tmp_path):
    """A PATH with no browser, an ``id`` that says root and an apt-get that logs its calls
    and, on ``install``, creates ``chromium`` in the same folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    _executable(bin_dir / "id", "#!/bin/sh\necho 0\n")
    _executable(bin_dir / "apt-get", f"""#!/bin/sh
echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> "{log}"
case "$1" in
  install) printf '#!/bin/sh\\necho Chromium 1.0\\n' > "{bin_dir}/chromium"
           {shutil.which("chmod")} +x "{bin_dir}/chromium" ;;
esac
""")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return bin_dir, log, env


def _script(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([BASH, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)


def test_the_script_installs_chromium_with_apt_get_only_when_it_is_missing(fake_system):
    bin_dir, log, env = fake_system
    first = _script(env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().splitlines()[-1] == str(bin_dir / "chromium")
    calls = log.read_text().splitlines()
    assert calls[0] == "DEBIAN_FRONTEND=noninteractive update -q"
    assert calls[1].startswith("DEBIAN_FRONTEND=noninteractive install -y") and " chromium" in calls[1]

    again = _script(env)  # idempotent: the browser is there, apt-get is not called again
    assert again.returncode == 0 and again.stdout.strip() == str(bin_dir / "chromium")
    assert log.read_text().splitlines() == calls


def test_the_script_without_apt_get_says_what_to_do(fake_system):
    bin_dir, log, env = fake_system
    (bin_dir / "apt-get").unlink()
    done = _script(env)
    assert done.returncode == 1 and done.stdout == ""
    assert "no apt-get" in done.stderr and "CRM_CHROMIUM" in done.stderr


def test_ensure_chromium_runs_the_project_script_when_the_browser_is_missing(fake_system):
    bin_dir, log, env = fake_system
    with pytest.raises(BrowserError, match="install_chromium.sh"):
        ensure_chromium(install=False, environ=env)  # not allowed to install: one line saying how
    assert not log.exists()
    assert ensure_chromium(install=True, environ=env) == bin_dir / "chromium"
    assert "install -y" in log.read_text()


def test_crm_chromium_names_the_browser_and_a_wrong_one_is_an_error(tmp_path):
    own = _executable(tmp_path / "my-chrome", "#!/bin/sh\n")
    assert find_chromium({"CRM_CHROMIUM": str(own), "PATH": ""}) == own
    with pytest.raises(BrowserError, match="CRM_CHROMIUM=.*not an executable"):
        find_chromium({"CRM_CHROMIUM": str(tmp_path / "missing"), "PATH": os.environ["PATH"]})


def test_without_the_script_the_message_says_how_to_install(fake_system, monkeypatch, tmp_path):
    _, _, env = fake_system
    monkeypatch.setattr(browser, "INSTALL_SCRIPT", tmp_path / "not-shipped" / "install_chromium.sh")
    with pytest.raises(BrowserError) as error:
        ensure_chromium(install=True, environ=env)
    message = str(error.value)
    assert "\n" not in message and "apt-get install chromium" in message and "CRM_CHROMIUM" in message
