#!/usr/bin/env bash
# The test command: installs the locked dependencies into .venv, then runs ruff, mypy and pytest.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c requirements.lock -e '.[dev,train-torch]'
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== import contract"
.venv/bin/lint-imports
echo "== pytest"
if [ $# -gt 0 ] || [ -n "${FE_TESTS_SERIAL:-}" ]; then
  exec .venv/bin/pytest "$@"
fi
# The tests bound by real time (marker ``wallclock``: they wait on a simulator, an outage or a restart and
# use little CPU) run in a second pytest beside the rest, so the suite takes about as long as the rest.
# FE_TESTS_SERIAL=1 runs everything in one pytest.
tmp=$(mktemp -d)
.venv/bin/pytest -m wallclock -p no:cacheprovider --basetemp="$tmp/wallclock" >"$tmp/wallclock.log" 2>&1 &
wall_pid=$!
rc=0
.venv/bin/pytest -m "not wallclock" --basetemp="$tmp/rest" || rc=$?
wall_rc=0
wait "$wall_pid" || wall_rc=$?
echo "== pytest -m wallclock (ran beside the rest)"
cat "$tmp/wallclock.log"
rm -rf "$tmp"
if [ "$rc" -ne 0 ]; then exit "$rc"; fi
exit "$wall_rc"
