"""Headless Chromium for the pack: find or install the browser, open pages offline, print PDF.

``crm-reports run --pdf`` prints ``index.html`` and every report page of a pack into one
``pack.pdf``; the browser tests open the same pages. Both drive the system's Chromium
(Debian's ``chromium`` package) through Playwright's Python package with
``executable_path`` (Playwright's own browser download is not used), with the network
cut off for every page: the context is offline and every request that is not a local
file is aborted and remembered, so a page that tries to load anything remote is caught.

Finding the browser: the environment variable ``CRM_CHROMIUM`` names the binary, else
the first of ``chromium``, ``chromium-browser``, ``google-chrome`` on PATH. When none is
found, :func:`ensure_chromium` with ``install=True`` runs the project's own
``scripts/install_chromium.sh`` (apt-get, as root), which then prints the binary's path.

    >>> from crmlib.browser import write_pack_pdf
    >>> write_pack_pdf("reports_out/2024-06-30", install=True)  # doctest: +SKIP
    PackPdf(path=PosixPath('reports_out/2024-06-30/pack.pdf'), pages=41, documents=14)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmlib.errors import CrmError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = PROJECT_ROOT / "scripts" / "install_chromium.sh"
ENV_VAR = "CRM_CHROMIUM"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Flags for a headless Chromium run as root on a machine without network. Without the
#: background-networking flags Chromium keeps opening connections that a closed network
#: refuses; the resolver rule makes every host name unresolvable for the pages.
LAUNCH_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
PDF_NAME = "pack.pdf"
#: Paper and margins of the printed pack.
PDF_OPTIONS: Mapping[str, Any] = {
    "format": "A4", "print_background": True,
    "margin": {"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"},
}
INSTALL_TIMEOUT_S = 900


class BrowserError(CrmError):
    """No usable browser, or the browser failed; the pack itself is unaffected (exit 1)."""

    exit_code = 1


# ----------------------------------------------------------------------------------
# Finding and installing Chromium
# ----------------------------------------------------------------------------------

def find_chromium(environ: Mapping[str, str] | None = None) -> Path | None:
    """The Chromium binary to use: ``$CRM_CHROMIUM``, else the first browser on PATH, else None.

    A ``CRM_CHROMIUM`` that is not an executable file raises :class:`BrowserError` (a
    user's setting is never silently replaced by another browser).
    """
    env = os.environ if environ is None else environ
    override = env.get(ENV_VAR, "").strip()
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrowserError(f"{ENV_VAR}={override} is not an executable file: point it at "
                               "the Chromium binary or unset it")
        return path
    for name in BROWSER_NAMES:
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return Path(found)
    return None


def install_hint() -> str:
    """One sentence saying how to get a browser when none is found."""
    if INSTALL_SCRIPT.is_file():
        return (f"run bash {INSTALL_SCRIPT} (as root; it installs Debian's chromium package) "
                f"or set {ENV_VAR} to a Chromium binary")
    return (f"install Chromium (Debian/Ubuntu: apt-get install chromium) or set {ENV_VAR} "
            "to a Chromium binary")


def ensure_chromium(*, install: bool = False, environ: Mapping[str, str] | None = None) -> Path:
    """The Chromium binary; when none is found and ``install`` is true, install it first.

    Installing runs the project's ``scripts/install_chromium.sh`` (its apt-get output goes
    to stderr). Raises :class:`BrowserError` with one line saying what to do when there is
    no browser and it cannot be installed.
    """
    found = find_chromium(environ)
    if found is not None:
        return found
    if not install:
        raise BrowserError(f"no Chromium browser found: {install_hint()}")
    if not INSTALL_SCRIPT.is_file():
        raise BrowserError(f"no Chromium browser found and no install script beside this copy "
                           f"of crmlib: {install_hint()}")
    env = dict(os.environ if environ is None else environ)
    try:
        done = subprocess.run([shutil.which("bash") or "bash", str(INSTALL_SCRIPT)],
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
                              timeout=INSTALL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrowserError(f"no Chromium browser found and {INSTALL_SCRIPT.name} did not finish "
                           f"({exc}): {install_hint()}") from None
    if done.returncode != 0:
        raise BrowserError(f"no Chromium browser found and {INSTALL_SCRIPT.name} failed "
                           f"(exit {done.returncode}; see its message above): {install_hint()}")
    found = find_chromium(environ)
    if found is None:
        lines = done.stdout.strip().splitlines()
        candidate = Path(lines[-1]) if lines else None
        if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
        raise BrowserError(f"{INSTALL_SCRIPT.name} ran but no Chromium binary was found "
                           f"afterwards: {install_hint()}")
    return found


# ----------------------------------------------------------------------------------
# Opening pages offline
# ----------------------------------------------------------------------------------

@dataclass
class PageLog:
    """What a page reported while it was open: console errors, script errors, remote requests."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # remote URLs the page asked for

    @property
    def problems(self) -> list[str]:
        """Every console error, script error and blocked remote request, as text."""
        return ([f"console error: {m}" for m in self.console_errors]
                + [f"script error: {m}" for m in self.page_errors]
                + [f"remote request blocked: {u}" for u in self.blocked])


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserError("driving Chromium needs the Python package playwright: "
                           "pip install 'crmlib[pdf]' (Playwright's own browser download is "
                           "not needed)") from None
    return sync_playwright


