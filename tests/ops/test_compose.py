"""The docker-compose deployment renders the same under every Compose, and `.env.example` covers it.

No Compose binary is installed here (CI has Docker without the compose plugin), so the file is checked as
YAML against the rules that break real deployments: an expansion nested inside another's default is
mangled by Compose v1 and by Compose v2 before 2.18; a variable the package reads but the deployment never
sets silently takes a development default (the IG approval gate off, a random pseudonym key).
"""

from __future__ import annotations

import re

import yaml

from treatment_marts.core.settings import REPO_DIR

COMPOSE = REPO_DIR / "docker-compose.yaml"
ENV_EXAMPLE = REPO_DIR / ".env.example"
EXPANSION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")
TEST_ONLY = {"TREATMENT_MARTS_FAULT"}


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def _expansions(text: str) -> list[str]:
    """Every `${...}` of a string, outermost first, by brace matching (a regex cannot see nesting)."""
    found, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if text.startswith("${", i) and (i == 0 or text[i - 1] != "$"):
            if depth == 0:
                start = i
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                found.append(text[start : i + 1])
    return found


def _env_example_names() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        names.update(re.findall(r"\b([A-Z_][A-Z0-9_]{3,})=", line))  # set or commented-out assignments
        names.update(re.findall(r"\b(TREATMENT_MARTS_[A-Z0-9_]+)\b", line))  # named as set elsewhere
    return names


def _package_env_vars() -> set[str]:
    roots = [REPO_DIR / "include" / "treatment_marts", REPO_DIR / "dags", REPO_DIR / "plugins"]
    text = "\n".join(p.read_text() for root in roots for p in root.rglob("*.py"))
    return set(re.findall(r'"(TREATMENT_MARTS_[A-Z0-9_]+)"', text))


def test_the_compose_file_parses_and_no_expansion_is_nested() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    assert {"postgres", "airflow-apiserver", "airflow-scheduler", "airflow-init"} <= set(compose["services"])
    nested = [e for s in _strings(compose) for e in _expansions(s) if "${" in e[2:]]
    assert not nested, f"nested expansions (mangled by Compose v1 and v2 < 2.18): {nested}"


def test_the_nesting_check_catches_the_form_that_broke() -> None:
    assert _expansions("${A:-x${B:-y}z}") == ["${A:-x${B:-y}z}"]
    assert _expansions("$${HOSTNAME} and ${A}") == ["${A}"]


def test_every_variable_the_compose_file_expands_is_in_env_example_or_has_a_default() -> None:
    compose_text = COMPOSE.read_text()
    documented = _env_example_names()
    undocumented = sorted({m.group(1) for m in EXPANSION.finditer(compose_text) if ":-" not in m.group(0)} - documented)
    assert not undocumented, f"expanded without a default and missing from .env.example: {undocumented}"


def test_every_variable_the_package_and_dags_read_is_in_env_example() -> None:
    missing = sorted(_package_env_vars() - TEST_ONLY - _env_example_names())
    assert not missing, f".env.example does not mention {missing}"


def test_the_deployment_turns_the_ig_gate_on_and_requires_its_secrets() -> None:
    env = yaml.safe_load(COMPOSE.read_text())["x-airflow-common"]["environment"]
    assert env["TREATMENT_MARTS_ENVIRONMENT"].endswith(":-production}")
    for required in ("AIRFLOW__CORE__FERNET_KEY", "TREATMENT_MARTS_WAREHOUSE_URL"):
        assert ":?" in env[required], f"{required} must be required, not silently empty"
    assert "pools set warehouse 4 " in COMPOSE.read_text()  # as the README says


def test_env_example_is_not_a_real_secret() -> None:
    values = dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M))
    for name in ("AIRFLOW__CORE__FERNET_KEY", "TREATMENT_MARTS_PSEUDONYM_KEY"):
        assert values.get(name, "") == "", f"{name} must be left empty in the example"
