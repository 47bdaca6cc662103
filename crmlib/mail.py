"""Send a pack's weekly summary by email: the front page as the HTML body, the PDF attached.

SMTP settings come from the environment only (never from the command line, a config file
or a notebook parameter), so no password is ever written into a pack, a log or a shell
history:

    CRM_SMTP_HOST       server name (required)
    CRM_SMTP_PORT       port (default 587; 465 means implicit TLS)
    CRM_SMTP_SECURITY   starttls | ssl | none (default: ssl on port 465, else starttls)
    CRM_SMTP_USER       login name (optional: no login when empty)
    CRM_SMTP_PASSWORD   its password (optional)
    CRM_SMTP_FROM       the sender address (default: CRM_SMTP_USER)
    CRM_PACK_URL        where the packs are published (optional), e.g.
                        https://intranet.example.com/crm-packs : the links of the front
                        page then point to <CRM_PACK_URL>/<as_of>/...

Sending twice is guarded: every sent message is noted in ``<out>/sent.json`` (outside
the packs, so re-running the week, which replaces the pack, keeps the note). A second run
for the same as_of and recipients sends nothing unless asked (``resend=True``).
A failed send raises :class:`MailError` and leaves the pack and the ledger untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from .errors import CrmConfigError, CrmError

__all__ = ["MailError", "SmtpSettings", "build_message", "send_summary", "LEDGER"]

LEDGER = "sent.json"
ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")


class MailError(CrmError):
    """The summary could not be sent (exit 1: the pack itself is fine)."""

    exit_code = 1


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send, read from the environment (see the module docstring)."""

    host: str
    port: int
    security: str
    user: str | None
    password: str | None
    sender: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "SmtpSettings":
        env = os.environ if env is None else env
        host = (env.get("CRM_SMTP_HOST") or "").strip()
        if not host:
            raise CrmConfigError("--mail-to needs the SMTP server in the environment: set CRM_SMTP_HOST "
                                 "(and CRM_SMTP_PORT, CRM_SMTP_USER, CRM_SMTP_PASSWORD, CRM_SMTP_FROM as needed)")
        raw_port = (env.get("CRM_SMTP_PORT") or "587").strip()
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise CrmConfigError(f"CRM_SMTP_PORT={raw_port!r}: give a port number (e.g. 587)")
        port = int(raw_port)
        security = (env.get("CRM_SMTP_SECURITY") or ("ssl" if port == 465 else "starttls")).strip().lower()
        if security not in ("starttls", "ssl", "none"):
            raise CrmConfigError(f"CRM_SMTP_SECURITY={security!r}: use starttls, ssl or none")
        user = (env.get("CRM_SMTP_USER") or "").strip() or None
        sender = (env.get("CRM_SMTP_FROM") or user or "").strip()
        if not ADDRESS.match(sender):
            raise CrmConfigError("set CRM_SMTP_FROM to the sender's email address")
        return cls(host, port, security, user, env.get("CRM_SMTP_PASSWORD") or None, sender)


def parse_recipients(values: Sequence[str]) -> list[str]:
    """Addresses from ``--mail-to`` values (repeatable, comma separated), checked and de-duplicated."""
    out: list[str] = []
    for value in values:
        for part in str(value).split(","):
            address = part.strip()
            if not address:
                continue
            if not ADDRESS.match(address):
                raise CrmConfigError(f"--mail-to {address!r}: not an email address")
            if address.lower() not in (a.lower() for a in out):
                out.append(address)
    if not out:
        raise CrmConfigError("--mail-to: give at least one email address")
    return out


def _body_html(index_html: str, base_url: str | None) -> str:
    """The front page as an email body: with ``base_url`` its relative links become absolute."""
    if not base_url:
        return index_html
    base = f'<base href="{base_url.rstrip("/")}/">'
    return re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + base, index_html, count=1)


