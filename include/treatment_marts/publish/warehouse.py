"""The SQL warehouse through SQLAlchemy: SQLite by default, PostgreSQL for real.

Public marts and restricted data are kept apart:

* PostgreSQL: schema ``marts`` (grant the analysts' role USAGE/SELECT on this one only) and schema
  ``restricted`` (the suppression log, true values), usually in the same database/URL;
* SQLite has no schemas, so the restricted tables live in a separate database file under the restricted
  zone (``<data-root>/restricted/warehouse_restricted.db``) and the marts in ``<data-root>/warehouse.db``.

Table and column names come from configuration: each is checked against ``^[a-z][a-z0-9_]{0,62}$`` and
quoted by SQLAlchemy's identifier preparer; values always travel as bound parameters, never in SQL text.

SQLite note: Python's ``sqlite3`` module does not open a transaction before DDL, so a ``CREATE TABLE``
would commit on its own. :func:`engine_for` takes over transaction control (``isolation_level=None`` on
the driver, an explicit ``BEGIN``/``BEGIN IMMEDIATE`` on SQLAlchemy's begin event) so that DDL and DML of
one ``engine.begin()`` block commit or roll back together, also when the process is killed half-way (the
hot journal is rolled back by the next connection).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from treatment_marts.core.files import make_private_dirs, private_top

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
PUBLIC_SCHEMA = "marts"
RESTRICTED_SCHEMA = "restricted"
CONNECT_TIMEOUT_S = 10
SQLITE_BUSY_TIMEOUT_S = 60


class WarehouseError(RuntimeError):
    """The warehouse cannot be reached or written; the message says which and why, never record values."""


class UnsafeIdentifier(WarehouseError, ValueError):
    """A table or column name from configuration is not a plain lower_snake_case SQL identifier."""


def check_identifier(name: object, what: str = "name") -> str:
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        shown = (
            repr(name)
            if isinstance(name, str) and len(name) <= 80
            else f"<{type(name).__name__} of length {len(str(name))}>"
        )
        raise UnsafeIdentifier(
            f"unsafe SQL {what} {shown}: names must match ^[a-z][a-z0-9_]{{0,62}}$ "
            "(lower_snake_case, starting with a letter, at most 63 characters); fix the mart configuration"
        )
    return name


def is_sqlite(url: str) -> bool:
    return sa.engine.make_url(url).get_backend_name() == "sqlite"


def describe(urls: str | Iterable[str]) -> str:
    """URLs without passwords, for messages and logs."""
    if isinstance(urls, str):
        urls = [urls]
    return ", ".join(sa.engine.make_url(u).render_as_string(hide_password=True) for u in urls)


def _prepare_sqlite_file(path: Path) -> None:
    """Create the database's folder; inside a restricted zone, folder and file are owner-only from creation
    (SQLite keeps an existing file's mode, so the file is created empty at 0600 before SQLite opens it)."""
    top = private_top(path.parent)
    if top is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    make_private_dirs(path.parent, top=top)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def engine_for(url: str, *, write: bool = False) -> Engine:
    """An engine for one publish or read: no pooling (short-lived), bounded connect time.

    For SQLite the database folder is created and transactions are made to cover DDL (module docstring);
    ``write=True`` takes the write lock at BEGIN (``BEGIN IMMEDIATE``) so two writers queue instead of
    failing on lock upgrade.
    """
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _prepare_sqlite_file(Path(parsed.database).expanduser())
        engine = sa.create_engine(url, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        begin = "BEGIN IMMEDIATE" if write else "BEGIN"

        @sa.event.listens_for(engine, "connect")
        def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _explicit_begin(conn: Connection) -> None:
            conn.exec_driver_sql(begin)

        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "treatment-marts"}
    return sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)


def schema_for(url: str, restricted: bool) -> str | None:
    """``marts`` / ``restricted`` on PostgreSQL (and other schema-aware servers); None on SQLite."""
    if is_sqlite(url):
        return None
    return RESTRICTED_SCHEMA if restricted else PUBLIC_SCHEMA


