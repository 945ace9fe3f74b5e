"""The warehouse layer: identifier validation, transactional table creation on SQLite and PostgreSQL,
schema evolution, and the PostgreSQL test server fixture itself."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from postgres_server import PostgresUnavailable, create_database, find_pg_bin
from treatment_marts.publish.warehouse import (
    UnsafeIdentifier,
    check_identifier,
    engine_for,
    ensure_table,
    read_table,
    replace_period,
    schema_for,
    table_names,
)


@pytest.mark.parametrize("name", ["a", "m_area", "in_treatment_substance_area_sex", "x" * 63, "a1_2"])
def test_plain_identifiers_pass(name: str) -> None:
    assert check_identifier(name) == name


@pytest.mark.parametrize("name", ["", "A", "1a", "_a", "x" * 64, "a-b", "a b", 'a"b', "a;drop", "é", "a\x00", None, 3])
def test_unsafe_identifiers_fail_with_a_clear_message(name: object) -> None:
    with pytest.raises(UnsafeIdentifier, match=r"unsafe SQL table name .*lower_snake_case"):
        check_identifier(name, "table name")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'w.db'}"
    return create_database(request.getfixturevalue("postgres_url"))


def frame(period: str = "2024-03") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": pd.array([period] * 2, dtype="string"),
            "area": pd.array(["A", "Total"], dtype="string"),
            "count": pd.array([5, None], dtype="Int64"),
            "status": pd.array([None, "c"], dtype="string"),
        }
    )


def test_a_failed_transaction_leaves_no_table_behind(url: str) -> None:
    """DDL is transactional on both backends (SQLite needs the explicit BEGIN in engine_for)."""
    engine = engine_for(url, write=True)
    schema = schema_for(url, restricted=False)
    with pytest.raises(RuntimeError, match="boom"), engine.begin() as conn:
        replace_period(conn, "m_area", frame(), "2024-03", schema)
        raise RuntimeError("boom")
    engine.dispose()
    assert "m_area" not in table_names(url)


def test_replace_period_and_schema_evolution(url: str) -> None:
    engine = engine_for(url, write=True)
    schema = schema_for(url, restricted=False)
    with engine.begin() as conn:
        replace_period(conn, "m_area", frame("2024-03"), "2024-03", schema)
        replace_period(conn, "m_area", frame("2024-04"), "2024-04", schema)
    with engine.begin() as conn:  # the mart gains a column: added, older rows get null
        replace_period(conn, "m_area", frame("2024-04").assign(percent=[50.0, None]), "2024-04", schema)
    engine.dispose()
    rows = read_table(url, "m_area").sort_values(["period", "area"]).reset_index(drop=True)
    assert len(rows) == 4 and list(rows.columns) == ["period", "area", "count", "status", "percent"]
    assert rows["percent"].isna().sum() == 3 and rows.loc[rows.period == "2024-04", "percent"].max() == 50.0
    assert rows["count"].sum() == 10


def test_tables_cannot_be_created_with_unsafe_column_names(url: str) -> None:
    engine = engine_for(url, write=True)
    with pytest.raises(UnsafeIdentifier, match="column name"), engine.begin() as conn:
        ensure_table(
            conn, "m_area", frame().rename(columns={"area": 'area" text); drop table x; --'}), schema_for(url, False)
        )
    engine.dispose()
    assert "m_area" not in table_names(url)


def test_the_postgres_fixture_is_a_real_server(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        version = conn.execute(sa.text("show server_version_num")).scalar_one()
        assert int(version) >= 130000
        assert conn.execute(sa.text("select inet_server_addr()::text")).scalar_one().startswith("127.0.0.1")
    engine.dispose()


def test_missing_postgres_binaries_fail_with_install_instructions(tmp_path: Path) -> None:
    with pytest.raises(PostgresUnavailable, match=r"not found .*apt-get install -y postgresql"):
        find_pg_bin(str(tmp_path / "no-such-bin"))


def test_a_restricted_sqlite_warehouse_is_owner_only_from_creation(tmp_path: Path) -> None:
    import stat

    db = tmp_path / "data" / "restricted" / "warehouse_restricted.db"
    engine_for(f"sqlite:///{db}", write=True).dispose()
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    public = tmp_path / "data" / "warehouse.db"
    engine = engine_for(f"sqlite:///{public}", write=True)
    with engine.begin() as conn:
        conn.exec_driver_sql("create table t (x int)")
    engine.dispose()
    assert stat.S_IMODE(public.stat().st_mode) & 0o044, "the public warehouse stays readable"
