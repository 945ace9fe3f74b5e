"""The rules the DAG files follow, without Airflow: which period and run id a DAG run works on, where
its extract is, which errors fail a task at once, the deployment's operations policy, settings from
params and notification channels from connections.

Kept out of dags/ so the DAG files are only Airflow glue and these rules are tested without Airflow. The
DAG passes in what Airflow knows (params, the run id, the logical date, `airflow.sdk.Connection.get`).
Nothing heavy (no pandas, no GX) is imported, so the DAG files stay cheap to parse.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from treatment_marts.core.ids import Period, RunId
from treatment_marts.core.settings import ENV_CONFIG_DIR, REPO_DIR, Settings, env_path
from treatment_marts.ops.notify import RunSummary, notify
from treatment_marts.ops.policy import OperationsConfig, expected_period, load_operations

ALERT_WEBHOOK_CONN = "treatment_marts_webhook"  # optional Airflow connection: host (or extra "url") = webhook URL
ALERT_SMTP_CONN = "treatment_marts_smtp"  # optional: host, port; extra {"sender": ..., "recipients": [...]}


ENV_ALLOWED_WAREHOUSES = "TREATMENT_MARTS_ALLOWED_WAREHOUSE_URLS"


class WarehouseNotAllowed(ValueError):
    """A run asked for a warehouse the deployment does not allow (the restricted log would go there)."""


def check_warehouse_param(url: str | None, environ: dict[str, str] | None = None) -> str | None:
    """Refuse a `warehouse_url` param outside the deployment's allow-list.

    Why: on PostgreSQL the restricted suppression log (true small values) is written to the same server
    as the marts, so whoever may trigger a run with a config must not be able to point it at their own
    server. With TREATMENT_MARTS_ALLOWED_WAREHOUSE_URLS (comma-separated URLs) set, only those are
    accepted; unset (development, tests) any URL is. The message never echoes the URL (it may hold a password).
    """
    import os

    if not url:
        return None
    allowed = (environ if environ is not None else os.environ).get(ENV_ALLOWED_WAREHOUSES)
    if allowed is not None and url not in {u.strip() for u in allowed.split(",") if u.strip()}:
        raise WarehouseNotAllowed(
            f"the warehouse_url param is not one of the warehouses this deployment allows ({ENV_ALLOWED_WAREHOUSES}); "
            "leave it empty to use the configured warehouse"
        )
    return url


def settings_from_params(params: dict[str, Any]) -> Settings:
    """Settings for a run: the run's params override the environment (TREATMENT_MARTS_*), within the
    deployment's allow-lists (TREATMENT_MARTS_ALLOWED_ROOTS, TREATMENT_MARTS_ALLOWED_WAREHOUSE_URLS)."""
    warehouse = check_warehouse_param(params.get("warehouse_url") or None)
    return Settings.from_env(data_root=params.get("data_root") or None, warehouse_url=warehouse)


def _connection(lookup: Callable[[str], Any], conn_id: str) -> Any:
    try:
        return lookup(conn_id)
    except Exception:  # not configured: log-only notifications
        return None


def send(summary: RunSummary, lookup: Callable[[str], Any]) -> list[str]:
    """Deliver a summary to the log and to each channel whose connection `lookup(conn_id)` finds
    (webhook: extra "url" or host; SMTP: host, port, extra sender/recipients)."""
    webhook = _connection(lookup, ALERT_WEBHOOK_CONN)
    smtp = _connection(lookup, ALERT_SMTP_CONN)
    return notify(
        summary,
        webhook_url=(webhook.extra_dejson.get("url") or webhook.host) if webhook else None,
        smtp={"host": smtp.host, "port": smtp.port or 25, **smtp.extra_dejson} if smtp else None,
    )


def deployment_operations() -> OperationsConfig:
    """operations.yaml of the deployment: ``$TREATMENT_MARTS_CONFIG_DIR`` (default include/config).

    The DAG reads it when parsed, because the approval policy changes the DAG's shape (an approval task
    or none) and the expected areas are part of the run's contract.
    """
    return load_operations(env_path(ENV_CONFIG_DIR, REPO_DIR / "include" / "config"))


def run_period(
    params: dict[str, Any],
    logical_date: datetime | None,
    data_interval_start: datetime | None,
    today: date | None = None,
) -> Period:
    """The month a DAG run processes: the `period` param, else the month of the logical date.

    Scheduled and backfill runs: logical date == start of the data interval == the month processed.
    Manual runs with a logical date: that month -- unless it has not closed yet: the trigger form's default
    logical date is *now*, and a month's extracts arrive only after it ends, so a run dated in the current
    (or a later) month processes the last complete month. Runs without a logical date: the data interval.
    """
    if params.get("period"):
        return Period.parse(params["period"])
    when = logical_date or data_interval_start
    if when is None:
        raise ValueError("the run has neither a period param, a logical date nor a data interval")
    today = today or datetime.now(UTC).date()
    if (when.year, when.month) >= (today.year, today.month):
        return Period.parse(expected_period(today))
    return Period.of(when)


def run_id_of(airflow_run_id: str) -> RunId:
    """The run id the stages work under: Airflow's run id in the safe alphabet (it becomes a folder name)."""
    return RunId.sanitise(airflow_run_id)


def extract_location(settings: Settings, period: Period, extract_param: str | None) -> Path:
    """The `extract` param, else the period's inbox folder ``<data root>/inbox/period=YYYY-MM/``."""
    return Path(extract_param) if extract_param else settings.data_root / "inbox" / f"period={period}"


def fails_at_once(exc: BaseException) -> bool:
    """A data problem (bad file, bad period, missing column): retrying cannot fix it, so the task fails at
    once; anything else (file system, warehouse) is left to the task's retries."""
    from treatment_marts.ingest.land import ExtractError  # pandas: only when a task has failed

    return isinstance(exc, (ExtractError, ValueError, KeyError))


@dataclass(frozen=True)
class RunContext:
    """What every task of a run needs: its settings, period and run id, each checked once."""

    settings: Settings
    period: Period
    run_id: RunId

    @classmethod
    def of(
        cls,
        params: dict[str, Any],
        airflow_run_id: str,
        logical_date: datetime | None = None,
        data_interval_start: datetime | None = None,
    ) -> RunContext:
        return cls(
            settings=settings_from_params(params),
            period=run_period(params, logical_date, data_interval_start),
            run_id=run_id_of(airflow_run_id),
        )


ENV_IG_REVIEWERS = "TREATMENT_MARTS_IG_REVIEWERS"


def ig_reviewers() -> list[str]:
    """Airflow user names of the IG reviewers (`TREATMENT_MARTS_IG_REVIEWERS`, comma-separated); empty = any."""
    return [name.strip() for name in os.environ.get(ENV_IG_REVIEWERS, "").split(",") if name.strip()]


def ig_reviewer_users() -> list[dict[str, str]] | None:
    """The HITL `assigned_users` of the approval gate: only these users may respond (None = not restricted)."""
    return [{"id": name, "name": name} for name in ig_reviewers()] or None
