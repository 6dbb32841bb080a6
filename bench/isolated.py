"""The ci-risk a benchmark runs, and an environment that keeps its files out of the user's.

Bench scripts run as `python bench/NAME.py` have bench/ on sys.path and import
`from isolated import CI_RISK, isolated_env`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ci_risk_hook import paths

CI_RISK = str(Path(sys.executable).parent / "ci-risk")  # the console script installed beside this Python


def isolated_env(scratch: str | os.PathLike[str]) -> dict[str, str]:
    """This environment with ci-risk's store (`history.sqlite`), user data and history index (`index/`) in `scratch`."""
    return {
        **os.environ,
        "CI_RISK_DB": os.path.join(scratch, paths.STORE_FILE),
        paths.HOME_ENV: os.fspath(scratch),
        paths.INDEX_DIR_ENV: os.path.join(scratch, "index"),
    }
