"""The two identifiers every stage is keyed by: the period (``YYYY-MM``) and the run id.

Both become folder names and warehouse keys, so each is checked once, where it enters (the CLI, the DAG,
a test), and travels as a typed value afterwards. They are ``str`` subclasses: JSON, pandas and paths
take them as the text they are, and a function declaring ``period: Period`` makes mypy refuse an
unchecked string.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

PERIOD_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$")  # the safe alphabet: a folder name
RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
RUN_ID_MAX = 120


class InvalidIdentifier(ValueError):
    """A period or run id that is not in its safe form; the message says what is expected."""


def _shown(text: object) -> str:
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."


class Period(str):
    """A calendar month ``YYYY-MM`` (months 01-12)."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: object) -> Period:
        if isinstance(text, cls):
            return text
        if not isinstance(text, str) or not PERIOD_PATTERN.fullmatch(text):
            raise InvalidIdentifier(f"period must be YYYY-MM (e.g. 2024-03), got {_shown(text)}")
        return cls(text)

    @classmethod
    def of(cls, when: datetime) -> Period:
        """The month a date falls in (a DAG run's logical date)."""
        return cls(when.strftime("%Y-%m"))

    def minus(self, months: int) -> Period:
        """The period ``months`` months earlier (negative: later)."""
        year, month = int(self[:4]), int(self[5:7])
        index = year * 12 + (month - 1) - months
        return Period(f"{index // 12:04d}-{index % 12 + 1:02d}")


class RunId(str):
    """A run id in the safe alphabet ``[A-Za-z0-9_.-]`` (first character alphanumeric, no ``..``, at most
    120 characters): it names the run's folders and keys its warehouse rows."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: object) -> RunId:
        """Accept an id already in the safe form; refuse anything else (never silently rewrite it)."""
        if isinstance(text, cls):
            return text
        if not isinstance(text, str) or not RUN_ID_PATTERN.fullmatch(text) or ".." in text:
            raise InvalidIdentifier(
                f"run id {_shown(text)} is not safe as a folder name: use letters, digits, '_', '.', '-' "
                "(RunId.sanitise makes one)"
            )
        return cls(text)

    @classmethod
    def sanitise(cls, text: str) -> RunId:
        """The safe form of an external id (an Airflow run id such as ``manual__2024-03-01T00:00:00+00:00``):
        unsafe characters become ``_``; no path separator or ``..`` survives."""
        if isinstance(text, cls):
            return text
        cleaned = RUN_ID_UNSAFE.sub("_", text)
        cleaned = re.sub(r"\.{2,}", ".", cleaned).strip("._-") or "run"
        return cls.parse(cleaned[:RUN_ID_MAX].rstrip("._-") or "run")


def new_run_id() -> RunId:
    """A timestamped id for a run started from the command line."""
    return RunId("cli_" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ"))


def area_run_id(run_id: RunId, unit: str) -> RunId:
    """The id one area of a per-area run works under (its own folders, so mapped tasks never collide)."""
    return RunId.sanitise(f"{run_id}.{unit}")


def checked(period: str, run_id: str) -> tuple[Period, RunId]:
    """Both identifiers in their typed form: free for values already typed, a check for plain strings
    (a test, a notebook), so no stage ever works under an unchecked folder name."""
    return Period.parse(period), RunId.parse(run_id)
