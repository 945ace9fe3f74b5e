"""The per-installation pseudonym key lives in an owner-only folder and file from the first run."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from treatment_marts.core.settings import Settings
from treatment_marts.deidentify.pseudonymise import ENV_KEY, pseudonym_key


def test_a_fresh_data_root_gets_an_owner_only_key_and_restricted_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    settings = Settings.from_env(data_root=tmp_path / "data")
    key = pseudonym_key(settings)
    assert len(key) == 16 and key == pseudonym_key(settings)
    assert stat.S_IMODE(settings.restricted_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((settings.restricted_dir / "pseudonym.key").stat().st_mode) == 0o600
