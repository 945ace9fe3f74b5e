"""DAG glue: params cannot send the restricted data to a warehouse the deployment does not allow."""

from __future__ import annotations

import pytest

from treatment_marts.ops.dag_support import WarehouseNotAllowed, check_warehouse_param

ALLOWED = {
    "TREATMENT_MARTS_ALLOWED_WAREHOUSE_URLS": "postgresql+psycopg://tm@warehouse/warehouse, sqlite:////data/warehouse.db"
}


def test_a_listed_warehouse_is_accepted() -> None:
    assert check_warehouse_param("sqlite:////data/warehouse.db", ALLOWED) == "sqlite:////data/warehouse.db"


def test_an_unlisted_warehouse_is_refused_without_echoing_it() -> None:
    with pytest.raises(WarehouseNotAllowed) as err:
        check_warehouse_param("postgresql://mallory:s3cret@evil.example/db", ALLOWED)
    assert "evil.example" not in str(err.value) and "s3cret" not in str(err.value)
    assert "TREATMENT_MARTS_ALLOWED_WAREHOUSE_URLS" in str(err.value)


def test_no_param_uses_the_configured_warehouse_and_no_list_allows_any() -> None:
    assert check_warehouse_param(None, ALLOWED) is None
    assert check_warehouse_param("sqlite:///x.db", {}) == "sqlite:///x.db"
