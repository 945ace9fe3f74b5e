"""Where things live: data root, warehouse URL, configuration and suite folders.

Defaults suit a fresh clone (everything under ./data, SQLite warehouse); each can be overridden by an
environment variable so the same code runs in docker-compose and CI without edits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from treatment_marts.core.files import QUARANTINE_ZONE, RAW_ZONE, RESTRICTED_ZONE
from treatment_marts.core.safety import allowed_roots_from_env, check_path_text, check_within

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # include/treatment_marts
REPO_DIR = PACKAGE_DIR.parents[1]

ENV_DATA_ROOT = "TREATMENT_MARTS_DATA_ROOT"
ENV_WAREHOUSE_URL = "TREATMENT_MARTS_WAREHOUSE_URL"
ENV_RESTRICTED_WAREHOUSE_URL = "TREATMENT_MARTS_RESTRICTED_WAREHOUSE_URL"
ENV_CONFIG_DIR = "TREATMENT_MARTS_CONFIG_DIR"
ENV_EXPECTATIONS_DIR = "TREATMENT_MARTS_EXPECTATIONS_DIR"


def env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Settings:
    """Resolved locations for one run. Build with :meth:`from_env` and override per call."""

    data_root: Path
    warehouse_url: str
    restricted_warehouse_url: str
    config_dir: Path = field(default=REPO_DIR / "include" / "config")
    expectations_dir: Path = field(default=REPO_DIR / "expectations")
    # TREATMENT_MARTS_ALLOWED_ROOTS: when set, the data root and every extract location must resolve under
    # one of these (a DAG run's `data_root`/`extract` params are then confined); None = not confined.
    allowed_roots: tuple[Path, ...] | None = None

    @classmethod
    def from_env(
        cls,
        data_root: Path | str | None = None,
        warehouse_url: str | None = None,
        restricted_warehouse_url: str | None = None,
    ) -> Settings:
        allowed = allowed_roots_from_env()
        if data_root:
            root = check_within(check_path_text(data_root, "data root"), allowed, "data root")
        else:
            root = check_within(env_path(ENV_DATA_ROOT, Path.cwd() / "data"), allowed, "data root")
        public_url = warehouse_url or os.environ.get(ENV_WAREHOUSE_URL) or f"sqlite:///{root / 'warehouse.db'}"
        restricted_url = (
            restricted_warehouse_url
            or os.environ.get(ENV_RESTRICTED_WAREHOUSE_URL)
            or (
                f"sqlite:///{root / RESTRICTED_ZONE / 'warehouse_restricted.db'}"
                if public_url.startswith("sqlite")
                else public_url
            )
        )
        return cls(
            data_root=root,
            warehouse_url=public_url,
            restricted_warehouse_url=restricted_url,
            config_dir=env_path(ENV_CONFIG_DIR, REPO_DIR / "include" / "config"),
            expectations_dir=env_path(ENV_EXPECTATIONS_DIR, REPO_DIR / "expectations"),
            allowed_roots=allowed,
        )

    # Zones (ARCHITECTURE.md "Storage"): raw and restricted never leave the restricted zone;
    # only audited marts reach public.
    @property
    def raw_dir(self) -> Path:
        return self.data_root / RAW_ZONE

    @property
    def quarantine_dir(self) -> Path:
        return self.data_root / QUARANTINE_ZONE

    @property
    def restricted_dir(self) -> Path:
        return self.data_root / RESTRICTED_ZONE

    @property
    def public_dir(self) -> Path:
        return self.data_root / "public"

    @property
    def gx_dir(self) -> Path:
        """GX file-backed context (Data Docs, validation results): restricted, it describes record-level data."""
        return self.restricted_dir / "gx"
