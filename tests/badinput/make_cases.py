"""The files of the bad-input corpus that are not plain UTF-8 text with LF line ends.

Spreadsheets, Parquet, gzip, cp1251/cp1252/UTF-16 files, a UTF-8 byte-order mark and
CRLF line ends are awkward to keep in git (editors and git settings rewrite them), so
they are written here from the fixed values below (the same content on every call).
Every other file of a case is committed as it is in ``cases/<case>/``.

    python tests/badinput/make_cases.py OUT    # the whole corpus, ready for
                                               # crm-reports audit --source OUT/<case>
"""

from __future__ import annotations

import codecs
import gzip
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

CASES_DIR = Path(__file__).resolve().parent / "cases"
EXPECTED = "expected.yaml"
H = "deal_id,name,status,amount,currency,created_at,closed_at\n"


def _xlsx(frame: pd.DataFrame, *, title_rows: tuple[str, ...] = (), blank_rows: int = 0) -> Callable:
    """A writer of one sheet: optional title rows and blank rows above the frame's header."""

    def write(path: Path) -> None:
        with pd.ExcelWriter(path, engine="openpyxl") as xw:
            if title_rows:
                pd.DataFrame([[t] for t in title_rows]).to_excel(xw, index=False, header=False)
            frame.to_excel(xw, index=False, startrow=len(title_rows) + blank_rows)

    return write


def _bytes(data: bytes) -> Callable:
    return lambda path: path.write_bytes(data)


def _parquet(frame: pd.DataFrame) -> Callable:
    return lambda path: frame.to_parquet(path, index=False)


def _empty_workbook(path: Path) -> None:
    import openpyxl

    openpyxl.Workbook().save(path)


CYRILLIC = H + "D1,Сделка,open,10,EUR,2024-01-02,\nD2,Клиент Иванов,open,20,EUR,2024-01-03,\n"

#: case folder -> {file name: writer(path)}
GENERATED: dict[str, dict[str, Callable[[Path], None]]] = {
    "02_ids_keep_leading_zeros_in_excel": {"deals.xlsx": _xlsx(pd.DataFrame({
        "deal_id": ["00123", "0456"], "status": ["open", "open"], "amount": [10, 20],
        "created_at": ["2024-01-02", "2024-01-03"]}))},
    "14_excel_serial_dates": {"deals.xlsx": _xlsx(pd.DataFrame({
        "deal_id": ["D1", "D2"], "status": ["open", "open"], "amount": [10, 20],
        "created_at": [45292, 45292.5]}))},
    "15_spreadsheet_with_title_rows": {"deals.xlsx": _xlsx(pd.DataFrame({
        "deal_id": ["D7", "D8"], "status": ["open", "open"], "amount": [10, -5],
        "created_at": ["2024-01-02", "2024-01-03"]}),
        title_rows=("Deals report", "exported 2024-06-30 by admin"), blank_rows=1)},
    "21_cp1251_undeclared": {"deals.csv": _bytes(CYRILLIC.encode("cp1251"))},
    "22_cp1251_declared": {"deals.csv": _bytes(CYRILLIC.encode("cp1251"))},
    "23_cp1252_is_never_read_as_latin1": {"deals.csv": _bytes(
        (H + "D1,Müller GmbH,open,10,EUR,2024-01-02,\n").encode("cp1252"))},
    "24_utf16_spreadsheet_export": {"deals.csv": _bytes(codecs.BOM_UTF16_LE + (
        H + "D1,Ärger,open,10,EUR,2024-01-02,\nD2,Øre,open,20,EUR,2024-01-03,\n"
    ).replace(",", "\t").replace("\n", "\r\n").encode("utf-16-le"))},
    "25_utf16_without_byte_order_mark": {"deals.csv": _bytes(
        (H + "D1,Ärger,open,10,EUR,2024-01-02,\n").encode("utf-16-le"))},
    "26_utf8_byte_order_mark": {"deals.csv": _bytes(
        codecs.BOM_UTF8 + (H + "D1,Café,open,10,EUR,2024-01-02,\n").encode("utf-8"))},
    "27_crlf_and_trailing_comma_header": {"deals.csv": _bytes(
        b"deal_id,status,amount,created_at,\r\nD1,open,5,2024-01-02,\r\nD2,open,x,2024-01-02,\r\n")},
    "64_gzipped_csv": {"deals.csv.gz": _bytes(gzip.compress(
        (H + "D1,A,open,10,EUR,2024-01-02,\nD2,B,open,20,EUR,2024-01-03,\n").encode(), mtime=0))},
    "66_excel_empty_sheet": {"deals.xlsx": _empty_workbook},
    "68_parquet_ids_that_are_not_whole": {"deals.parquet": _parquet(pd.DataFrame({
        "deal_id": [1.0, 2.5, 3.0], "status": ["open", "open", "won"], "amount": [10.0, 20.0, 30.0],
        "created_at": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"]),
        "closed_at": pd.to_datetime([None, None, "2024-01-20"])}))},
}


def materialise(case: Path, dest: Path) -> Path:
    """Copy a case's committed files (not expected.yaml) into ``dest`` and write its generated ones."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(case.iterdir()):
        if path.is_file() and path.name != EXPECTED:
            shutil.copyfile(path, dest / path.name)
    for name, write in GENERATED.get(case.name, {}).items():
        write(dest / name)
    return dest


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/badinput/make_cases.py OUT", file=sys.stderr)
        return 2
    out = Path(argv[0])
    for case in sorted(p for p in CASES_DIR.iterdir() if p.is_dir()):
        materialise(case, out / case.name)
    print(f"{len(list(out.iterdir()))} cases written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
