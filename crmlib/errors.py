"""Every exception crmlib raises on purpose, in one class tree.

Each message is meant for a user: it names the file or table, the column and the
rows involved, and says what to do. The command line prints ``str(error)`` as one
line and exits 2; it never shows a traceback for these.
"""

from __future__ import annotations


class CrmError(Exception):
    """Base of every error crmlib raises deliberately."""

    exit_code = 2

    def __str__(self) -> str:  # always one line
        return " ".join(str(self.args[0] if self.args else "").split())


class CrmConfigError(CrmError):
    """A parameter, a mapping file or a run configuration is wrong."""


class CrmDataError(CrmError):
    """The data cannot be loaded as it is (a whole table or column is unusable).

    Row-level problems never raise: those rows are quarantined with a reason.
    """

    def __init__(self, message: str, *, table: str | None = None, column: str | None = None,
                 source: str | None = None, row: int | None = None):
        super().__init__(message)
        self.table = table
        self.column = column
        self.source = source
        self.row = row

    def __reduce__(self):  # keep the details when the error crosses a process boundary
        return (_rebuild_data_error, (type(self), str(self), self.table, self.column, self.source, self.row))


def _rebuild_data_error(cls, message, table, column, source, row):
    return cls(message, table=table, column=column, source=source, row=row)


class MissingTableError(CrmDataError):
    """A report needs a table the export does not have (the report is skipped)."""


class CurrencyError(CrmDataError):
    """Amounts in several currencies would be summed without an exchange-rate table."""
