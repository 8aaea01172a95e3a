"""`python -m scaler.sim.incident` prints the canonical incident as a replay CSV."""

from __future__ import annotations

import sys

from scaler.sim.replay_csv import write_replay
from scaler.sim.scenarios import incident

__all__ = ["main"]


def main() -> int:
    """Write the bundled incident trace to stdout."""
    write_replay([incident().window], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
