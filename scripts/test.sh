#!/usr/bin/env bash
# Set up the project's venv (if needed), lint with ruff, and run the whole test suite, slow tests included.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e ".[dev]"
# torch and torchvision must be a matching pair from PyPI (a local CPU-only torch wheel breaks torchvision).
.venv/bin/python -c "import torch, torchvision; torchvision.ops.nms" \
  || { echo "test: torch/torchvision mismatch; reinstall both from PyPI" >&2; exit 1; }
# Lint first, on every run (about a second): the rule set is [tool.ruff] in pyproject.toml.
.venv/bin/ruff check src tests benchmarks scripts \
  || { echo "test: ruff found the problems above; fix them (many with '.venv/bin/ruff check --fix src tests benchmarks scripts')" >&2; exit 1; }
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "test: pytest collected no tests: failing on purpose" >&2
  exit 1
fi
if [ "$code" -eq 0 ] && [ "$#" -eq 0 ]; then
  # The other CPU kind: training precision is chosen by hardware (bf16 where the CPU has it, fp32
  # elsewhere), so the precision-sensitive tests run again under the one this machine did not pick.
  other=$(.venv/bin/python -c "import torch; from pixclass.train.device import resolve_amp; print('fp32' if resolve_amp('auto', torch.device('cpu')) else 'bf16')")
  echo "test: training and export tests again with PIXCLASS_AMP=$other (the other CPU kind)"
  PIXCLASS_AMP="$other" .venv/bin/python -m pytest -q -m "not slow" tests/train tests/export
  code=$?
fi
exit "$code"
