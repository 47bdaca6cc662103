"""Personal data masking: stable pseudonyms instead of names, emails and phone numbers.

A pseudonym is a keyed hash of the value (HMAC-SHA256 with a salt from the
environment variable ``CRM_PII_SALT``), so the same person gets the same pseudonym in
every table and every run with the same salt, and nobody without the salt can reverse
it by hashing guesses. Masking applies to the clean tables, the quarantine records
and the findings, so no output of a masked run holds an original address or number.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re

import pandas as pd

from .schema import TABLES

DEFAULT_SALT = "crm-workbook"  # used only when CRM_PII_SALT is unset (then pseudonyms are guessable)
EMAIL_ANY = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
QUOTED = re.compile(r"'([^']*)'")
PHONE_ANY = re.compile(r"\+?\d[\d ()./-]{6,}\d")


def pseudonym(value: str, *, kind: str, salt: str) -> str:
    digest = hmac.new(salt.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:10]
    if kind == "email":
        return f"{digest}@masked.invalid"
    if kind == "phone":
        return f"+00 {int(digest, 16) % 10**9:09d}"
    return f"{kind.capitalize()} {digest[:6]}"


def _kind(column: str) -> str:
    return column if column in ("email", "phone") else "person"


def mask_series(s: pd.Series, *, kind: str, salt: str) -> pd.Series:
    return s.map(lambda v: v if pd.isna(v) else pseudonym(str(v).strip().lower()
                                                        if kind == "email" else str(v), kind=kind,
                                                        salt=salt)).astype("str")


def mask_text(text: str, *, salt: str) -> str:
    """Emails and phone numbers found inside free text replaced by pseudonyms."""
    text = EMAIL_ANY.sub(lambda m: pseudonym(m.group(0).lower(), kind="email", salt=salt), text)
    return PHONE_ANY.sub(lambda m: pseudonym(m.group(0), kind="phone", salt=salt), text)


def mask_data(data, *, salt: str | None = None):
    from .data import CrmData

    salt = salt or os.environ.get("CRM_PII_SALT") or DEFAULT_SALT
    tables = {}
    for name, df in data.tables.items():
        df = df.copy()
        for col in TABLES[name].pii_columns:
            df[col] = mask_series(df[col], kind=_kind(col), salt=salt)
        for col in TABLES[name].of_kind("text"):
            if col not in TABLES[name].pii_columns:
                df[col] = df[col].map(lambda v: v if pd.isna(v) else mask_text(str(v), salt=salt)).astype("str")
        tables[name] = df
    pii = {(t, c) for t in TABLES for c in TABLES[t].pii_columns}

    def mask_record(row) -> str:
        rec = json.loads(row["record"] or "{}")
        for k, v in rec.items():
            if v is None:
                continue
            rec[k] = pseudonym(v, kind=_kind(k), salt=salt) if (row["table"], k) in pii \
                else mask_text(v, salt=salt)
        return json.dumps(rec, ensure_ascii=False)

    def mask_reason(row) -> str:
        reason = mask_text(str(row["reason"]), salt=salt)
        if (row["table"], row["column"]) in pii:  # quoted values of personal columns
            reason = QUOTED.sub(lambda m: repr(pseudonym(m.group(1), kind=_kind(row["column"]),
                                                         salt=salt)), reason)
        return reason

    q = data.quarantine.copy()
    if len(q):
        q["record"] = q.apply(mask_record, axis=1)
        q["reason"] = q.apply(mask_reason, axis=1)
    f = data.findings.copy()
    if len(f):
        f["reason"] = f.apply(mask_reason, axis=1)
    return CrmData(tables, q, f, data.counts, data.completeness, data.fingerprint,
                   dict(data.meta, masked=True))
