#!/usr/bin/env bash
# Install everything the tests need (scripts/setup.sh --test), then run the test suite.
# Extra arguments go to pytest:  bash scripts/test.sh tests/test_cli.py -x -q
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --test </dev/null
exec .venv/bin/pytest "$@"
