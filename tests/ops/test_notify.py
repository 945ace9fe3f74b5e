"""Notifications are concise, PII-free, and really delivered (a real HTTP server on loopback)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from treatment_marts.ops.notify import RunSummary, notify, scrub


def test_scrub_redacts_dates_and_postcodes_but_keeps_periods() -> None:
    text = scrub("period 2024-03; dob 1980-05-17 or 17/05/1980 at EX1 4 and SW1A 1AA")
    assert "1980" not in text and "EX1 4" not in text and "SW1A" not in text
    assert "period 2024-03" in text


def test_summary_is_short_and_names_the_failure() -> None:
    summary = RunSummary(
        "monthly_treatment_pipeline",
        "r1",
        "2024-03",
        "failed",
        task_id="validate",
        reason="1 blocking expectation failed:\ncolumn sex: 5 rows not in set\n" + "x" * 2000,
    )
    text = summary.text()
    assert text.startswith("treatment-marts 2024-03: FAILED at validate")
    assert "column sex" in text and len(text) < 900


def test_webhook_delivery_to_a_real_server() -> None:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    summary = RunSummary("d", "r", "2024-03", "success", facts={"marts": 19})
    delivered = notify(summary, webhook_url=f"http://127.0.0.1:{server.server_port}/hook")
    thread.join(timeout=10)
    server.server_close()
    assert delivered == ["log", "webhook"]
    assert received and received[0]["text"].startswith("treatment-marts 2024-03: SUCCESS")


def test_unreachable_webhook_is_logged_not_raised() -> None:
    summary = RunSummary("d", "r", "2024-03", "failed")
    assert notify(summary, webhook_url="http://127.0.0.1:9/closed") == ["log"]
