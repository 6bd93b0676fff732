"""The fastai v2 virtual environment the side-by-side benchmarks run fastai in.

`ensure_fastai()` creates `benchmarks/.venv-fastai` (git-ignored) and installs fastai there from
PyPI (torch comes from the machine's pip configuration, as for any `pip install`), so fastai and
its pins never touch the project's own venv. Shared by `bench_verify.py` and `bench_predict.py`.

    .venv/bin/python benchmarks/fastai_venv.py      # create it ahead of time (a few minutes)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FASTAI_VENV = Path(__file__).resolve().parent / ".venv-fastai"
FASTAI_PYTHON = FASTAI_VENV / "bin" / "python"


def ensure_fastai(extra: tuple[str, ...] = ()) -> str | None:
    """Make sure the fastai venv exists with fastai (and `extra` packages) installed.

    Returns None when it is ready, else one line saying why it could not be made.
    """
    imports = ", ".join(["fastai", *(name.replace("-", "_") for name in extra)])
    if FASTAI_PYTHON.exists() and subprocess.run([str(FASTAI_PYTHON), "-c", f"import {imports}"],
                                                 capture_output=True).returncode == 0:
        return None
    try:
        if not FASTAI_PYTHON.exists():
            subprocess.run([sys.executable, "-m", "venv", str(FASTAI_VENV)], check=True, timeout=300)
        subprocess.run([str(FASTAI_PYTHON), "-m", "pip", "install", "-q", "fastai", *extra],
                       check=True, timeout=1800)
    except (subprocess.SubprocessError, OSError) as err:
        return f"could not install fastai into {FASTAI_VENV}: {err}"
    return None


def fastai_version() -> str:
    return subprocess.run([str(FASTAI_PYTHON), "-c", "import fastai; print(fastai.__version__)"],
                          capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    problem = ensure_fastai()
    print(problem or f"fastai {fastai_version()} ready in {FASTAI_VENV}")
    sys.exit(1 if problem else 0)
