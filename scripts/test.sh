#!/usr/bin/env bash
# Set up the project's venv (if needed) and run the whole test suite, slow tests included.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e ".[dev]"
# torch and torchvision must be a matching pair from PyPI (a local CPU-only torch wheel breaks torchvision).
.venv/bin/python -c "import torch, torchvision; torchvision.ops.nms" \
  || { echo "test: torch/torchvision mismatch; reinstall both from PyPI" >&2; exit 1; }
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "test: pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$code"
