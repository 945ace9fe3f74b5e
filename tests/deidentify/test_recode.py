"""Recode: identifiers stop here; bands, collapses and substance groups follow rules.yaml."""

from __future__ import annotations

import pandas as pd
import pytest

from treatment_marts.contract import load_contract
from treatment_marts.core.config import load_areas, load_rules
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.deidentify.recode import RecodeError, age_in_years, recode, substance_group

CONFIG = REPO_DIR / "include" / "config"
RULES = load_rules(CONFIG)
AREAS = load_areas(CONFIG)
CONTRACT = load_contract()
KEY = "0123456789abcdef"


def typed_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """A typed extract frame with the given values and nulls elsewhere."""
    data = {}
    for col in CONTRACT.columns:
        values = [row.get(col.name) for row in rows]
        if col.type == "date":
            data[col.name] = pd.to_datetime(pd.Series(values, dtype="object")).astype("datetime64[ms]")
        elif col.type == "integer":
            data[col.name] = pd.array(values, dtype="Int64")
        else:
            data[col.name] = pd.array(values, dtype="string")
    return pd.DataFrame(data)


def episode(**overrides: object) -> dict[str, object]:
    base = {
        "period": "2024-03",
        "agency_code": "N0001",
        "client_ref": "REF1",
        "episode_id": "E1",
        "first_initial": "A",
        "surname_initial": "B",
        "date_of_birth": "1980-06-15",
        "sex": "M",
        "partial_postcode": "EX1 4",
        "la_code": "E08900001",
        "consent": "Y",
        "ethnicity": "A",
        "sexual_orientation": "1",
        "religion": "NONE",
        "nationality": "GBR",
        "drug_1": "1011",
        "drug_2": "9996",
        "drug_3": "9997",
        "referral_source": "SELF",
        "referral_date": "2024-03-01",
        "triage_date": "2024-03-05",
    }
    base.update(overrides)
    return base


def test_identifiers_are_dropped_and_client_key_is_keyed() -> None:
    frame = typed_frame([episode(), episode(episode_id="E2", triage_date="2024-03-09")])
    result = recode(frame, RULES, AREAS, pseudonym_key=KEY)
    assert not set(result.frame.columns) & set(CONTRACT.identifying_columns)
    keys = result.frame["client_key"]
    assert keys.nunique() == 1 and len(keys.iloc[0]) == 16  # same attributor -> same client
    other_key = recode(frame, RULES, AREAS, pseudonym_key="fedcba9876543210").frame["client_key"].iloc[0]
    assert other_key != keys.iloc[0]  # useless without the key
    assert "REF1" not in result.frame.to_csv()


def test_age_band_boundaries() -> None:
    born = pd.Series(pd.to_datetime(["2000-03-05", "2000-03-06", "1959-03-05"]))
    on = pd.Series(pd.to_datetime(["2024-03-05", "2024-03-05", "2024-03-05"]))
    assert list(age_in_years(born, on)) == [24, 23, 65]
    frame = typed_frame(
        [
            episode(date_of_birth="1999-03-05", episode_id="a", client_ref="a"),  # 25 on 2024-03-05
            episode(date_of_birth="1999-03-06", episode_id="b", client_ref="b"),  # 24
            episode(date_of_birth="1959-03-05", episode_id="c", client_ref="c"),  # 65
        ]
    )
    bands = recode(frame, RULES, AREAS, pseudonym_key=KEY).frame["age_band"].tolist()
    assert bands == ["25-29", "18-24", "65+"]


@pytest.mark.parametrize(
    ("drugs", "expected"),
    [
        (("1011", "9996", "9997"), "opiate_not_crack"),
        (("3201", "1011", "9997"), "opiate_and_crack"),
        (("3201", "7000", "9997"), "crack_not_opiate"),
        (("5000", "7000", "9997"), "non_opiate_and_alcohol"),
        (("5000", "3200", "9997"), "non_opiate_only"),
        (("7000", "9996", "9997"), "alcohol_only"),
    ],
)
def test_substance_group_hierarchy(drugs: tuple[str, str, str], expected: str) -> None:
    frame = typed_frame([episode(drug_1=drugs[0], drug_2=drugs[1], drug_3=drugs[2])])
    assert substance_group(frame, RULES).iloc[0] == expected


def test_collapses_follow_the_rules() -> None:
    frame = typed_frame(
        [
            episode(ethnicity="N", sexual_orientation="3", religion="SIKH", nationality="POL", sex="F"),
            episode(
                episode_id="E2",
                client_ref="x",
                first_initial="C",
                ethnicity="99",
                sexual_orientation=None,
                religion=None,
                nationality=None,
            ),
        ]
    )
    out = recode(frame, RULES, AREAS, pseudonym_key=KEY).frame
    assert out.loc[
        0, ["ethnicity_group", "sexuality_group", "religion_group", "nationality_group", "sex"]
    ].tolist() == ["Black / African / Caribbean / Black British", "Other", "Other / none", "Not British", "Female"]
    assert out.loc[1, ["ethnicity_group", "sexuality_group", "religion_group", "nationality_group"]].tolist() == [
        "Other or not stated",
        "Missing / not stated",
        "Missing / not stated",
        "Not known",
    ]
    assert out.loc[0, "area"] == "Exborough" and out.loc[0, "location"] == "Exborough"


def test_non_consenting_rows_are_excluded_and_counted() -> None:
    frame = typed_frame(
        [
            episode(),
            {
                "period": "2024-03",
                "agency_code": "N0001",
                "client_ref": "Z9",
                "episode_id": "E9",
                "la_code": "E08900001",
                "consent": "N",
            },
        ]
    )
    result = recode(frame, RULES, AREAS, pseudonym_key=KEY)
    assert len(result.frame) == 1 and result.excluded_no_consent == 1 and result.episodes_in == 2


def test_time_in_treatment_band() -> None:
    frame = typed_frame([episode(triage_date="2023-01-01", discharge_date="2024-03-10", discharge_reason="80")])
    out = recode(frame, RULES, AREAS, pseudonym_key=KEY).frame
    assert out.loc[0, "time_in_treatment"] == "1 to <2 years"
    assert out.loc[0, "discharge_group"] == "Successful completion"


def test_unknown_area_code_is_named() -> None:
    frame = typed_frame([episode(la_code="E06000999")])
    with pytest.raises(RecodeError, match=r"\['E06000999'\] are not configured areas"):
        recode(frame, RULES, AREAS, pseudonym_key=KEY)
