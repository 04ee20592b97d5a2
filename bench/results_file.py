"""One named section of bench/RESULTS.md, replaced in place by the benchmark that owns it.

`make bench` rewrites the main report; the other benchmarks (slow clients, nginx) each keep
their own section between two HTML comments, so one can be re-run without losing the others.
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, text: str, path: Path = RESULTS) -> None:
    """Put `text` between `<!-- name:start -->` and `<!-- name:end -->`, appending if absent."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    current = path.read_text() if path.exists() else ""
    block = f"{start}\n{text}{end}\n"
    if start in current and end in current:
        pattern = re.escape(start) + r".*?" + re.escape(end) + r"\n?"
        current = re.sub(pattern, lambda _: block, current, flags=re.DOTALL)
    else:
        current = current.rstrip() + "\n\n" + block if current else block
    path.write_text(current)