def build_message(pack_dir: Path, manifest: Mapping, recipients: Sequence[str], sender: str, *,
                  pdf: Path | None = None, pack_url: str | None = None, note: str = "") -> EmailMessage:
    """The email: subject with as_of and the number of alerts, a plain-text part, the front page
    (index.html) as the HTML part, and the pack's PDF attached when given."""
    from .summary import RAISED, front_page_alerts

    as_of = manifest.get("as_of", "")
    alerts = front_page_alerts(manifest.get("reports") or [], raised=RAISED)
    counts = manifest.get("counts") or {}
    msg = EmailMessage()
    msg["Subject"] = (f"CRM weekly summary as of {as_of}: "
                      f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
                      + (f", {counts.get('failed')} report(s) failed" if counts.get("failed") else ""))
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    base_url = f"{pack_url.rstrip('/')}/{as_of}" if pack_url else None
    lines = [f"CRM weekly summary as of {as_of}", ""]
    lines += [f"- {a.message} ({a.title})" for a in alerts] or ["No alerts."]
    lines += ["", f"The pack: {base_url}/index.html" if base_url else "The pack is attached as a PDF."]
    if note:
        lines += ["", note]
    msg.set_content("\n".join(lines))
    msg.add_alternative(_body_html((pack_dir / "index.html").read_text(encoding="utf-8"), base_url),
                        subtype="html")
    if pdf is not None:
        msg.add_attachment(Path(pdf).read_bytes(), maintype="application", subtype="pdf",
                           filename=f"crm-pack-{as_of}.pdf")
    return msg


def _ledger(out_dir: Path) -> dict:
    path = out_dir / LEDGER
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or unreadable: nothing is known to be sent
        return {}


def already_sent(out_dir: Path, as_of: str, recipients: Sequence[str]) -> dict | None:
    """The ledger entry of an earlier send of this as_of to all of ``recipients``, or None."""
    wanted = {r.lower() for r in recipients}
    for entry in _ledger(out_dir).get(as_of, []):
        if wanted <= {r.lower() for r in entry.get("to", [])}:
            return entry
    return None


def _note_sent(out_dir: Path, as_of: str, entry: dict) -> None:
    from .results import write_json_atomic

    ledger = _ledger(out_dir)
    ledger.setdefault(as_of, []).append(entry)
    write_json_atomic(out_dir / LEDGER, ledger)


def _send(settings: SmtpSettings, msg: EmailMessage, timeout: float) -> None:
    context = ssl.create_default_context()
    if settings.security == "ssl":
        client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    with client:
        client.ehlo()
        if settings.security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if settings.user:
            client.login(settings.user, settings.password or "")
        client.send_message(msg)


def send_summary(pack_dir: str | os.PathLike, recipients: Sequence[str], *, pdf: Path | None = None,
                 resend: bool = False, env: Mapping[str, str] | None = None, timeout: float = 30.0,
                 note: str = "") -> dict:
    """Send the pack's front page to ``recipients`` unless this as_of was sent to them already.

    Returns ``{"sent": bool, "to": [...], "message_id", "sent_at"}`` (``sent`` False with the
    earlier entry when it was sent before and ``resend`` is False). Raises
    :class:`MailError` (exit 1) when the server refuses or cannot be reached, and
    :class:`~crmlib.errors.CrmConfigError` (exit 2) for missing settings.
    """
    env = os.environ if env is None else env
    pack_dir = Path(pack_dir)
    manifest = json.loads((pack_dir / "manifest.json").read_text(encoding="utf-8"))
    as_of = str(manifest.get("as_of"))
    recipients = parse_recipients(recipients)
    settings = SmtpSettings.from_env(env)
    out_dir = pack_dir.parent
    if not resend:
        earlier = already_sent(out_dir, as_of, recipients)
        if earlier is not None:
            return {**earlier, "sent": False}
    msg = build_message(pack_dir, manifest, recipients, settings.sender, pdf=pdf,
                        pack_url=env.get("CRM_PACK_URL") or None, note=note)
    try:
        _send(settings, msg, timeout)
    except (smtplib.SMTPException, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        if settings.password:
            reason = reason.replace(settings.password, "***")
        raise MailError(f"could not send the summary to {', '.join(recipients)} via "
                        f"{settings.host}:{settings.port}: {reason}; the pack is unchanged") from None
    entry = {"to": recipients, "message_id": msg["Message-ID"],
             "sent_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "pdf": bool(pdf)}
    _note_sent(out_dir, as_of, entry)
    return {**entry, "sent": True}
