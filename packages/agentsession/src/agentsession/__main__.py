"""``python -m agentsession``: the same command as the ``agentsession`` script."""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
