#!/usr/bin/env bash
# Set up (first run only) and run the demo: a mixed batch of jobs and a worker.
# Default broker: in-memory. Against Redis: scripts/demo.sh --broker redis://127.0.0.1:6379/0
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
exec .venv/bin/python -m myrq demo "$@"
