"""Result tables of the benchmarks: written into bench/README.md between named markers.

Each benchmark owns one section, delimited by `<!-- BEGIN name -->` and `<!-- END name -->`,
and replaces it whole when it finishes: the README always shows the latest table of each
benchmark, with the command, sizes, machine and load that produced it.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def write_section(name: str, body: str, readme: Path = README) -> None:
    """Replace the text between the `name` markers of `readme` with `body`."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    text = readme.read_text()
    if text.count(begin) != 1 or text.count(end) != 1:
        raise SystemExit(f"{readme}: expected one '{begin}' and one '{end}' marker")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    readme.write_text(f"{head}{begin}\n{body.strip()}\n{end}{tail}")
    print(f"table written to {readme} (section {name!r})")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f}"


def machine_line() -> str:
    """One line: cores, CPU model, Python, commit, and the load average when the run started."""
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=README.parent, capture_output=True, text=True,
                          check=False)
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, commit {done.stdout.strip() or '?'}, "
            f"load average at start {load_average()} (1 / 5 / 15 min)")
