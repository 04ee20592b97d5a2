"""How fast an upload resumes after a crash: a worker's kill -9, Valkey's kill -9, a full restart.

The scenarios live in `tests/support/recovery.py` (the crash tests run them too); this times
each over several runs and prints the medians.

    .venv/bin/python bench/recovery.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.recovery import SCENARIOS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for name, scenario in SCENARIOS.items():
        times = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                times.append(scenario(Path(tmp) / "data"))
        shown = ", ".join(f"{t:.2f}" for t in times)
        print(f"{name}: median {statistics.median(times):.2f} s  ({shown})", flush=True)


if __name__ == "__main__":
    main()
