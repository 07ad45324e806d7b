# Shared set-up for scripts/demo.sh and scripts/test.sh: a virtualenv in .venv
# with myrq and its dev tools installed. Sourced, not run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "myrq needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 \
  | grep -v -e '^WARNING: Location' -e 'is ignored: it is neither' || true
.venv/bin/python -c 'import myrq, redis, fakeredis' || { echo "install failed" >&2; exit 1; }
