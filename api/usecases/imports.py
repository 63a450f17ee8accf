"""The customer import (issue 16): many existing customers at once, from the CLI (``tierwise import customers
FILE.csv``, operators) or the ``importCustomers`` mutation (partners, within their own partner; data stewards).

One use-case for both, free of GraphQL. What it does, in order:

1. every row is checked with createCustomer's rules (domain/imports.py over domain/customers.py): all
   problems of all rows, with row number, field and message;
2. a reference given twice in the data is a problem of the later row; a reference the owner has already
   is *existing*: not written again (a re-run changes nothing), and a warning when the row differs from
   what is stored (compared on the name, locale, stage and blind indexes: nothing is decrypted);
3. the new rows are matched against the owner's live customers on the duplicate criteria the caller may
   use (api/usecases/duplicates.py), and against each other (the same blind index as an earlier row of
   the data): warnings, never a refusal;
4. unless it is a dry run, the new rows are written in one transaction, in chunks, each customer exactly as
   createCustomer writes one (encrypted values, blind indexes, a metrics row, the initial tier with its
   history row and ``tier.changed`` event, churn scoring queued as a job) — but set-based: a chunk is
   copied into a staging table (``COPY``) and inserted already placed in its tier by one statement
   (infra/after_change.py ``insert_staged``), so each customer row is written once.

**All or nothing** by default: a single invalid row and nothing is written (the report lists every problem;
fix the file and run it again — rows already written are skipped). With ``all_or_nothing=False`` the valid
rows are written and the invalid ones reported and skipped. Either way the write is one transaction: a
failure half-way leaves nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from api.usecases.caller import Caller
from domain import imports as rules
from domain.errors import Forbidden, ValidationFailed
from infra import crypto
from infra.after_change import insert_staged
from infra.db import RequestDb
from infra.repos import imports as imports_repo
from infra.repos import matching
from infra.repos.base import Executor, Scope

CHUNK = 1000  # rows per look-up statement (of references, of blind indexes)
WRITE_CHUNK = 5000  # rows per write (one COPY, one insert statement of a few hundred ms)
# import column -> the Customer field whose write grant it needs
WRITES = {
    "external_ref": "Customer.externalRef",
    "name": "Customer.name",
    "email": "Customer.email",
    "phone": "Customer.phone",
    "national_id": "Customer.nationalId",
    "birth_date": "Customer.birthDate",
    "locale": "Customer.locale",
    "lifecycle_stage": "Customer.lifecycleStage",
    **{column: "Customer.address" for column in rules.COLUMNS if column.startswith("address_")},
}

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class ImportCustomers:
    rows: Sequence[Mapping[str, str | None]]  # import column -> cell text (domain/imports.py COLUMNS)
    dry_run: bool = False
    all_or_nothing: bool = True
    default_region: str = "DE"


@dataclass(frozen=True)
class RowDuplicate:
    row: int
    candidates: dict[UUID, list[str]]  # existing customer -> criteria it matched on


@dataclass
class ImportReport:
    rows: int = 0
    valid: int = 0  # rows that passed every check (new or existing)
    invalid: int = 0
    created: int = 0
    existing: int = 0  # references the owner had already: not written again
    written: bool = False
    dry_run: bool = False
    problems: list[rules.RowProblem] = field(default_factory=list)  # errors (rows not written)
    warnings: list[rules.RowProblem] = field(default_factory=list)  # existing rows that differ
    duplicates: list[RowDuplicate] = field(default_factory=list)
    created_ids: dict[int, UUID] = field(default_factory=dict)  # row -> new customer

    def summary(self) -> str:
        done = "dry run, nothing written" if self.dry_run else ("written" if self.written else "nothing written")
        return (
            f"{self.rows} rows: {self.valid} valid, {self.invalid} invalid; {self.created} created, "
            f"{self.existing} existing (skipped), {len(self.duplicates)} with likely duplicates, "
            f"{len(self.warnings)} warnings; {done}"
        )


def check_write_grants(columns: Collection[str], can_write: Callable[[str], bool] | None) -> None:
    """Every column given needs the write grant of its field (as in createCustomer); the operator has all."""
    if can_write is None:
        return
    denied = sorted({WRITES[c] for c in columns if c in WRITES and not can_write(WRITES[c])})
    if denied:
        raise Forbidden(f"not allowed to set {', '.join(f.split('.', 1)[1] for f in denied)}", field="rows")


def _chunks(items: Sequence[Any], size: int = CHUNK) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _differs(values: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    return [name for name in imports_repo.COMPARED if values.get(name) != stored.get(name)]


async def _checked_rows(
    db: Executor, caller: Caller, cmd: ImportCustomers, report: ImportReport, progress: Progress
) -> dict[int, dict[str, Any]]:
    """Steps 1 and 2: the new rows (row number -> stored form), every problem and warning in ``report``."""
    today = dt.datetime.now(dt.UTC).date()
    valid: dict[int, dict[str, Any]] = {}
    for n, cells in enumerate(cmd.rows, start=1):
        values, problems = rules.check_row(n, cells, default_region=cmd.default_region, today=today)
        report.problems += problems
        if values is not None:
            valid[n] = values
        if n % CHUNK == 0:
            progress("check", n, len(cmd.rows))
    progress("check", len(cmd.rows), len(cmd.rows))
    repeated = rules.repeated_refs((n, v["external_ref"]) for n, v in valid.items())
    for problem in repeated:
        valid.pop(problem.row)
    report.problems += repeated
    new: dict[int, dict[str, Any]] = {}
    numbers = list(valid)
    for chunk in _chunks(numbers):
        stored = await imports_repo.existing(db, [valid[n]["external_ref"] for n in chunk], scope=caller.scope)
        for n in chunk:
            row = imports_repo.stored_form(valid[n])
            found = stored.get(row["external_ref"])
            if found is None:
                new[n] = row
                continue
            report.existing += 1
            differing = _differs(row, found)
            if differing:
                report.warnings.append(
                    rules.RowProblem(
                        n,
                        "external_ref",
                        "already imported, and this row differs from the stored customer "
                        f"({', '.join(differing)}): not updated (updateCustomer changes a customer)",
                    )
                )
    report.problems.sort(key=lambda p: p.row)
    report.invalid = len({p.row for p in report.problems})
    report.valid = len(valid)
    return new


async def _duplicates(
    db: Executor, new: dict[int, dict[str, Any]], *, scope: Scope, criteria: Collection[str]
) -> list[RowDuplicate]:
    """Step 3: the likely duplicates of the new rows among the owner's live customers."""
    out: list[RowDuplicate] = []
    for chunk in _chunks(list(new)):
        # the stored form holds the blind indexes already (``index_row`` would compute them again)
        rows = [{"n": n, **{k: new[n][k] for k in crypto.BLIND_INDEX_COLUMNS}} for n in chunk]
        found = await matching.by_blind_index(db, rows, scope=scope, criteria=criteria)
        out += [RowDuplicate(n, found[n]) for n in chunk if n in found]
    return out


