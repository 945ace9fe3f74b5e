#!/usr/bin/env bash
# Make sure the PostgreSQL server binaries the tests need (initdb, postgres) are installed. Idempotent:
# does nothing when they are there. Debian/Ubuntu: the `postgresql` package (it pulls postgresql-<major>
# and creates the `postgres` system user the test fixture runs the server as when tests run as root).
# Called by .ci/run before the tests; tests/conftest.py fails (never skips) when the binaries are missing.
set -euo pipefail

have_server() {
  if [[ -n "${TREATMENT_MARTS_PG_BIN:-}" && -x "${TREATMENT_MARTS_PG_BIN}/initdb" && -x "${TREATMENT_MARTS_PG_BIN}/postgres" ]]; then
    return 0
  fi
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    [[ -x "$bin/initdb" && -x "$bin/postgres" ]] && return 0
  done
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1
}

if have_server; then
  echo "ci_postgres: PostgreSQL server binaries present"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ci_postgres: PostgreSQL server binaries missing and apt-get unavailable; install the PostgreSQL server (initdb, postgres) or set TREATMENT_MARTS_PG_BIN" >&2
  exit 1
fi
SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql
have_server || { echo "ci_postgres: postgresql installed but initdb/postgres still not found" >&2; exit 1; }
echo "ci_postgres: PostgreSQL server installed"
