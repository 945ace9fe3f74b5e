"""Glue shared by the DAG files: settings from params, notification channels from Airflow connections.

Kept out of dags/ so the two DAG files share one copy; imports Airflow only inside functions that run in
tasks or callbacks, and nothing heavy (no pandas, no GX), so the DAG files stay cheap to parse.
"""

from __future__ import annotations

from typing import Any

from treatment_marts.notify import RunSummary, notify

ALERT_WEBHOOK_CONN = "treatment_marts_webhook"  # optional Airflow connection: host (or extra "url") = webhook URL
ALERT_SMTP_CONN = "treatment_marts_smtp"  # optional: host, port; extra {"sender": ..., "recipients": [...]}


def settings_from_params(params: dict[str, Any]):
    """Settings for a run: the run's params override the environment (TREATMENT_MARTS_*)."""
    from treatment_marts.settings import Settings

    return Settings.from_env(data_root=params.get("data_root") or None, warehouse_url=params.get("warehouse_url") or None)


def _connection(conn_id: str):
    from airflow.sdk import Connection

    try:
        return Connection.get(conn_id)
    except Exception:  # not configured: log-only notifications
        return None


def send(summary: RunSummary) -> list[str]:
    """Deliver a summary to the log and to each channel whose Airflow connection exists."""
    webhook = _connection(ALERT_WEBHOOK_CONN)
    smtp = _connection(ALERT_SMTP_CONN)
    return notify(
        summary,
        webhook_url=(webhook.extra_dejson.get("url") or webhook.host) if webhook else None,
        smtp={"host": smtp.host, "port": smtp.port or 25, **smtp.extra_dejson} if smtp else None,
    )
