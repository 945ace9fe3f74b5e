"""`treatment-marts` command: generate synthetic extracts, run or validate a period, show where outputs are.

Exit codes: 0 success; 1 the data or a rule stopped the run (message says what to fix); 2 bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import Literal

from treatment_marts.core.ids import Period, RunId, new_run_id
from treatment_marts.core.settings import Settings

log = logging.getLogger("treatment_marts")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(data_root=getattr(args, "data_root", None), warehouse_url=getattr(args, "warehouse", None))


def known_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the input or configuration is wrong": reported as one clear message, no traceback."""
    from treatment_marts.core.config import ConfigError
    from treatment_marts.core.ids import InvalidIdentifier
    from treatment_marts.deidentify.recode import RecodeError
    from treatment_marts.ingest.land import ExtractError
    from treatment_marts.marts.builder import MartBuildError
    from treatment_marts.pipeline.record import PeriodBusy
    from treatment_marts.pipeline.validate import DriftCheckFailed

    errors: list[type[BaseException]] = [
        ConfigError,
        InvalidIdentifier,
        ExtractError,
        MartBuildError,
        RecodeError,
        DriftCheckFailed,
        PeriodBusy,
    ]
    for module, name in (
        ("treatment_marts.validation.gx_runner", "ValidationFailed"),
        ("treatment_marts.validation.quarantine", "QuarantineCeilingExceeded"),
        ("treatment_marts.disclosure.audit", "DisclosureAuditFailed"),
        ("treatment_marts.disclosure.tables", "ProtectionError"),
        ("treatment_marts.disclosure.record_level", "AnonymisationError"),
        ("treatment_marts.publish.release", "PublishError"),
        ("treatment_marts.pipeline.protect", "EarlierReleaseUnreadable"),
        ("treatment_marts.pipeline.protect", "RevisionChangesAreas"),
    ):
        with contextlib.suppress(ImportError, AttributeError):  # pragma: no cover - absent in a partial install
            errors.append(getattr(__import__(module, fromlist=[name]), name))
    return tuple(errors)


# --- commands -----------------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from treatment_marts.ops.synth import generate_extract, generate_history, write_extract

    areas = [a.strip() for a in args.areas.split(",")] if args.areas else None
    out = Path(args.out)
    if args.months == 1:
        frame = generate_extract(args.period, clients=args.clients, areas=areas, seed=args.seed)
        path = write_extract(frame, out, args.format)
        print(f"wrote {len(frame):,} episode rows for {args.period} to {path}")
        return 0
    # Several months: `--out` is a folder; one inbox partition per month, as the DAG expects.
    for period, frame in generate_history(args.period, args.months, clients=args.clients, areas=areas, seed=args.seed):
        suffix: Literal["csv", "xlsx", "parquet"] = args.format or "csv"
        path = write_extract(frame, out / f"period={period}" / f"extract.{suffix}", suffix)
        print(f"wrote {len(frame):,} episode rows for {period} to {path}")
    return 0


def _run_id(args: argparse.Namespace) -> RunId:
    """`--run-id` as given (refused when unsafe as a folder name), else a timestamped id."""
    return RunId.parse(args.run_id) if args.run_id else new_run_id()