@contextlib.contextmanager
def chromium_browser(executable: str | os.PathLike | None = None, *, install: bool = False
                     ) -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``) launched with :data:`LAUNCH_ARGS`.

    ``executable`` defaults to :func:`ensure_chromium` (``install`` passed on). Playwright
    gives the browser a new, empty profile folder and removes it afterwards.
    """
    sync_playwright = _playwright()
    binary = Path(executable) if executable is not None else ensure_chromium(install=install)
    with contextlib.ExitStack() as stack:
        try:
            pw = stack.enter_context(sync_playwright())
            browser = pw.chromium.launch(executable_path=str(binary), args=list(LAUNCH_ARGS),
                                         chromium_sandbox=False, headless=True)
        except Exception as exc:  # playwright's Error: a broken or incompatible binary
            raise BrowserError(f"Chromium at {binary} did not start: {_first_line(exc)}") from None
        stack.callback(browser.close)
        yield browser


def offline_page(browser: Any, *, width: int = 1280, height: int = 900) -> tuple[Any, PageLog]:
    """A new page in its own offline context, and the log it fills while it is used.

    Every request that is not a local file is aborted and its URL kept in
    ``log.blocked``; console messages of type error and uncaught script errors are kept too.
    """
    context = browser.new_context(offline=True, viewport={"width": width, "height": height},
                                  device_scale_factor=1, java_script_enabled=True)
    log = PageLog()

    def route(route_: Any) -> None:
        url = route_.request.url
        if url.startswith(LOCAL_SCHEMES):
            route_.continue_()
        else:
            log.blocked.append(url)
            route_.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda msg: log.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: log.page_errors.append(str(exc)))
    return page, log


# ----------------------------------------------------------------------------------
# The pack as one PDF
# ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PackPdf:
    """Where the pack's PDF was written, its page count and how many pages went into it."""

    path: Path
    pages: int
    documents: int


def pack_pages(pack_dir: str | os.PathLike) -> list[Path]:
    """The pages of a pack in reading order: ``index.html``, then each report's page in the
    order of the manifest (the index's order)."""
    pack = Path(pack_dir)
    manifest_path = pack / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BrowserError(f"{manifest_path} cannot be read ({exc}): is {pack} a report pack?") from None
    pages = [pack / manifest.get("index", "index.html")]
    pages += [pack / r["html"] for r in manifest.get("reports", []) if r.get("html")]
    missing = [p.name for p in pages if not p.is_file()]
    if missing:
        raise BrowserError(f"the pack in {pack} lacks {', '.join(missing)}")
    return pages


def print_pages(browser: Any, pages: list[Path]) -> list[tuple[str, bytes]]:
    """Each page printed to PDF (A4, backgrounds on) by the browser, offline, with its
    title (the page's ``<title>``, else its file name)."""
    documents = []
    for page_path in pages:
        page, _ = offline_page(browser)
        try:
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            documents.append((page.title().strip() or page_path.stem, page.pdf(**PDF_OPTIONS)))
        finally:
            page.context.close()
    return documents


def merge_pdfs(documents: Sequence[tuple[str, bytes]], target: Path) -> int:
    """Concatenate PDF documents into ``target`` (written atomically), one bookmark per
    document at its first page; returns the page count."""
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    for title, document in documents:
        writer.append(io.BytesIO(document), outline_item=title)
    writer.page_mode = "/UseOutlines"
    pages = len(writer.pages)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            writer.write(handle)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return pages


def write_pack_pdf(pack_dir: str | os.PathLike, *, install: bool = False,
                   executable: str | os.PathLike | None = None, browser: Any = None) -> PackPdf:
    """Print ``index.html`` and every report page of a pack, in index order, into
    ``<pack>/pack.pdf`` with headless Chromium.

    ``install``: install Chromium with the project's script when none is found.
    ``browser``: a running Playwright ``Browser`` to use instead of launching one (one
    process can run only one Playwright at a time).
    Raises :class:`BrowserError` (one line) when there is no browser or it fails; the
    pack's other files are never touched.
    """
    try:
        import pypdf  # noqa: F401  (checked before the browser starts)
    except ImportError:
        raise BrowserError("writing the PDF needs the Python package pypdf: "
                           "pip install 'crmlib[pdf]'") from None
    pack = Path(pack_dir)
    pages = pack_pages(pack)
    with contextlib.ExitStack() as stack:
        if browser is None:
            browser = stack.enter_context(chromium_browser(executable, install=install))
        try:
            documents = print_pages(browser, pages)
        except Exception as exc:  # playwright's Error or TimeoutError while printing
            raise BrowserError(f"printing the pack to PDF failed: {_first_line(exc)}") from None
    target = pack / PDF_NAME
    return PackPdf(path=target, pages=merge_pdfs(documents, target), documents=len(documents))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = ["BrowserError", "PackPdf", "PageLog", "LAUNCH_ARGS", "INSTALL_SCRIPT", "chromium_browser",
           "ensure_chromium", "find_chromium", "install_hint", "merge_pdfs", "offline_page",
           "pack_pages", "print_pages", "write_pack_pdf"]
