from __future__ import annotations

from .fastpath import main

if __name__ == "__main__":
    raise SystemExit(main())
