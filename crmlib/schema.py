"""The canonical CRM schema: one source of truth for every table crmlib knows.

Each table is a :class:`TableSpec` of :class:`Column` specs. From a spec come

* the column list and docs (the tutorial shows them),
* the kind of each column, which tells the loader how to parse it
  (ids stay strings, timestamps become timezone-aware, money becomes float),
* a pandera ``DataFrameSchema`` (:func:`pandera_schema`) that the audit validates the
  typed table against; row-level failures are quarantined with the check's name.

Only ``deals`` is required; every other table is optional. The names follow the
common CRM object model (opportunity, opportunity history, task/event, case,
campaign), so mapping presets for real exports stay thin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa

#: column kinds and what they become after loading
KINDS = {
    "id": "string key of this table (unique, never empty; leading zeros kept)",
    "ref": "string id of a row in another table",
    "text": "free text (untrusted: always escaped on output)",
    "category": "a short label from a small set",
    "timestamp": "timezone-aware timestamp in the run's timezone",
    "money": "float amount in the row's currency",
    "float": "float",
    "int": "integer (nullable)",
    "bool": "true/false (nullable)",
    "currency": "ISO 4217 code, three capital letters",
}

DEAL_STATUSES = ("open", "won", "lost")
ACTIVITY_TYPES = ("call", "email", "meeting", "task", "note")
DIRECTIONS = ("inbound", "outbound")
SURVEY_KINDS = ("nps", "csat")
TICKET_STATUSES = ("open", "pending", "solved", "closed")
PERIOD_FREQS = {"week": "W-SUN", "month": "M", "quarter": "Q"}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    doc: str
    required: bool = False  # must be present in the export (else the table is rejected)
    nullable: bool = True
    allowed: tuple[str, ...] | None = None  # for categories checked strictly
    refers_to: str | None = None  # "table.column" for refs
    pii: bool = False  # masked when mask_pii is on
    planned: bool = False  # a planned time (due date, expected close): may lie after export

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r} for {self.name}")


@dataclass(frozen=True)
class TableSpec:
    name: str
    doc: str
    columns: tuple[Column, ...]
    key: str | None = None  # primary key column
    required: bool = False
    crm_object: str = ""  # what the CRM suites call it
    extra_checks: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def of_kind(self, *kinds: str) -> list[str]:
        return [c.name for c in self.columns if c.kind in kinds]

    @property
    def event_time_columns(self) -> list[str]:
        """Timestamps of things that happened (these cannot lie after the export)."""
        return [c.name for c in self.columns if c.kind == "timestamp" and not c.planned]

    @property
    def dated_by(self) -> str | None:
        """The timestamp that dates a row (when it happened): the first required event time,
        else the first event time; None for tables without one."""
        events = [c for c in self.columns if c.kind == "timestamp" and not c.planned]
        required = [c for c in events if c.required]
        return (required or events)[0].name if events else None

    @property
    def pii_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.pii]


def _c(name, kind, doc, **kw) -> Column:
    return Column(name, kind, doc, **kw)


TABLES: dict[str, TableSpec] = {}


def _table(name, doc, columns, **kw) -> TableSpec:
    spec = TableSpec(name, doc, tuple(columns), **kw)
    TABLES[name] = spec
    return spec


_table("users", "People who own deals, leads and activities (reps, managers, agents).", [
    _c("user_id", "id", "User id.", required=True, nullable=False),
    _c("name", "text", "Display name.", pii=True),
    _c("team", "category", "Sales team or department."),
    _c("role", "category", "Role, e.g. rep, manager, agent."),
    _c("active", "bool", "Whether the user is active."),
    _c("hired_at", "timestamp", "When the user started."),
], key="user_id", crm_object="User")

_table("accounts", "Companies (customers and prospects).", [
    _c("account_id", "id", "Account id.", required=True, nullable=False),
    _c("name", "text", "Company name."),
    _c("industry", "category", "Industry."),
    _c("segment", "category", "Segment, e.g. SMB, mid-market, enterprise."),
    _c("region", "category", "Sales region."),
    _c("owner_id", "ref", "Account owner.", refers_to="users.user_id"),
    _c("created_at", "timestamp", "When the account was created."),
], key="account_id", crm_object="Account / Company / Organization")

_table("contacts", "People at accounts.", [
    _c("contact_id", "id", "Contact id.", required=True, nullable=False),
    _c("account_id", "ref", "Their account.", refers_to="accounts.account_id"),
    _c("name", "text", "Full name.", pii=True),
    _c("email", "text", "Email address.", pii=True),
    _c("phone", "text", "Phone number.", pii=True),
    _c("created_at", "timestamp", "When the contact was created."),
    _c("updated_at", "timestamp", "Last update (staleness)."),
], key="contact_id", crm_object="Contact / Person")

_table("leads", "Incoming leads before they become deals.", [
    _c("lead_id", "id", "Lead id.", required=True, nullable=False),
    _c("created_at", "timestamp", "When the lead came in.", required=True, nullable=False),
    _c("source", "category", "Lead source (email, paid_ads, organic, referral, ...)."),
    _c("campaign_id", "ref", "Campaign that brought the lead.", refers_to="campaigns.campaign_id"),
    _c("owner_id", "ref", "Lead owner.", refers_to="users.user_id"),
    _c("status", "category", "Lead status (new, working, converted, disqualified)."),
    _c("converted_at", "timestamp", "When the lead became a deal."),
    _c("deal_id", "ref", "The deal it became.", refers_to="deals.deal_id"),
    _c("disqualified_reason", "text", "Why it was disqualified."),
    _c("email", "text", "Lead's email.", pii=True),
    _c("phone", "text", "Lead's phone.", pii=True),
    _c("company", "text", "Lead's company name."),
], key="lead_id", crm_object="Lead")

_table("deals", "Deals (opportunities): the one required table.", [
    _c("deal_id", "id", "Deal id.", required=True, nullable=False),
    _c("name", "text", "Deal name."),
    _c("account_id", "ref", "Customer account.", refers_to="accounts.account_id"),
    _c("owner_id", "ref", "Deal owner.", refers_to="users.user_id"),
    _c("pipeline", "category", "Pipeline the deal runs in."),
    _c("stage", "category", "Current stage (at export time)."),
    _c("status", "category", "open, won or lost (at export time).", required=True, nullable=False,
       allowed=DEAL_STATUSES),
    _c("amount", "money", "Deal value in its currency.", required=True),
    _c("currency", "currency", "Currency of amount."),
    _c("source", "category", "Lead source of the deal."),
    _c("created_at", "timestamp", "When the deal was created.", required=True, nullable=False),
    _c("closed_at", "timestamp", "When it was won or lost (empty while open)."),
    _c("expected_close_at", "timestamp", "Expected close date.", planned=True),
    _c("lost_reason", "text", "Why it was lost."),
    _c("deal_type", "category", "new business, renewal, upsell, ..."),
    _c("forecast_category", "category",
       "The CRM's own forecast category when it keeps one (commit, best case, pipeline, omitted)."),
], key="deal_id", required=True, crm_object="Opportunity / Deal")

_table("stage_history", "Every stage a deal entered and when.", [
    _c("deal_id", "ref", "The deal.", required=True, nullable=False, refers_to="deals.deal_id"),
    _c("stage", "category", "Stage entered.", required=True, nullable=False),
    _c("entered_at", "timestamp", "When it entered the stage.", required=True, nullable=False),
], crm_object="OpportunityHistory / deal stage changes")

_table("stages", "The pipeline definition: stages in order with their win probability.", [
    _c("pipeline", "category", "Pipeline name.", required=True, nullable=False),
    _c("stage", "category", "Stage name.", required=True, nullable=False),
    _c("order", "int", "Position in the pipeline (1 = first).", required=True, nullable=False),
    _c("probability", "float", "Win probability of a deal in this stage (0-1)."),
    _c("is_closed", "bool", "Stage closes the deal."),
    _c("is_won", "bool", "Stage means won."),
], crm_object="OpportunityStage / pipeline stages")

_table("activities", "Calls, emails, meetings, tasks and notes.", [
    _c("activity_id", "id", "Activity id.", required=True, nullable=False),
    _c("type", "category", "call, email, meeting, task or note.", required=True, nullable=False,
       allowed=ACTIVITY_TYPES),
    _c("owner_id", "ref", "Who did (or must do) it.", refers_to="users.user_id"),
    _c("deal_id", "ref", "Related deal.", refers_to="deals.deal_id"),
    _c("lead_id", "ref", "Related lead.", refers_to="leads.lead_id"),
    _c("account_id", "ref", "Related account.", refers_to="accounts.account_id"),
    _c("created_at", "timestamp", "When it was logged (for calls: when the call started).",
       required=True, nullable=False),
    _c("due_at", "timestamp", "When a task or meeting is due.", planned=True),
    _c("completed_at", "timestamp", "When it was done (empty while not done)."),
    _c("direction", "category", "inbound or outbound (calls, emails).", allowed=DIRECTIONS),
    _c("outcome", "category", "e.g. answered, missed, voicemail, sent, held."),
    _c("duration_s", "float", "Duration in seconds (calls, meetings)."),
], key="activity_id", crm_object="Task / Event / Activity")

_table("orders", "What customers bought (after winning, and repeat purchases).", [
    _c("order_id", "id", "Order line id.", required=True, nullable=False),
    _c("account_id", "ref", "Buying account.", required=True, refers_to="accounts.account_id"),
    _c("deal_id", "ref", "Deal it came from.", refers_to="deals.deal_id"),
    _c("ordered_at", "timestamp", "When it was ordered.", required=True, nullable=False),
    _c("product", "category", "Product."),
    _c("quantity", "float", "Quantity."),
    _c("revenue", "money", "Revenue of the line.", required=True),
    _c("cost", "money", "Cost of the line."),
    _c("currency", "currency", "Currency of revenue and cost."),
], key="order_id", crm_object="Order / Invoice line")

_table("campaigns", "Marketing campaigns.", [
    _c("campaign_id", "id", "Campaign id.", required=True, nullable=False),
    _c("name", "text", "Campaign name."),
    _c("channel", "category", "Channel (email, paid_ads, social, events, ...)."),
    _c("started_at", "timestamp", "Start.", planned=True),
    _c("ended_at", "timestamp", "End.", planned=True),
    _c("spend", "money", "Spend in the reporting currency."),
    _c("impressions", "float", "Impressions."),
    _c("clicks", "float", "Clicks."),
    _c("sends", "float", "Emails sent."),
    _c("opens", "float", "Emails opened."),
    _c("bounces", "float", "Emails bounced."),
], key="campaign_id", crm_object="Campaign")

_table("tickets", "Customer service tickets.", [
    _c("ticket_id", "id", "Ticket id.", required=True, nullable=False),
    _c("account_id", "ref", "Customer.", refers_to="accounts.account_id"),
    _c("created_at", "timestamp", "Opened.", required=True, nullable=False),
    _c("first_response_at", "timestamp", "First agent response."),
    _c("resolved_at", "timestamp", "Resolved."),
    _c("status", "category", "open, pending, solved, closed."),
    _c("priority", "category", "low, normal, high, urgent."),
    _c("channel", "category", "email, phone, chat, web."),
    _c("category", "category", "Topic."),
    _c("agent_id", "ref", "Agent.", refers_to="users.user_id"),
    _c("sla_due_at", "timestamp", "When the SLA requires a resolution.", planned=True),
    _c("reopened", "bool", "Reopened after being solved."),
], key="ticket_id", crm_object="Case / Ticket")

_table("surveys", "NPS and CSAT answers.", [
    _c("survey_id", "id", "Answer id.", required=True, nullable=False),
    _c("account_id", "ref", "Customer.", refers_to="accounts.account_id"),
    _c("ticket_id", "ref", "Ticket it is about (CSAT).", refers_to="tickets.ticket_id"),
    _c("kind", "category", "nps or csat.", required=True, nullable=False, allowed=SURVEY_KINDS),
    _c("score", "float", "NPS 0-10, CSAT 1-5.", required=True, nullable=False),
    _c("answered_at", "timestamp", "When answered.", required=True, nullable=False),
], key="survey_id", crm_object="Survey response")

_table("targets", "Targets (quotas) per owner or team and period.", [
    _c("owner_id", "ref", "Owner the target is for (or empty for a team target).",
       refers_to="users.user_id"),
    _c("team", "category", "Team the target is for (or empty for an owner target)."),
    _c("metric", "category", "revenue, won_deals, calls, meetings, new_leads.", required=True,
       nullable=False),
    _c("period_start", "timestamp", "First day of the period.", planned=True, required=True, nullable=False),
    _c("period_end", "timestamp", "Last day of the period (included).", planned=True, required=True,
       nullable=False),
    _c("target", "float", "Target value.", required=True, nullable=False),
], crm_object="Quota / Goal")

_table("fx_rates", "Exchange rates to the reporting currency.", [
    _c("currency", "currency", "Currency.", required=True, nullable=False),
    _c("date", "timestamp", "Day the rate applies from.", required=True, nullable=False),
    _c("rate_to_reporting", "float", "1 unit of currency in the reporting currency.",
       required=True, nullable=False),
], crm_object="Dated exchange rates")

TABLE_ORDER = tuple(TABLES)


def dating_column(table: str) -> str | None:
    """The column that dates a row of ``table`` (:attr:`TableSpec.dated_by`); None for an
    undated table or one outside the canonical schema."""
    t = TABLES.get(table)
    return t.dated_by if t is not None else None


def spec(table: str) -> TableSpec:
    """The spec of a canonical table, or a clear error naming the known ones."""
    try:
        return TABLES[table]
    except KeyError:
        from .errors import CrmConfigError

        raise CrmConfigError(
            f"unknown table {table!r}; the canonical tables are: {', '.join(TABLES)}"
        ) from None


def empty_frame(table: str, timezone: str = "UTC") -> pd.DataFrame:
    """An empty frame with the canonical columns and dtypes of ``table``."""
    return pd.DataFrame({c.name: pd.Series(dtype=_dtype(c.kind, timezone))
                         for c in spec(table).columns})


def _dtype(kind: str, timezone: str):
    return {
        "id": "str", "ref": "str", "text": "str", "category": "str", "currency": "str",
        "timestamp": pd.DatetimeTZDtype("us", timezone),
        "money": "float64", "float": "float64", "int": "Int64", "bool": "boolean",
    }[kind]


# ---------------------------------------------------------------- pandera schemas
EMAIL_RE = r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
PHONE_RE = r"^\+?[0-9 ()./-]{7,20}$"


def _is_tz_aware(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.DatetimeTZDtype)


def pandera_schema(table: str) -> pa.DataFrameSchema:
    """The row-level schema whose failures are quarantined.

    Column presence and types are guaranteed by the loader (a missing required column
    is one clear error before this runs), so this schema checks values only: keys not
    empty and unique (the first occurrence kept), allowed categories, non-negative
    money and a valid currency code.
    """
    t = spec(table)
    cols = {}
    for c in t.columns:
        checks = []
        if c.allowed:
            checks.append(pa.Check.isin(list(c.allowed), name="not_allowed",
                                        ignore_na=True))
        if c.kind == "money":
            checks.append(pa.Check.ge(0, name="negative_amount", ignore_na=True))
        if c.kind == "currency":
            checks.append(pa.Check.str_matches(r"^[A-Z]{3}$", name="bad_currency",
                                               ignore_na=True))
        if c.kind == "timestamp":
            checks.append(pa.Check(_is_tz_aware, element_wise=False, name="not_tz_aware"))
        cols[c.name] = pa.Column(
            checks=checks,
            nullable=c.nullable,
            unique=(c.kind == "id"),
            report_duplicates="exclude_first",
            required=True,
            name=c.name,
        )
    return pa.DataFrameSchema(cols, name=table, strict=False, coerce=False)


def glossary_of_columns() -> pd.DataFrame:
    """One row per canonical column: table, column, kind, required, doc (for the tutorial)."""
    rows = [
        {"table": t.name, "column": c.name, "kind": c.kind, "required": c.required,
         "personal data": c.pii, "meaning": c.doc}
        for t in TABLES.values() for c in t.columns
    ]
    return pd.DataFrame(rows)


def tables_overview() -> pd.DataFrame:
    """One row per canonical table: name, what CRMs call it, required, meaning, its columns."""
    return pd.DataFrame([
        {"table": t.name, "called in CRMs": t.crm_object, "required": t.required, "meaning": t.doc,
         "columns": ", ".join(t.column_names)}
        for t in TABLES.values()
    ])
