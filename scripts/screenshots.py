"""Photograph each page of the web app into docs/screenshots/, from the browser journey tests.

Runs tests/web/test_browser.py, test_casework.py, test_sar.py, test_export_page.py,
test_admin.py, test_thumbnails.py and test_pull_errors.py (real headless Chromium against a real ``serve`` on loopback,
real footage made on the fly) with ``EVIDENCE_VAULT_SCREENSHOTS`` pointing at the folder, so
the pictures show exactly what the tests checked. Needs /usr/bin/chromium and axe-core in the
npm cache (.ci/run installs both). Run ``python scripts/screenshots.py [FOLDER]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    folder = Path(argv[0]).resolve() if argv else ROOT / "docs" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EVIDENCE_VAULT_SCREENSHOTS": str(folder), "CI": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/web/test_browser.py", "tests/web/test_casework.py", "tests/web/test_sar.py",
         "tests/web/test_export_page.py", "tests/web/test_admin.py",
         "tests/web/test_thumbnails.py", "tests/web/test_pull_errors.py"],
        cwd=ROOT, env=env, check=False)
    shots = sorted(p.name for p in folder.glob("*.png"))
    print(f"{len(shots)} screenshots in {folder}: {', '.join(shots)}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
