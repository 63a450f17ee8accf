"""``tierwise import customers FILE.csv``: the operator's customer import (api/usecases/imports.py) from a
CSV file, with a progress bar on a terminal, a summary, every problem by row, and an optional report file.

The header row names the columns (domain/imports.py: its own names in snake or camel case, or usual
aliases such as ``zip`` or ``dob``); ``--map 'Kundennr=external_ref'`` maps others, ``--map 'Notes=-'`` skips
one. Rows are numbered from 1 after the header, as in the report. Exit status: 0 when the file was written
(or a dry run found nothing wrong), 1 when a row had a problem (nothing written unless ``--partial``), 2 when
the file itself is unusable."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domain import imports as rules
from domain.errors import DomainError, Invalid, ValidationFailed

if TYPE_CHECKING:  # the use-case and the database are loaded by the command, not by `tierwise --help`
    from api.usecases.imports import ImportReport
    from infra.settings import Settings

SHOWN = 50  # problems printed; --report writes them all


def read_csv(path: Path, mapping: dict[str, str], delimiter: str) -> list[dict[str, str | None]]:
    """The rows of the file as import column -> cell (raises ``Invalid`` for an unusable header)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise Invalid([ValidationFailed("the file is empty (no header row)", field="header")])
        columns = rules.map_header([h.strip() for h in header], mapping)
        return [{columns[i]: cell for i, cell in enumerate(cells) if i in columns} for cells in reader]


def _mapping(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep:
            raise Invalid([ValidationFailed(f"--map takes COLUMN=FIELD, not '{pair}'", field="mapping")])
        out[source.strip()] = target.strip()
    return out


def write_report(path: Path, report: ImportReport) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["row", "kind", "field", "message"])
        for p in report.problems:
            out.writerow([p.row, "error", p.field, p.message])
        for p in report.warnings:
            out.writerow([p.row, "warning", p.field, p.message])
        for d in report.duplicates:
            for customer_id, reasons in d.candidates.items():
                out.writerow([d.row, "duplicate", "+".join(reasons), f"likely duplicate of customer {customer_id}"])


def print_report(report: ImportReport) -> None:
    print(report.summary())
    lines = [f"row {p.row}: {p.field}: {p.message}" for p in report.problems]
    lines += [f"row {p.row}: warning: {p.message}" for p in report.warnings]
    lines += [
        f"row {d.row}: likely duplicate of {customer_id} ({', '.join(reasons)})"
        for d in report.duplicates
        for customer_id, reasons in d.candidates.items()
    ]
    for line in lines[:SHOWN]:
        print(line)
    if len(lines) > SHOWN:
        print(f"... and {len(lines) - SHOWN} more (--report FILE writes them all)")


def cmd_import(args: argparse.Namespace, settings: Settings, url: str) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from api.usecases.caller import CLI, Caller
    from api.usecases.duplicates import EVERY_CRITERION
    from api.usecases.imports import ImportCustomers, import_customers
    from infra.db import RequestDb, create_engine
    from infra.repos import imports as imports_repo
    from infra.repos.base import Scope

    try:
        rows = read_csv(Path(args.file), _mapping(args.map or []), args.delimiter)
    except (Invalid, OSError, UnicodeDecodeError, csv.Error) as exc:
        message = exc.message if isinstance(exc, DomainError) else str(exc)
        print(f"tierwise import: {message}", file=sys.stderr)
        return 2

    async def run() -> int:
        engine = create_engine(url, settings)
        db = RequestDb(engine.connect)
        try:
            caller = CLI
            if args.partner:
                partner_id = await imports_repo.partner_named(db, args.partner)
                if partner_id is None:
                    print(f"tierwise import: no partner named '{args.partner}'", file=sys.stderr)
                    return 2
                caller = Caller(actor="cli", scope=Scope(partner_id=partner_id))
            with Progress(
                TextColumn("[bold]import[/bold] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                disable=not sys.stderr.isatty(),
            ) as bar:
                task = bar.add_task("check", total=len(rows))

                def show(phase: str, done: int, total: int) -> None:
                    bar.update(task, description=phase, completed=done, total=total)

                command = ImportCustomers(
                    rows=rows,
                    dry_run=args.dry_run,
                    all_or_nothing=not args.partial,
                    default_region=settings.default_phone_region,
                )
                report = await import_customers(db, caller, command, criteria=EVERY_CRITERION, progress=show)
        finally:
            await db.close()
            await engine.dispose()
        print_report(report)
        if args.report:
            write_report(Path(args.report), report)
        return 1 if report.problems else 0

    return asyncio.run(run())


def add_parser(sub: Any, fn: Any) -> None:
    imp = sub.add_parser("import", help="import data from files").add_subparsers(dest="import_cmd", required=True)
    ic = imp.add_parser("customers", help="existing customers from a CSV file (idempotent on external_ref)")
    ic.add_argument("file", help="a CSV file with a header row")
    ic.add_argument("--partner", help="import as this partner's customers (default: staff-owned)")
    ic.add_argument("--dry-run", action="store_true", help="check and report only: nothing is written")
    ic.add_argument("--partial", action="store_true", help="write the valid rows even if others are invalid")
    ic.add_argument(
        "--map", action="append", metavar="COLUMN=FIELD", help="map a column of the file (FIELD '-' skips it)"
    )
    ic.add_argument("--delimiter", default=",", help="the CSV delimiter (default ',')")
    ic.add_argument("--report", metavar="FILE", help="write every problem, warning and duplicate to this CSV file")
    ic.set_defaults(fn=fn)
