#!/usr/bin/env bash
# The test command: installs the locked dependencies into .venv, then runs ruff, mypy, the import contract and
# pytest. Usage: bash scripts/test.sh [pytest args...]
#
# Without arguments the tests run in two lanes at once: the `wallclock` ones (bound by real time: a simulator
# at 10 Hz, a baseline that must be lived through; they use little CPU) beside all the others, so the suite
# takes about as long as its CPU-bound part. With arguments, one pytest with those arguments.
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
if [ $# -gt 0 ]; then
  echo "== pytest"
  exec .venv/bin/pytest "$@"
fi
lane_log=$(mktemp -t fe-wallclock-XXXXXX.log)
echo "== pytest, wallclock lane (in the background, log $lane_log)"
.venv/bin/pytest -m wallclock -p no:cacheprovider >"$lane_log" 2>&1 &
lane=$!
echo "== pytest"
main_rc=0
.venv/bin/pytest -m "not wallclock" || main_rc=$?
lane_rc=0
wait "$lane" || lane_rc=$?
echo "== pytest, wallclock lane"
cat "$lane_log"
rm -f "$lane_log"
echo "== exit: other tests $main_rc, wallclock lane $lane_rc"
[ "$main_rc" -eq 0 ] && [ "$lane_rc" -eq 0 ]
