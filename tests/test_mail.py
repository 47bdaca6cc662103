"""`crm-reports run --mail-to`: the front page as the HTML body, the PDF attached, SMTP settings
from the environment, a failed send reported with exit 1, and a week never mailed twice
unless asked. A real SMTP server (aiosmtpd) runs on a free local port for each test."""

import email
import email.policy
import hashlib
import json

import pytest
from aiosmtpd.controller import Controller

from crmlib.cli import main
from crmlib.mail import LEDGER, MailError, send_summary
from tests.helpers import SAMPLE


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content,
                                                                           policy=email.policy.default)))
        return "250 OK"


@pytest.fixture
def smtp(free_tcp_port_factory, monkeypatch):
    inbox = _Inbox()
    port = free_tcp_port_factory()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    for name, value in {"CRM_SMTP_HOST": "127.0.0.1", "CRM_SMTP_PORT": str(port), "CRM_SMTP_SECURITY": "none",
                        "CRM_SMTP_FROM": "reports@example.com"}.items():
        monkeypatch.setenv(name, value)
    for name in ("CRM_SMTP_USER", "CRM_SMTP_PASSWORD", "CRM_PACK_URL"):
        monkeypatch.delenv(name, raising=False)
    yield inbox
    controller.stop()


@pytest.fixture
def pack(tmp_path):
    """A minimal written pack: out/2026-09-27/{index.html, manifest.json} and a PDF."""
    folder = tmp_path / "out" / "2026-09-27"
    folder.mkdir(parents=True)
    (folder / "index.html").write_text('<!DOCTYPE html><html><head><title>t</title></head><body>'
                                       '<a href="02_pipeline.html">Pipeline</a> &lt;b&gt;</body></html>')
    manifest = {"as_of": "2026-09-27", "counts": {"ok": 1, "skipped": 0, "failed": 0},
                "reports": [{"report": "02_pipeline", "title": "Pipeline", "status": "ok", "html": "02_pipeline.html",
                             "alerts": [{"key": "stalled", "message": "10 deals stuck", "severity": "warning",
                                         "anchor": ""}]}]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "pack.pdf").write_bytes(b"%PDF-1.4 tiny\n%%EOF\n")
    return folder


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_the_summary_arrives_with_the_front_page_as_html_and_the_pdf_attached(smtp, pack):
    sent = send_summary(pack, ["boss@example.com"], pdf=pack / "pack.pdf")
    assert sent["sent"] and len(smtp.messages) == 1
    rcpt, msg = smtp.messages[0]
    assert rcpt == ["boss@example.com"]
    assert msg["Subject"] == "CRM weekly summary as of 2026-09-27: 1 alert"
    assert msg["From"] == "reports@example.com"
    html = msg.get_body(("html",)).get_content()
    assert html.rstrip("\r\n") == (pack / "index.html").read_text()  # the front page itself, escaped text intact
    assert "10 deals stuck" in msg.get_body(("plain",)).get_content()
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["crm-pack-2026-09-27.pdf"]
    assert attachments[0].get_content() == (pack / "pack.pdf").read_bytes()


def test_a_week_is_mailed_once_unless_asked_again(smtp, pack):
    send_summary(pack, ["boss@example.com"], pdf=pack / "pack.pdf")
    again = send_summary(pack, ["Boss@example.com"], pdf=pack / "pack.pdf")
    assert again["sent"] is False and len(smtp.messages) == 1
    assert send_summary(pack, ["boss@example.com", "cfo@example.com"])["sent"]  # a new recipient
    assert send_summary(pack, ["boss@example.com"], resend=True)["sent"]
    assert len(smtp.messages) == 3
    ledger = json.loads((pack.parent / LEDGER).read_text())
    assert [e["to"] for e in ledger["2026-09-27"]] == [["boss@example.com"], ["boss@example.com", "cfo@example.com"],
                                                       ["boss@example.com"]]


def test_links_point_to_the_published_pack_when_its_url_is_known(smtp, pack, monkeypatch):
    monkeypatch.setenv("CRM_PACK_URL", "https://intranet.example.com/packs/")
    send_summary(pack, ["boss@example.com"])
    html = smtp.messages[0][1].get_body(("html",)).get_content()
    assert '<head><base href="https://intranet.example.com/packs/2026-09-27/">' in html


def test_a_failed_send_raises_leaves_the_pack_and_ledger_alone(smtp, pack, monkeypatch, free_tcp_port_factory):
    monkeypatch.setenv("CRM_SMTP_PORT", str(free_tcp_port_factory()))  # nobody listens there
    monkeypatch.setenv("CRM_SMTP_PASSWORD", "s3cret-pw")
    before = _digest(pack)
    with pytest.raises(MailError) as err:
        send_summary(pack, ["boss@example.com"], pdf=pack / "pack.pdf", timeout=5)
    assert err.value.exit_code == 1 and "the pack is unchanged" in str(err.value)
    assert "s3cret-pw" not in str(err.value)
    assert _digest(pack) == before and not (pack.parent / LEDGER).exists()


@pytest.mark.parametrize(("env", "message"), [
    ({"CRM_SMTP_HOST": ""}, "set CRM_SMTP_HOST"),
    ({"CRM_SMTP_PORT": "smtp"}, "CRM_SMTP_PORT='smtp'"),
    ({"CRM_SMTP_FROM": "nobody"}, "set CRM_SMTP_FROM"),
])
def test_missing_settings_stop_the_run_before_any_report_with_one_line(smtp, tmp_path, monkeypatch, capsys, env,
                                                                       message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["run", "--only", "01", "--source", str(SAMPLE), "--out", str(tmp_path / "out"),
                 "--mail-to", "boss@example.com"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing ran


def test_a_bad_address_is_one_line(smtp, tmp_path, capsys):
    code = main(["run", "--only", "01", "--out", str(tmp_path / "out"), "--mail-to", "boss@"])
    assert code == 2 and "not an email address" in capsys.readouterr().err


def test_run_mail_to_end_to_end_sends_once_per_week(smtp, tmp_path, capsys):
    """The real command: one report, the PDF printed by Chromium (installed by the project's
    script when missing), mailed; the same week run again replaces the pack and sends nothing."""
    args = ["run", "--only", "01", "--source", str(SAMPLE), "--out", str(tmp_path / "out"),
            "--mail-to", "boss@example.com"]
    assert main(args) == 0, capsys.readouterr().err
    assert len(smtp.messages) == 1
    msg = smtp.messages[0][1]
    pdf = next(msg.iter_attachments()).get_content()
    assert pdf.startswith(b"%PDF")
    assert "Weekly summary" in msg.get_body(("html",)).get_content()
    assert main(args) == 0
    assert len(smtp.messages) == 1 and "already" in capsys.readouterr().err
