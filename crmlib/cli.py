"""The ``crm-reports`` command: parses, calls crmlib, sets the exit code.

    crm-reports run     [--only 02,03] [--as-of YYYY-MM-DD] [--source DIR|env:NAME] [--out DIR]
                        [--jobs N] [--preset NAME] [--config FILE] [--with-code] [--timeout S] [--pdf]
                        [--mail-to ADDR [--resend]]
    crm-reports list    the reports: number, name, title
    crm-reports sample  [--size N|default|small|large|huge] [--seed S] [--out DIR]
    crm-reports audit   [--source DIR|env:NAME] [--preset NAME | --mapping FILE]
    crm-reports inspect DIR   suggest a preset or a starter mapping for an export folder

Exit codes: 0 all reports ok or skipped, 1 some report failed, 2 bad input or
configuration (one line on stderr, never a traceback), 130/143 interrupted (nothing
written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from crmlib import runner
from crmlib.errors import CrmConfigError, CrmError

PROG = "crm-reports"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (exit 2), like every other bad input."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------------
# run
# ----------------------------------------------------------------------------------

_MARKS = {"ok": ("✓", "green"), "skipped": ("–", "yellow"), "failed": ("✗", "red")}


def _print_report_done(console, result: runner.ReportResult, done: int, total: int) -> None:
    from rich.text import Text

    mark, colour = _MARKS.get(result.status, ("?", "red"))
    line = Text(f"[{done}/{total}] ")
    line.append(f"{mark} {result.status:<7}", style=colour)
    line.append(f" {result.report:<24} {result.duration_s:6.1f} s")
    detail = result.error if result.status == "failed" else result.reason
    if detail:
        line.append(f"  {detail}", style=colour if result.status == "failed" else "dim")
    console.print(line)


def cmd_run(args: argparse.Namespace) -> int:
    console = _console()
    if getattr(args, "mail_to", None):  # settings are checked before an hour of reports, not after
        from crmlib.mail import SmtpSettings, parse_recipients

        args.mail_to = parse_recipients(args.mail_to)
        SmtpSettings.from_env()

    def on_start(info: dict) -> None:
        console.print(f"Running {len(info['reports'])} report(s) as of {info['as_of']} "
                      f"on {info['source']} with {info['jobs']} job(s)", markup=False)

    result = runner.run_pack(
        source=args.source, out=args.out, as_of=args.as_of, only=args.only, jobs=args.jobs,
        config=args.config, with_code=args.with_code, timeout=args.timeout,
        notebooks_dir=args.notebooks, on_start=on_start, preset=args.preset,
        on_report_done=lambda r, done, total: _print_report_done(console, r, done, total))
    counts, timings = result.manifest["counts"], result.manifest["timings"]
    console.print(f"{counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed "
                  f"in {timings['total_s']:.1f} s", markup=False)
    print(result.index_path, flush=True)
    code = result.exit_code
    mail_to = getattr(args, "mail_to", None)
    pdf_code = None
    if getattr(args, "pdf", False) or mail_to:  # the mail carries the PDF
        pdf_code = _write_pdf(result, console)
        code = max(code, pdf_code)
    if mail_to:
        code = max(code, _send_mail(result, console, mail_to, resend=args.resend,
                                    with_pdf=pdf_code == 0))
    return code


def _send_mail(result: runner.RunResult, console, recipients, *, resend: bool, with_pdf: bool) -> int:
    """Mail the front page (PDF attached when it was written); 0 sent or sent before, 1 failed."""
    from crmlib.mail import MailError, send_summary

    pdf = result.pack_dir / "pack.pdf"
    note = "" if with_pdf and pdf.exists() else "The PDF of the pack could not be made; see the pack itself."
    try:
        sent = send_summary(result.pack_dir, recipients, pdf=pdf if not note else None, resend=resend,
                            note=note)
    except MailError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    if sent["sent"]:
        console.print(f"Mailed the summary to {', '.join(sent['to'])}", markup=False)
    else:
        console.print(f"Not mailed: the summary of {result.manifest['as_of']} went to "
                      f"{', '.join(sent['to'])} at {sent.get('sent_at')} already (--resend sends it again)",
                      markup=False)
    return 0


def _write_pdf(result: runner.RunResult, console) -> int:
    """Print the written pack into OUT/AS_OF/pack.pdf; 0 when done, 1 (one line) when not.

    A missing browser is installed with the project's script; whatever goes wrong, the
    pack stays as it was written.
    """
    from crmlib.browser import BrowserError, write_pack_pdf

    try:
        pdf = write_pack_pdf(result.pack_dir, install=True)
    except BrowserError as exc:
        print(f"{PROG}: error: no PDF written (the pack is in {result.pack_dir}): {exc}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no PDF written (the pack is in {result.pack_dir})", file=sys.stderr)
        return 130
    console.print(f"PDF: {pdf.path} ({pdf.pages} pages)", markup=False)
    return 0


def _only_tokens(values: Sequence[Sequence[str]] | None) -> list[str] | None:
    if not values:
        return None
    return [token for group in values for token in group]


# ----------------------------------------------------------------------------------
# list, sample, audit
# ----------------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    reports = runner.list_reports(args.notebooks)
    if not reports:
        print(f"no report notebooks (NN_name.ipynb) in {args.notebooks or runner.NOTEBOOKS_DIR}",
              file=sys.stderr)
    width = max((len(r.name) for r in reports), default=4)
    for report in reports:
        print(f"{report.number}  {report.name:<{width}}  {report.title}")
    return 0


def _size(value: str):
    if value.isdigit():
        return int(value)
    if value in ("default", "small", "large", "huge"):
        return value
    raise argparse.ArgumentTypeError(f"--size {value!r}: give a number of deals, 'default', 'small', "
                                     "'large' or 'huge'")


def cmd_sample(args: argparse.Namespace) -> int:
    if args.size in ("large", "huge"):  # Parquet written in blocks (crmlib.sample_large)
        from crmlib.sample_large import write_large

        rows = write_large(args.out, size=args.size, **({"seed": args.seed} if args.seed is not None else {}))
        print(f"{args.size} sample written to {args.out}: " + ", ".join(f"{n:,} {t}" for t, n in rows.items()
                                                                     if t in ("deals", "activities", "orders")))
        return 0
    from crmlib.sample import write_sample

    kwargs = {"size": args.size}
    if args.seed is not None:
        kwargs["seed"] = args.seed
    written = write_sample(args.out, **kwargs)
    print(f"sample data written to {written if written is not None else args.out}")
    return 0


def _fmt_number(value) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != number:  # NaN
        return "–"
    return f"{number:,.0f}" if number.is_integer() else f"{number:,.1f}"


def cmd_audit(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from crmlib.data import open_data

    load_source, shown_source = runner.resolve_source(args.source)
    mapping = args.mapping
    if args.preset:
        from crmlib.load import preset_mapping

        if mapping:
            raise CrmConfigError(f"--preset {args.preset} and --mapping {mapping}: give one of them")
        mapping = preset_mapping(args.preset, load_source)
    data = open_data(load_source, timezone=args.timezone, mapping=mapping)
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"Audit of {shown_source}", markup=False)

    counts = getattr(data, "counts", None)
    columns = ["table", "input", "kept", "quarantined", "score"]
    mismatched = []
    if counts is not None and len(counts):
        present = [c for c in columns if c in counts.columns] or list(counts.columns)
        table = Table(title="Rows per table", title_justify="left")
        for name in present:
            table.add_column(name, justify="left" if name == "table" else "right")
        for _, row in counts.iterrows():
            table.add_row(*[str(row[c]) if c == "table" else _fmt_number(row[c]) for c in present])
            if {"input", "kept", "quarantined"} <= set(counts.columns):
                if row["input"] != row["kept"] + row["quarantined"]:
                    mismatched.append(str(row.get("table", "?")))
        console.print(table)
        if {"input", "kept", "quarantined"} <= set(counts.columns):
            is_total = counts["table"].astype(str).eq("all") if "table" in counts.columns else None
            if is_total is not None and is_total.any():  # the audit's own overall row
                total_in = counts.loc[is_total, "input"].iloc[0]
                total_q = counts.loc[is_total, "quarantined"].iloc[0]
            else:
                total_in, total_q = counts["input"].sum(), counts["quarantined"].sum()
            share = f" ({total_q / total_in:.1%})" if total_in else ""
            console.print(f"{_fmt_number(total_q)} of {_fmt_number(total_in)} rows quarantined{share}; "
                          + ("counts add up (input = kept + quarantined)." if not mismatched
                             else f"counts DO NOT add up for: {', '.join(mismatched)}"), markup=False)
    else:
        console.print("No per-table counts were reported by the audit.", markup=False)

    from .metrics.quality import issues_by_check

    issues = issues_by_check(data.quarantine, data.findings)
    if len(issues):
        problems = Table(title="Problems by check (quarantined rows are left out of every report)",
                         title_justify="left")
        for name in ("table", "check", "outcome", "rows", "example"):
            problems.add_column(name, justify="right" if name == "rows" else "left")
        for row in issues.head(15).itertuples():
            problems.add_row(row.table, row.check, row.outcome, _fmt_number(row.rows), str(row.example)[:90])
        console.print(problems)
    fingerprint = getattr(data, "fingerprint", None)
    if fingerprint:
        console.print(f"fingerprint {fingerprint}", markup=False)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from crmlib.inspect import inspect_folder, print_inspection

    print_inspection(inspect_folder(args.folder))
    return 0


# ----------------------------------------------------------------------------------
# parser and entry point
# ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Run the CRM report pack and its helpers.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,list,sample,audit,inspect}")

    run = sub.add_parser("run", help="run the report pack",
                         description="Execute the report notebooks and write HTML, index.html and "
                                     "manifest.json into OUT/AS_OF/.")
    run.add_argument("--only", action="append", nargs="+", metavar="REPORT",
                     help="reports to run: names, numbers or short names, comma or space separated "
                          "(default: all)")
    run.add_argument("--as-of", dest="as_of", metavar="YYYY-MM-DD",
                     help="the reports' 'now' (default: the as_of recorded in the source's "
                          "export.yaml, otherwise the Sunday ending the last complete ISO week)")
    run.add_argument("--source", default=None,
                     help="the export folder, a database URL without password, or env:NAME to read "
                          "the URL from an environment variable (default: the bundled data/sample)")
    run.add_argument("--out", default=runner.DEFAULT_OUT,
                     help="folder for the packs (default: reports_out); the pack goes to OUT/AS_OF")
    run.add_argument("--jobs", type=int, default=1, metavar="N", help="reports run in parallel (default 1)")
    run.add_argument("--preset", default=None, metavar="NAME",
                     help="read the source as this CRM's export: salesforce, hubspot or pipedrive "
                          "(the source folder's export.yaml, if any, is laid over it)")
    run.add_argument("--config", metavar="FILE",
                     help="YAML: {params: {...}, reports: {NN_name: {params: {...}}}, mapping: FILE}")
    run.add_argument("--with-code", dest="with_code", action="store_true",
                     help="also write NN_name.code.html, the analyst view with the code")
    run.add_argument("--pdf", action="store_true",
                     help="also print index.html and every report page into OUT/AS_OF/pack.pdf "
                          "(headless Chromium; installed with scripts/install_chromium.sh when missing)")
    run.add_argument("--mail-to", dest="mail_to", action="append", metavar="ADDR",
                     help="mail the front page (HTML body, the PDF attached) to ADDR (repeatable or comma "
                          "separated); SMTP settings from CRM_SMTP_HOST, CRM_SMTP_PORT, CRM_SMTP_USER, "
                          "CRM_SMTP_PASSWORD, CRM_SMTP_FROM; a week already mailed is not mailed again")
    run.add_argument("--resend", action="store_true",
                     help="with --mail-to: send even if this week's summary was sent to them before")
    run.add_argument("--timeout", type=float, default=runner.DEFAULT_TIMEOUT_S, metavar="S",
                     help=f"seconds allowed per cell (default {runner.DEFAULT_TIMEOUT_S:g}; 0: no limit)")
    run.add_argument("--notebooks", metavar="DIR", default=None,
                     help="(advanced) folder of NN_name.ipynb report notebooks (default: notebooks/)")
    run.set_defaults(func=cmd_run)

    lst = sub.add_parser("list", help="list the reports", description="List the report notebooks.")
    lst.add_argument("--notebooks", metavar="DIR", default=None, help="(advanced) notebooks folder")
    lst.set_defaults(func=cmd_list)

    sample = sub.add_parser("sample", help="regenerate the sample data",
                            description="Write a synthetic CRM export with planted truth.")
    sample.add_argument("--size", type=_size, default="default", metavar="N|default|small|large|huge",
                        help="number of deals, or 'default' / 'small'; 'large' (1M deals, 10M activities, "
                             "2M orders as Parquet) or 'huge' (ten times that)")
    sample.add_argument("--seed", type=int, default=None, help="random seed")
    sample.add_argument("--out", default="data/sample", help="folder to write (default data/sample)")
    sample.set_defaults(func=cmd_sample)

    audit = sub.add_parser("audit", help="print the data-audit verdict",
                           description="Load and audit an export; print rows kept and quarantined.")
    audit.add_argument("--source", default=None,
                       help="export folder or env:NAME (default: the bundled data/sample)")
    audit.add_argument("--mapping", default=None, help="mapping preset name or mapping file")
    audit.add_argument("--preset", default=None, metavar="NAME",
                       help="read the source as this CRM's export: salesforce, hubspot or pipedrive "
                            "(the folder's export.yaml, if any, is laid over it)")
    audit.add_argument("--timezone", default="UTC", help="timezone timestamps are converted to")
    audit.set_defaults(func=cmd_audit)

    inspect = sub.add_parser("inspect", help="suggest a preset or a mapping for an export folder",
                             description="Read the headers (and a few rows) of every file in DIR, "
                                         "suggest the preset that recognises them best (or a starter "
                                         "export.yaml) and list the columns no mapping uses.")
    inspect.add_argument("folder", metavar="DIR", help="the export folder")
    inspect.set_defaults(func=cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``crm-reports`` (and ``python -m crmlib``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "only", None) is not None:
        args.only = _only_tokens(args.only)
    try:
        return args.func(args)
    except CrmError as exc:
        print(f"{PROG}: error: {runner.mask_url_passwords(str(exc))}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except runner.RunInterrupted:
        print(f"{PROG}: stopped by SIGTERM; no pack was written", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no pack was written", file=sys.stderr)
        return 130
    except ImportError as exc:
        # a part of crmlib another issue delivers (data, sample) is not there yet
        missing = CrmConfigError(f"this command needs {exc.name or exc} which is not available: {exc}")
        print(f"{PROG}: error: {missing}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