def _sql_type(series: pd.Series) -> sa.types.TypeEngine:
    if pd.api.types.is_bool_dtype(series):
        return sa.Boolean()
    if pd.api.types.is_integer_dtype(series):
        return sa.BigInteger()
    if pd.api.types.is_float_dtype(series):
        return sa.Float(precision=53)
    if pd.api.types.is_datetime64_any_dtype(series):
        return sa.DateTime()
    return sa.Text()


def _check_columns(frame: pd.DataFrame) -> None:
    seen: set[str] = set()
    for column in frame.columns:
        check_identifier(column, "column name")
        if column in seen:
            raise WarehouseError(f"duplicate column name {column!r}")
        seen.add(column)


def ensure_table(conn: Connection, name: str, frame: pd.DataFrame, schema: str | None) -> sa.Table:
    """Create the table (and schema) if absent; add columns the frame has and the table lacks.

    Runs inside the caller's transaction (PostgreSQL and, with :func:`engine_for`, SQLite have
    transactional DDL), so a failed publish leaves no half-created table behind.
    """
    check_identifier(name, "table name")
    _check_columns(frame)
    if schema is not None:
        check_identifier(schema, "schema name")
        conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
    inspector = sa.inspect(conn)
    if not inspector.has_table(name, schema=schema):
        table = sa.Table(
            name, sa.MetaData(schema=schema), *(sa.Column(str(c), _sql_type(frame[c])) for c in frame.columns)
        )
        table.create(conn)
        return table
    existing = {c["name"] for c in inspector.get_columns(name, schema=schema)}
    preparer = conn.dialect.identifier_preparer
    for column in frame.columns:
        if column not in existing:
            # Core SQLAlchemy has no ALTER TABLE construct. Both identifiers were validated above and are
            # quoted by the dialect's preparer; the type is compiled from our own mapping, no input text.
            target = sa.Table(name, sa.MetaData(schema=schema))
            column_type = _sql_type(frame[column]).compile(dialect=conn.dialect)
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(target)} ADD COLUMN {preparer.quote(column)} {column_type}"
            )
    return sa.Table(name, sa.MetaData(schema=schema), autoload_with=conn)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain Python values (int, float, str, ...) with None for every kind of missing value."""
    plain = frame.astype(object).where(frame.notna(), None)
    rows = plain.to_dict(orient="records")
    for row in rows:
        for key, value in row.items():
            if hasattr(value, "item") and not isinstance(value, (str, bytes)):
                row[key] = value.item()  # numpy scalar -> Python scalar (psycopg adapts only the latter)
    return rows


def replace_rows(conn: Connection, name: str, frame: pd.DataFrame, schema: str | None, where: dict[str, Any]) -> int:
    """Delete the rows matching ``where`` (column = value, all of them) and insert ``frame``.

    Within the caller's transaction: readers see the old rows or the new, never neither.
    """
    table = ensure_table(conn, name, frame, schema)
    condition = sa.and_(*(table.c[column] == value for column, value in where.items()))
    conn.execute(table.delete().where(condition))
    rows = records(frame)
    if rows:
        conn.execute(table.insert(), rows)
    return len(rows)


def replace_period(conn: Connection, name: str, frame: pd.DataFrame, period: str, schema: str | None) -> int:
    """Delete the period's rows and insert the new ones (within the caller's transaction)."""
    return replace_rows(conn, name, frame, schema, {"period": period})


def table_names(url: str, restricted: bool = False) -> list[str]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return sorted(sa.inspect(conn).get_table_names(schema=schema_for(url, restricted)))
    finally:
        engine.dispose()


def read_table(url: str, name: str, restricted: bool = False, where_period: str | None = None) -> pd.DataFrame:
    """A whole warehouse table (or one period of it) as a DataFrame."""
    check_identifier(name, "table name")
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            table = sa.Table(name, sa.MetaData(schema=schema_for(url, restricted)), autoload_with=conn)
            query = sa.select(table)
            if where_period is not None:
                query = query.where(table.c.period == where_period)
            return pd.read_sql(query, conn)
    finally:
        engine.dispose()
