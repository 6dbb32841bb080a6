"""Starting one of ci-risk's modules in a new Python without importing anything from the working directory.

`python -m MODULE` and `python -c CODE` put the working directory first on
sys.path. Git runs the pre-push hook in the work tree of the repository being
pushed, and the hook starts its background workers there, so a top-level
`hashlib.py`, `json.py` or `ci_risk_hook/` in that repository would be imported
instead of the real module: the push fails, or the repository's code runs on
every push. The bootstrap below drops that entry before anything else is
imported (Python 3.11's `-P` does the same; the hook must run on 3.9).

Standard library only, import-free: the raw hook and the push use it.
"""

from __future__ import annotations

import sys
from typing import Sequence

# No single quote inside: the raw hook's shell script quotes it whole.
_BOOTSTRAP = (
    'import sys; sys.path[:1] == [""] and sys.path.pop(0); '
    'import runpy; runpy.run_module("{module}", run_name="__main__", alter_sys=True)'
)


def bootstrap(module: str) -> str:
    """The `-c` code that runs `module` as `python -m` would, minus the working directory on sys.path."""
    if not module.replace(".", "").replace("_", "").isalnum():
        raise ValueError(f"not a module name: {module!r}")
    return _BOOTSTRAP.format(module=module)


def module_argv(module: str, args: Sequence[str], python: str | None = None) -> list[str]:
    """The command line of `python -m module args...`, safe in any working directory."""
    return [python or sys.executable, "-c", bootstrap(module), *args]
