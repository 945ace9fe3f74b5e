"""Why a publish failed, said so an operator can act on it, never quoting a record-level value."""

from __future__ import annotations

from treatment_marts.publish.warehouse import describe


class PublishError(RuntimeError):
    """Publishing failed; the message says what happened and what to do, never a record-level value."""


def warehouse_failure(url: str, exc: BaseException, stage: str) -> PublishError:
    """A message naming the warehouse and the failure class; driver text only for connection failures
    (which carry host/port, never data), since other driver errors can quote row values."""
    detail = type(exc).__name__
    orig = getattr(exc, "orig", None)
    if orig is not None:
        detail += f"/{type(orig).__name__}"
        sqlstate = getattr(orig, "sqlstate", None)
        if sqlstate:
            detail += f" SQLSTATE {sqlstate}"
    if stage == "connect":
        first_line = str(orig or exc).strip().splitlines()[0][:300] if str(orig or exc).strip() else ""
        return PublishError(
            f"cannot connect to the warehouse {describe(url)} ({detail}: {first_line}); nothing was published and "
            "the previous release is unchanged (Parquet and warehouse); check the server and the URL, then re-run "
            "the publish task"
        )
    return PublishError(
        f"writing the warehouse {describe(url)} failed ({detail}) during {stage}; the transaction was rolled back, "
        "nothing was published and the previous release is unchanged (Parquet and warehouse); re-run the "
        "publish task (check the server log if it fails again)"
    )
