"""Airflow 3 plugin: the disclosure-governance page for IG staff (list of runs, link to each IG report).

Thin on purpose: the data comes from ``treatment_marts.governance.runs_page`` (pure, tested without Airflow);
this file only wires it into the API server as a FastAPI sub-application mounted at ``/governance`` and adds
a "Disclosure governance" entry to the Airflow UI's navigation (an external view embedding the page).

Plugin FastAPI apps are not protected by Airflow automatically, so every route here resolves the caller
from Airflow's own JWT (the ``_token`` cookie the UI sets at login, or an ``Authorization: Bearer`` header)
through the configured auth manager, and sends anyone not signed in to Airflow's login page. The page is
for IG reviewers: when ``TREATMENT_MARTS_IG_REVIEWERS`` (comma-separated user names) is set, only those users
may open it, the IG report (summary and detail pages, the suppression log as CSV: restricted) or the GX
Data Docs (they describe record-level extracts).
"""

from __future__ import annotations

import os
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

URL_PREFIX = "/governance"  # = treatment_marts.governance.runs_page.URL_PREFIX (the gate's report link)
ENV_IG_REVIEWERS = "TREATMENT_MARTS_IG_REVIEWERS"

app = FastAPI(title="treatment-marts disclosure governance", docs_url=None, redoc_url=None, openapi_url=None)


async def _signed_in_user(request: Request) -> Any | None:
    """The Airflow user behind this request, or None (no token, expired or invalid)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if not token:
        return None
    try:
        return await get_auth_manager().get_user_from_token(token)
    except Exception:  # expired or forged token: treat as not signed in
        return None


def _login_redirect(request: Request) -> RedirectResponse:
    from airflow.api_fastapi.app import get_auth_manager

    return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)


def _may_view(user: Any) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView

    return bool(get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user))


def _may_read_ig_reports(user: Any) -> bool:
    allowed = {name.strip() for name in os.environ.get(ENV_IG_REVIEWERS, "").split(",") if name.strip()}
    return not allowed or user.get_name() in allowed


async def _reviewer(request: Request) -> Any | Response:
    """The signed-in IG reviewer, or the response to send instead (login redirect, or 403)."""
    user = await _signed_in_user(request)
    if user is None:
        return _login_redirect(request)
    if not (_may_view(user) and _may_read_ig_reports(user)):
        raise HTTPException(status_code=403, detail="the governance page is restricted to IG reviewers")
    return user


_PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


@app.get("/", response_class=HTMLResponse)
async def runs_page(request: Request) -> Response:
    """Every pipeline run: areas left out, validation, suppression, audit, approval, publication, IG report."""
    user = await _reviewer(request)
    if isinstance(user, Response):
        return user
    from treatment_marts.core.settings import Settings
    from treatment_marts.governance.runs_page import list_runs, render_runs_page

    runs = list_runs(Settings.from_env())
    page = render_runs_page(runs, report_url=lambda run: f"report/{run.period}/{run.run_id}/")
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@app.get("/report/{period}/{run_id}")
async def ig_report_folder(request: Request, period: str, run_id: str) -> Response:
    """The report's folder URL (its pages link to each other relatively)."""
    user = await _reviewer(request)
    if isinstance(user, Response):
        return user
    return RedirectResponse(f"{request.url.path}/", status_code=307)


@app.get("/report/{period}/{run_id}/")
@app.get("/report/{period}/{run_id}/{page}")
async def ig_report(request: Request, period: str, run_id: str, page: str = "index.html") -> Response:
    """One page of a run's IG report, or its suppression log as CSV (restricted), for IG reviewers only."""
    user = await _reviewer(request)
    if isinstance(user, Response):
        return user
    from treatment_marts.core.settings import Settings
    from treatment_marts.governance.runs_page import ig_report_file

    path = ig_report_file(Settings.from_env(), period, run_id, page)
    if path is None:
        raise HTTPException(status_code=404, detail="no such IG report page for this run")
    if path.suffix == ".csv":
        name = f"suppression_log_{period}_{run_id}.csv"
        return FileResponse(path, media_type="text/csv", filename=name, headers=_PRIVATE)
    return FileResponse(path, media_type="text/html", headers=_PRIVATE)


@app.get("/data-docs/{path:path}")
async def data_docs(request: Request, path: str) -> Response:
    """GX Data Docs (offline: their assets are served from the site folder too), for IG reviewers only."""
    user = await _reviewer(request)
    if isinstance(user, Response):
        return user
    from treatment_marts.core.settings import Settings
    from treatment_marts.governance.runs_page import data_docs_dir

    root = data_docs_dir(Settings.from_env()).resolve()
    target = (root / (path or "index.html")).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(status_code=404, detail="no such Data Docs page")
    return FileResponse(target, headers=_PRIVATE)


class GovernancePlugin(AirflowPlugin):
    """Registers the page with the API server and the UI navigation (Airflow >= 3.1 plugin interface)."""

    name = "treatment_marts_governance"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Disclosure governance"}]
    external_views = [
        {
            "name": "Disclosure governance",
            "href": f"{URL_PREFIX}/",
            "url_route": "disclosure-governance",
            "destination": "nav",
            "category": "browse",
        }
    ]
