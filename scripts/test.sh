#!/usr/bin/env bash
# Set up (first run only) and run every check: ruff, mypy --strict, the test suite.
# Tests that need Redis start their own redis-server; this script installs one
# when it is missing and it can (root with apt-get). Extra args go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing redis-server (apt-get)..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "warning: no redis-server on PATH; real-Redis tests will be skipped" \
         "(install it: apt-get install redis-server)" >&2
  fi
fi
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy --strict myrq examples"; .venv/bin/mypy myrq examples
echo "== pytest"; exec .venv/bin/python -m pytest "$@"
