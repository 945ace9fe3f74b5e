"""Run notifications: a concise, PII-free summary delivered to a log, a Slack-style webhook or email.

Pure functions, no Airflow import: the DAG's callbacks resolve the Airflow connection (URL, SMTP host)
and call these. Messages are built only from run metadata and the pipeline's own error text, which is
already PII-safe; `scrub` is a second line of defence that redacts anything shaped like a date of birth
or a postcode before a message leaves the machine.
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage

log = logging.getLogger(__name__)

_FULL_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b")
_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d(?:[A-Z]{2})?\b")
_MAX_REASON = 600


def scrub(text: str) -> str:
    """Redact full dates and postcode-shaped tokens; keep periods (YYYY-MM) and codes."""
    return _POSTCODE.sub("[redacted]", _FULL_DATE.sub("[date]", text))


@dataclass(frozen=True)
class RunSummary:
    dag_id: str
    run_id: str
    period: str
    state: str  # "success" | "failed" | "late"
    task_id: str | None = None
    reason: str | None = None
    facts: dict[str, object] = field(default_factory=dict)

    def title(self) -> str:
        return f"treatment-marts {self.period}: {self.state.upper()}" + (f" at {self.task_id}" if self.task_id else "")

    def text(self) -> str:
        lines = [self.title(), f"DAG {self.dag_id}, run {self.run_id}"]
        if self.reason:
            reason = self.reason.strip().splitlines()
            shown = " | ".join(reason[:6])
            lines.append("Reason: " + (shown[:_MAX_REASON] + ("..." if len(shown) > _MAX_REASON else "")))
        lines += [f"{k}: {v}" for k, v in sorted(self.facts.items())]
        return scrub("\n".join(lines))


def send_webhook(url: str, summary: RunSummary, timeout: float = 10.0) -> int:
    """POST a Slack-compatible JSON body ({"text": ...}); returns the HTTP status."""
    body = json.dumps({"text": summary.text()}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - URL comes from an Airflow connection
        return response.status


def send_email(
    host: str, port: int, sender: str, recipients: list[str], summary: RunSummary, timeout: float = 10.0
) -> None:
    message = EmailMessage()
    message["Subject"] = summary.title()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message.set_content(summary.text())
    with smtplib.SMTP(host, port, timeout=timeout) as smtp:
        smtp.send_message(message)


def notify(summary: RunSummary, *, webhook_url: str | None = None, smtp: dict | None = None) -> list[str]:
    """Always log; deliver to each configured channel; a delivery failure is logged, never raised."""
    delivered = ["log"]
    (log.error if summary.state == "failed" else log.info)("%s", summary.text())
    if webhook_url:
        try:
            send_webhook(webhook_url, summary)
            delivered.append("webhook")
        except OSError as exc:
            log.warning("webhook notification failed: %s", type(exc).__name__)
    if smtp:
        try:
            send_email(smtp["host"], int(smtp.get("port", 25)), smtp["sender"], list(smtp["recipients"]), summary)
            delivered.append("email")
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("email notification failed: %s", type(exc).__name__)
    return delivered
