"""Reading a published release back: a mart's Parquet, or the warehouse's `releases` row of a period.

For analysts and tests; the pipeline itself never reads its public output.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from treatment_marts.core.ids import PERIOD_PATTERN, InvalidIdentifier, Period
from treatment_marts.core.settings import Settings
from treatment_marts.publish.canonical import identifier
from treatment_marts.publish.errors import PublishError, warehouse_failure
from treatment_marts.publish.release import RELEASES_TABLE
from treatment_marts.publish.warehouse import engine_for, schema_for


def _period(period: str) -> Period:
    try:
        return Period.parse(period)
    except InvalidIdentifier as exc:
        raise PublishError(str(exc)) from None


def read_mart(settings: Settings, mart: str, period: str | None = None) -> pd.DataFrame:
    """One published period of a mart, or every published period (in order), ``period`` as ``string``.

    A plain ``pd.read_parquet`` of the files gives ``period`` as a categorical (layout.PERIOD_TYPE, so the
    mart folder reads as one Hive-partitioned dataset); this reader returns the same dtypes the warehouse
    and the pipeline use, whichever periods are combined."""
    identifier(mart, "mart name")
    root = settings.public_dir / "marts" / mart
    if period is not None:
        folders = [root / f"period={_period(period)}"]
    else:
        folders = sorted(p for p in root.glob("period=*") if PERIOD_PATTERN.match(p.name.removeprefix("period=")))
    frames = [
        pd.read_parquet(folder / "data.parquet").astype({"period": "string"})
        for folder in folders
        if (folder / "data.parquet").exists()
    ]
    if not frames:
        raise FileNotFoundError(
            f"no published release of mart {mart}" + (f" for {period}" if period else "") + f" under {root}"
        )
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def published_release(settings: Settings, period: str) -> dict[str, Any] | None:
    """The warehouse's ``releases`` row of a period (run_id, published_at, manifest), or None."""
    checked = str(_period(period))
    engine = engine_for(settings.warehouse_url)
    try:
        with engine.connect() as conn:
            schema = schema_for(settings.warehouse_url, restricted=False)
            if not sa.inspect(conn).has_table(RELEASES_TABLE, schema=schema):
                return None
            table = sa.Table(RELEASES_TABLE, sa.MetaData(schema=schema), autoload_with=conn)
            row = conn.execute(sa.select(table).where(table.c.period == checked)).mappings().first()
    except SQLAlchemyError as exc:
        raise warehouse_failure(settings.warehouse_url, exc, "connect") from None
    finally:
        engine.dispose()
    if row is None:
        return None
    return {
        "period": row["period"],
        "run_id": row["run_id"],
        "published_at": row["published_at"],
        "manifest": json.loads(row["manifest"]),
    }
