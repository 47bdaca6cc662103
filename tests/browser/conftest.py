"""Fixtures of the browser tests: Debian's Chromium, installed by the project's own script
(scripts/install_chromium.sh) when it is missing, driven offline by Playwright."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crmlib.browser import chromium_browser, ensure_chromium


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """The Chromium binary; the first run on a fresh machine installs it (apt-get, ~1 min)."""
    return ensure_chromium(install=True)


@pytest.fixture(scope="module")
def browser(chromium_path):
    """One headless Chromium per test module (each page gets its own offline context).

    Module scope, not session: while it runs, this process cannot start another Playwright
    (crmlib.browser.write_pack_pdf without ``browser=``), so it must not outlive the module."""
    with chromium_browser(chromium_path) as running:
        yield running


@pytest.fixture(scope="session")
def screenshot_dirs(tmp_path_factory) -> list[Path]:
    """Where screenshots go: a folder under pytest's tmp path, and $CRM_SCREENSHOTS_DIR when set."""
    dirs = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("CRM_SCREENSHOTS_DIR"):
        extra = Path(os.environ["CRM_SCREENSHOTS_DIR"]).expanduser()
        extra.mkdir(parents=True, exist_ok=True)
        dirs.append(extra)
    return dirs
