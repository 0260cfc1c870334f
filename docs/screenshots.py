"""Screenshots of a reports folder for the README: the report of one day on a desktop and on
a 420 px phone screen, and one narrative's page. Uses Debian's chromium through Playwright,
like tests/test_report_browser.py. Where Debian's `pngquant` is installed, the PNGs are reduced
to a palette (a third of the size).

    .venv/bin/python docs/screenshots.py out/demo/reports 2025-04-30 docs/
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def main(reports: Path, day: str, out: Path) -> None:
    report = (reports / f"report-{day}.html").resolve()
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", headless=True, args=ARGS
        )
        context.route(
            "**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort()
        )
        page = context.new_page()
        page.set_viewport_size({"width": 1200, "height": 1500})
        page.goto(report.as_uri())
        page.screenshot(path=out / "report-desktop.png")
        page.set_viewport_size({"width": 420, "height": 860})
        page.screenshot(path=out / "report-phone.png")
        page.set_viewport_size({"width": 1200, "height": 1300})
        page.locator("table.overview td.label a").first.click()
        page.wait_for_load_state()
        page.screenshot(path=out / "narrative-page.png")
        context.close()
    for name in ("report-desktop.png", "report-phone.png", "narrative-page.png"):
        if shutil.which("pngquant"):
            subprocess.run(
                ["pngquant", "--force", "--quality", "70-90", "--ext", ".png", str(out / name)],
                check=True,
            )
        print(f"{out / name}: {(out / name).stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
