"""Open adspark's HTML reports in headless Chromium: every image loaded, nothing overflows, a screenshot.

    python bench/report_check.py PAGE.html [PAGE.html ...] [--screenshots DIR] [--width 1100]

For each page, a copy with a small inline script is loaded offline (network disabled
by flags, fresh profile); on `load` the script checks that every <img> decoded
(complete, natural width > 0) and that no element is wider than its box or than the
window, and writes the result into the DOM, which `--dump-dom` prints. A second
Chromium run takes a full-page screenshot of the page itself. Exit code 1 when a
check fails; 2 when no Chromium is installed (Debian: `apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=8000",
]
CHECK = """
<script>
window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).map(function (i) {
    return i.alt; });
  var vw = document.documentElement.clientWidth;
  var over = [];
  document.querySelectorAll("main, main *").forEach(function (el) {
    var r = el.getBoundingClientRect();
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === "visible" && el.clientWidth > 0)
      over.push(el.tagName + " scroll " + el.scrollWidth + " > box " + el.clientWidth);
    if (r.right > vw + 1) over.push(el.tagName + " ends at " + Math.round(r.right) + " > window " + vw);
  });
  var out = document.createElement("pre");
  out.id = "adspark-check";
  out.textContent = JSON.stringify({images: imgs.length, broken: broken, overflow: over.slice(0, 20),
    page_width: document.documentElement.scrollWidth, window_width: vw});
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(binary: str, args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def check_page(page: Path, width: int = 1100, screenshot: Path | None = None) -> dict[str, Any]:
    """The in-browser check's result for one page (and its screenshot, if asked)."""
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium found (Debian: apt-get install chromium)")
    html = page.read_text()
    with tempfile.TemporaryDirectory(prefix="adspark-chromium-") as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(html.replace("</body>", CHECK + "</body>", 1))
        proc = _run(binary, [f"--window-size={width},900", "--dump-dom", probe.as_uri()], Path(tmp) / "p1")
        found = re.search(r'<pre id="adspark-check">(.*?)</pre>', proc.stdout, re.S)
        if not found:
            raise RuntimeError(f"{page}: the check did not run in Chromium: {proc.stderr[-800:]}")
        result: dict[str, Any] = json.loads(found.group(1).replace("&gt;", ">").replace("&lt;", "<")
                                            .replace("&amp;", "&").replace("&quot;", '"'))
        if screenshot is not None:
            height = _page_height(binary, probe, width, Path(tmp) / "p2")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            _run(binary, [f"--window-size={width},{height}", f"--screenshot={screenshot.resolve()}", page.as_uri()],
                 Path(tmp) / "p3")
            result["screenshot"] = str(screenshot)
    result["bytes"] = len(html.encode())
    result["ok"] = result["images"] > 0 and not result["broken"] and not result["overflow"]
    return result


def _page_height(binary: str, probe: Path, width: int, profile: Path) -> int:
    """The full page height, for a screenshot of the whole page."""
    text = probe.read_text().replace("JSON.stringify({", "JSON.stringify({height: document.documentElement"
                                     ".scrollHeight, ", 1)
    probe.write_text(text)
    proc = _run(binary, [f"--window-size={width},900", "--dump-dom", probe.as_uri()], profile)
    found = re.search(r'"height":(\d+)', proc.stdout.replace("&quot;", '"'))
    return min(int(found.group(1)) + 20, 16000) if found else 2400


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pages", nargs="+", type=Path)
    p.add_argument("--screenshots", type=Path, default=None, help="write DIR/<page stem>.png for each page")
    p.add_argument("--width", type=int, default=1100)
    args = p.parse_args()
    if chromium() is None:
        print("no Chromium found (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    failed = False
    for page in args.pages:
        shot = args.screenshots / f"{page.stem}.png" if args.screenshots else None
        result = check_page(page, args.width, shot)
        failed |= not result["ok"]
        print(f"{page}: {json.dumps(result)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