def _repeated_in_file(new: dict[int, dict[str, Any]], criteria: Collection[str]) -> list[rules.RowProblem]:
    """New rows sharing a blind index (on a criterion the caller may use) with an earlier new row of the data."""
    warnings = []
    first_seen: dict[tuple[str, str], int] = {}
    for n, row in new.items():
        same = []
        for crit, column in matching.INDEXED.items():
            value = row.get(column)
            if crit not in criteria or value is None:
                continue
            earlier = first_seen.setdefault((column, value), n)
            if earlier != n:
                same.append(f"{crit} as row {earlier}")
        if same:
            warnings.append(rules.RowProblem(n, "row", f"likely the same customer: same {', '.join(same)}"))
    return warnings


async def import_customers(
    db: RequestDb,
    caller: Caller,
    cmd: ImportCustomers,
    *,
    criteria: Collection[str],
    can_write: Callable[[str], bool] | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Check, match and (unless a dry run) write the rows of ``cmd`` for the caller's owner (its partner, or
    none for staff and the CLI); see the module's documentation. ``criteria``: the duplicate criteria the
    caller may be matched on; ``can_write``: its field write grants (None: the operator's CLI)."""
    show: Progress = progress or (lambda _phase, _done, _total: None)
    if not cmd.rows:
        raise ValidationFailed("no rows to import", field="rows")
    check_write_grants({c for row in cmd.rows for c, v in row.items() if v not in (None, "")}, can_write)
    report = ImportReport(rows=len(cmd.rows), dry_run=cmd.dry_run)
    async with db.unit_of_work() as uow:
        new = await _checked_rows(uow, caller, cmd, report, show)
        # the likely duplicates among the owner's customers: a partner's, or staff's
        report.duplicates = await _duplicates(uow, new, scope=caller.scope, criteria=criteria)
        report.warnings = sorted(report.warnings + _repeated_in_file(new, criteria), key=lambda p: p.row)
        if cmd.dry_run or (report.problems and cmd.all_or_nothing) or not new:
            return report  # nothing written (the unit of work is not committed)
        numbers = list(new)
        by_ref: dict[str, UUID] = {}
        for done, chunk in enumerate(_chunks(numbers, WRITE_CHUNK), start=1):
            # copied into a staging table, then inserted already in their initial tier with their metrics
            # row, history and event; churn scoring queued as a job. Set-based, a chunk at a time (each
            # statement stays short, under the statement timeout, whatever the size of the file)
            await imports_repo.stage(uow.conn, [new[n] for n in chunk], scope=caller.scope)
            by_ref |= await insert_staged(uow.conn, actor=caller.actor)
            show("write", min(done * WRITE_CHUNK, len(numbers)), len(numbers))
        report.created_ids = {n: by_ref[new[n]["external_ref"]] for n in numbers if new[n]["external_ref"] in by_ref}
        report.existing += len(numbers) - len(report.created_ids)  # taken by another request meanwhile
        report.created = len(report.created_ids)
        uow.commit()
        report.written = True
    return report
