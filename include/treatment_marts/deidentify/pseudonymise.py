"""Keyed pseudonyms for clients: stable across months (for re-presentation linkage), useless without the key.

The key comes from ``TREATMENT_MARTS_PSEUDONYM_KEY`` (set it from an Airflow connection or a secret store
in production). Without it, a random per-installation key is created once in the restricted zone with
owner-only permissions, so a demo run never needs a secret in the repository.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import pandas as pd

from treatment_marts.core.files import make_private_dirs
from treatment_marts.core.settings import Settings

ENV_KEY = "TREATMENT_MARTS_PSEUDONYM_KEY"


def pseudonym_key(settings: Settings) -> str:
    """The 16-character SipHash key derived from the configured secret."""
    secret = os.environ.get(ENV_KEY)
    if not secret:
        key_file = settings.restricted_dir / "pseudonym.key"
        if not key_file.exists():
            make_private_dirs(key_file.parent, top=settings.restricted_dir)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        secret = Path(key_file).read_text().strip()
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def pseudonymise(parts: list[pd.Series], key: str) -> pd.Series:
    """SipHash-2-4 (a keyed PRF, vectorised by pandas) over the joined parts, as 16 hex characters."""
    joined = parts[0].astype("string").fillna("")
    for part in parts[1:]:
        joined = joined + "|" + part.astype("string").fillna("")
    hashed = pd.util.hash_pandas_object(joined, index=False, hash_key=key, categorize=False)
    return hashed.map("{:016x}".format).astype("string")