def cmd_run(args: argparse.Namespace) -> int:
    from treatment_marts.pipeline.run import run_period

    settings = _settings(args)
    result = run_period(settings, args.period, args.extract, run_id=_run_id(args))
    published = result.publish
    print(f"published period {args.period} (run {published.run_id}):")
    for name, path in published.marts.items():
        print(f"  mart {name}: {path}")
    print(f"  suppression log (restricted): {published.suppression_log}")
    print(f"  IG report (restricted): {published.ig_report}")
    for docs in result.validate.data_docs:
        if docs:
            print(f"  GX Data Docs (restricted): {docs}")
    print(f"  warehouse: {settings.warehouse_url}")
    checked = result.validate  # what validation let through: an engineer must see it, not only the log
    if checked.warnings:
        print(f"  validation: {checked.warnings} warning-level expectation failure(s); see the GX Data Docs")
    if checked.quarantined_rows:
        print(f"  quarantine: {checked.quarantined_rows} row(s) set aside (restricted quarantine zone)")
    for flag in checked.month_over_month:
        print(f"  month-over-month: {flag}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Land and validate without accepting or publishing: the same checks and quarantine as a run."""
    from treatment_marts.pipeline.land import land
    from treatment_marts.pipeline.validate import validate
    from treatment_marts.validation.gx_runner import ValidationFailed

    settings = _settings(args)
    run_id = _run_id(args)
    landed = land(settings, args.period, args.extract, run_id)
    try:
        result = validate(settings, args.period, run_id, landed.landed_paths, accept=False, echo=print)
    except ValidationFailed as failed:  # its summary was printed above, with every other file's
        if failed.report.data_docs_index:
            print(f"GX Data Docs: {failed.report.data_docs_index}")
        print("validation failed: blocking expectation(s) above; nothing was accepted", file=sys.stderr)
        return 1
    for docs in result.data_docs:
        if docs:
            print(f"GX Data Docs: {docs}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from treatment_marts.ops.retention import load_operations, purge_expired

    settings = _settings(args)
    retention = load_operations(settings.config_dir).retention
    months = args.months or retention.raw_months
    entries = purge_expired(
        settings,
        current_period=args.period,
        raw_months=months,
        actor=args.actor,
        history_months=retention.history_months,
    )
    for entry in entries:
        print(f"purged {entry['zone']} period={entry['period']}: {entry['files']} file(s) ({entry['reason']})")
    if not entries:
        print(f"nothing older than {months} months before {args.period}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from treatment_marts.ops.bench import main as bench_main

    if args.loss:
        from treatment_marts.ops.bench import loss_main

        return loss_main(Path(args.json) if args.json else None, args.seed)
    if args.optimal_gap:
        from treatment_marts.disclosure.optimal_gap import gap_on_random_tables, summarise_gap

        gaps = gap_on_random_tables(args.optimal_gap, shape=(3, 4))
        print(gaps.to_string(index=False))
        summary = summarise_gap(gaps)
        print(
            f"secondary suppression on {summary['tables']} random 3x4 tables: suppressor loss {summary['suppressor_loss']} "
            f"vs optimal {summary['optimal_loss']} (sum of suppressed values): gap {summary['gap_percent']}%, "
            f"{summary['tables_at_optimum']} table(s) at the optimum"
        )
        return 0

    sizes = [int(x) for x in args.clients.split(",")]
    load = None
    if args.load:
        months, _, areas = args.load.lower().partition("x")
        if not (months.isdigit() and areas.isdigit() and int(months) >= 2 and int(areas) >= 1):
            print("error: --load takes MONTHSxAREAS, e.g. 24x20 (at least 2 months)", file=sys.stderr)
            return 2
        load = (int(months), int(areas))
    return bench_main(
        sizes,
        args.format,
        Path(args.json) if args.json else None,
        args.validation,
        args.catalogue,
        load,
        args.load_clients,
    )


def cmd_where(args: argparse.Namespace) -> int:
    settings = _settings(args)
    period = args.period
    paths = {
        "public marts": settings.public_dir / "marts",
        "raw extracts (restricted)": settings.raw_dir / f"period={period}",
        "suppression log (restricted)": settings.restricted_dir / "suppression_log" / f"period={period}",
        "IG reports (restricted)": settings.restricted_dir / "reports" / f"period={period}",
        "GX Data Docs (restricted)": settings.gx_dir,
        "warehouse": settings.warehouse_url,
    }
    for label, location in paths.items():
        print(f"{label:32s} {location}")
    docs = sorted(settings.gx_dir.rglob("index.html")) if settings.gx_dir.exists() else []
    if docs:
        print(f"{'GX Data Docs index':32s} {docs[0]}")
    return 0


# --- parser -------------------------------------------------------------------------------------------


def _period(text: str) -> Period:
    """`--period`, checked once here (argparse reports a bad one as a usage error, exit 2)."""
    try:
        return Period.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="treatment-marts", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-root", help="data root (default $TREATMENT_MARTS_DATA_ROOT or ./data)")
        p.add_argument("--warehouse", help="SQLAlchemy URL (default sqlite:///<data-root>/warehouse.db)")

    gen = sub.add_parser("generate", help="write a synthetic NDTMS-style extract")
    gen.add_argument("--period", required=True, type=_period, help="YYYY-MM (first month when --months > 1)")
    gen.add_argument("--months", type=int, default=1, help="consecutive months to write (default 1)")
    gen.add_argument(
        "--clients", type=int, help="adults in treatment in the month, across areas (default: areas.yaml sizes)"
    )
    gen.add_argument("--areas", help="comma-separated area names (default: all configured areas)")
    gen.add_argument("--seed", type=int, default=20240101)
    gen.add_argument(
        "--format", choices=["csv", "xlsx", "parquet"], help="default: from --out suffix (csv for folders)"
    )
    gen.add_argument("--out", required=True, help="file path (or folder when --months > 1)")
    gen.set_defaults(func=cmd_generate)

    run = sub.add_parser("run", help="land, validate, protect and publish one period in-process")
    run.add_argument("--period", required=True, type=_period, help="YYYY-MM")
    run.add_argument("--extract", required=True, help="extract file, or a folder of extract files")
    run.add_argument("--run-id", help="default: a timestamped id")
    common(run)
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="land and validate an extract; print the summary")
    val.add_argument("--period", required=True, type=_period, help="YYYY-MM")
    val.add_argument("--extract", required=True, help="extract file, or a folder of extract files")
    val.add_argument("--run-id")
    common(val)
    val.set_defaults(func=cmd_validate)

    purge = sub.add_parser("purge", help="delete raw and landed extracts past the retention window (audited)")
    purge.add_argument("--period", required=True, type=_period, help="the current period, YYYY-MM")
    purge.add_argument("--months", type=int, help="override operations.yaml retention.raw_months")
    purge.add_argument("--actor", default="treatment-marts", help="recorded in the audit entry")
    common(purge)
    purge.set_defaults(func=cmd_purge)

    bench = sub.add_parser("bench", help="benchmark the pipeline: per-stage time and peak memory, baseline, scaling")
    bench.add_argument("--clients", default="30000,100000,300000", help="comma-separated sizes (adults in treatment)")
    bench.add_argument("--format", choices=["csv", "parquet"], default="parquet")
    bench.add_argument("--json", help="also write the figures as JSON here")
    bench.add_argument(
        "--optimal-gap",
        type=int,
        metavar="TABLES",
        help="instead: the suppressor's information loss beside the exact optimum on TABLES random small tables",
    )
    bench.add_argument(
        "--validation",
        type=int,
        metavar="CLIENTS",
        help="instead: validation throughput, GX vs the same rules in plain pandas, on a month of CLIENTS",
    )
    bench.add_argument(
        "--catalogue",
        type=int,
        metavar="CLIENTS",
        help="instead: build + publish time and peak memory of the whole mart catalogue on a month of CLIENTS",
    )
    bench.add_argument(
        "--load",
        metavar="MONTHSxAREAS",
        help="instead: a backfill of MONTHS periods x AREAS areas back to back (e.g. 24x20): time and RSS per period",
    )
    bench.add_argument(
        "--load-clients", type=int, metavar="N", help="with --load: adults per month (default: areas.yaml sizes)"
    )
    bench.add_argument(
        "--loss",
        action="store_true",
        help="instead: information loss (issue 14's figures) on a generated default month, and protect-stage time",
    )
    bench.add_argument("--seed", type=int, default=20240101, help="with --loss: the generated month's seed")
    bench.set_defaults(func=cmd_bench)

    where = sub.add_parser("where", help="print where a period's outputs are")
    where.add_argument("--period", required=True, type=_period, help="YYYY-MM")
    common(where)
    where.set_defaults(func=cmd_where)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except known_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
