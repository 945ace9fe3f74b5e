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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
    return pd.Series(pd.arrays.ArrowStringArray(_hex16(hashed.to_numpy())), index=joined.index)


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype="S1")


def _hex16(values: np.ndarray) -> pa.Array:
    """Each uint64 as 16 lower-case hex digits ("{:016x}"), in NumPy: formatting a national month's million
    hashes one by one in Python took ~1-2 s."""
    octets = np.ascontiguousarray(values.astype(">u8")).view(np.uint8).reshape(-1, 8)
    digits = np.empty((len(values), 16), dtype="S1")
    digits[:, 0::2] = _HEX_DIGITS[octets >> 4]
    digits[:, 1::2] = _HEX_DIGITS[octets & 15]
    fixed = pa.array(digits.view("S16").ravel(), type=pa.binary(16))
    return pc.cast(fixed.cast(pa.binary()), pa.string())
