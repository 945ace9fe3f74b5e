"""The history of accepted months: the recoded, pseudonymised analysis rows of each accepted extract.

Windows (marts/windows.py) count clients over up to 36 months, and trends over every closed financial
year, while the identifying raw and landed extracts are purged after ``retention.raw_months``
(operations.yaml). So the protect stage keeps, per accepted month, the recoded frame it built its marts
from, in ``restricted/history/period=YYYY-MM/episodes.parquet`` (0600): age bands instead of dates of
birth, the keyed pseudonym instead of the attributor, no postcode, initials or client reference (recode
refuses to let an identifying column out). It is still client-level data, so it stays in the restricted
zone and has its own retention, ``retention.history_months`` (ops/retention.purge_expired).

The protect stage stores the month once its release is protected (a revision refused, or one that cannot
be protected, leaves the month as it was); a revision that is protected replaces the month's file (one
writer, atomic replace). A month with an accepted extract but no file (stored before this store existed)
is recoded from its accepted extract on first use and stored then.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from treatment_marts.core.config import AreasConfig, RulesConfig
from treatment_marts.core.files import write_private
from treatment_marts.core.ids import Period
from treatment_marts.core.settings import Settings
from treatment_marts.deidentify.pseudonymise import pseudonym_key
from treatment_marts.deidentify.recode import recode
from treatment_marts.pipeline.record import accepted_extract

HISTORY_FILE = "episodes.parquet"


def history_dir(settings: Settings) -> Path:
    return settings.restricted_dir / "history"


def month_path(settings: Settings, period: Period) -> Path:
    return history_dir(settings) / f"period={period}" / HISTORY_FILE


def store_month(settings: Settings, period: Period, recoded: pd.DataFrame) -> Path:
    """Keep (or, for a revision, replace) the month's recoded rows; plain strings, so a reader needs no
    knowledge of the categories the writer used."""
    plain = recoded.copy(deep=False)
    for column in plain.columns:
        if isinstance(plain[column].dtype, pd.CategoricalDtype):
            plain[column] = plain[column].astype("string")
    buffer = io.BytesIO()
    plain.to_parquet(buffer, index=False)
    path = month_path(settings, period)
    write_private(path, buffer.getvalue(), top=settings.restricted_dir)
    return path


def read_month(settings: Settings, period: Period, rules: RulesConfig, areas: AreasConfig) -> pd.DataFrame | None:
    """The month's recoded rows, or None when the month was never accepted."""
    path = month_path(settings, period)
    if path.exists():
        return pd.read_parquet(path)
    extract = accepted_extract(settings, period)
    if extract is None:
        return None
    frame = recode(extract, rules, areas, pseudonym_key=pseudonym_key(settings)).frame
    store_month(settings, period, frame)
    return pd.read_parquet(path)


def read_months(
    settings: Settings,
    periods: Sequence[Period],
    rules: RulesConfig,
    areas: AreasConfig,
    *,
    current: tuple[Period, pd.DataFrame] | None = None,
) -> tuple[dict[Period, pd.DataFrame], list[Period]]:
    """The months' recoded rows by period and the periods with no accepted month (then the caller builds
    no window: a partial window would count fewer clients than it says). ``current``: the period being
    protected and its frame, used as it is."""
    frames: dict[Period, pd.DataFrame] = {}
    missing: list[Period] = []
    for period in periods:
        if current is not None and period == current[0]:
            frames[period] = current[1]
            continue
        frame = read_month(settings, period, rules, areas)
        if frame is None:
            missing.append(period)
        else:
            frames[period] = frame
    return frames, missing


def stored_months(settings: Settings) -> list[Period]:
    """The months the history holds, oldest first."""
    root = history_dir(settings)
    if not root.exists():
        return []
    return sorted(
        Period.parse(p.name.removeprefix("period="))
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith("period=") and (p / HISTORY_FILE).exists()
    )
