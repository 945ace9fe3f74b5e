"""Glue shared by the DAG files: settings from params, notification channels from connections.

Kept out of dags/ so the two DAG files share one copy. Like the rest of include/ it does not import
Airflow: the DAG passes its connection lookup (`airflow.sdk.Connection.get`) in. Nothing heavy (no
pandas, no GX) is imported, so the DAG files stay cheap to parse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from treatment_marts.notify import RunSummary, notify

ALERT_WEBHOOK_CONN = "treatment_marts_webhook"  # optional Airflow connection: host (or extra "url") = webhook URL
ALERT_SMTP_CONN = "treatment_marts_smtp"  # optional: host, port; extra {"sender": ..., "recipients": [...]}


def settings_from_params(params: dict[str, Any]):
    """Settings for a run: the run's params override the environment (TREATMENT_MARTS_*)."""
    from treatment_marts.settings import Settings

    return Settings.from_env(data_root=params.get("data_root") or None, warehouse_url=params.get("warehouse_url") or None)


def _connection(lookup: Callable[[str], Any], conn_id: str):
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
