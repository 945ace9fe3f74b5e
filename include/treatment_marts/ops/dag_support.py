"""Glue shared by the DAG files: settings from params, notification channels from connections.

Kept out of dags/ so the two DAG files share one copy. Like the rest of include/ it does not import
Airflow: the DAG passes its connection lookup (`airflow.sdk.Connection.get`) in. Nothing heavy (no
pandas, no GX) is imported, so the DAG files stay cheap to parse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from treatment_marts.ops.notify import RunSummary, notify

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


def settings_from_params(params: dict[str, Any]):
    """Settings for a run: the run's params override the environment (TREATMENT_MARTS_*), within the
    deployment's allow-lists (TREATMENT_MARTS_ALLOWED_ROOTS, TREATMENT_MARTS_ALLOWED_WAREHOUSE_URLS)."""
    from treatment_marts.core.settings import Settings

    warehouse = check_warehouse_param(params.get("warehouse_url") or None)
    return Settings.from_env(data_root=params.get("data_root") or None, warehouse_url=warehouse)


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
