from __future__ import annotations

from ci_risk_hook.gate.entry import main

if __name__ == "__main__":
    raise SystemExit(main())
