"""Screenshots compared with approved ones: the widget's visual regression check.

Pixels only mean something if they are the same on every run and machine, so the browser
that takes them sees one font (Debian's fonts-inter, through tests/e2e/visual/fonts.conf),
no animations (reduced motion, and Playwright's `animations="disabled"`), a fixed clock
(the call timer reads 0:00) and no live meter (masked). What is left to differ is
antialiasing, which pixelmatch tells from real change.

Approved images live in tests/e2e/visual/approved/ (in git). After an intended change of
the look, look at the new screenshots in tests/artifacts/widget/visual/ and approve them:

    UPDATE_APPROVED_SCREENSHOTS=1 scripts/in-loopback-netns .venv/bin/python -m pytest \\
        tests/e2e/test_widget_visual.py
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from pixelmatch.contrib.PIL import pixelmatch

from .widget_pages import ARTIFACTS, ROOT

APPROVED = ROOT / "tests" / "e2e" / "visual" / "approved"
FONTS_CONF = ROOT / "tests" / "e2e" / "visual" / "fonts.conf"
SHOTS = ARTIFACTS / "visual"
UPDATE = os.environ.get("UPDATE_APPROVED_SCREENSHOTS") == "1"
# pixelmatch's colour distance (0-1) under which two pixels count as the same; it also
# leaves out pixels it finds to be antialiasing.
THRESHOLD = 0.02
# Differing pixels tolerated in one screenshot: a changed word or colour is hundreds.
MAX_DIFFERING_PIXELS = 10

# Chromium flags for pixels that do not depend on the machine's screen or GPU.
STABLE_RENDERING_ARGS = [
    "--force-color-profile=srgb",
    "--force-device-scale-factor=1",
    "--font-render-hinting=none",
    "--disable-lcd-text",
    "--hide-scrollbars",
]


def font_environment() -> dict[str, str]:
    """The browser's environment: only the fonts of fonts.conf."""
    return {**os.environ, "FONTCONFIG_FILE": str(FONTS_CONF)}


@dataclass
class VisualCheck:
    """Collects the screenshots of one test and what differs from the approved ones."""

    problems: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def compare(self, name: str, png: bytes) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        if name in self.names:
            raise ValueError(f"screenshot {name} taken twice")
        self.names.append(name)
        (SHOTS / f"{name}.png").write_bytes(png)
        approved_path = APPROVED / f"{name}.png"
        if UPDATE:
            APPROVED.mkdir(parents=True, exist_ok=True)
            approved_path.write_bytes(png)
            return
        if not approved_path.exists():
            self.problems.append(f"{name}: no approved screenshot ({approved_path})")
            return
        actual = Image.open(io.BytesIO(png)).convert("RGBA")
        approved = Image.open(approved_path).convert("RGBA")
        if actual.size != approved.size:
            self.problems.append(f"{name}: size {actual.size}, approved {approved.size}")
            return
        if np.array_equal(np.asarray(actual), np.asarray(approved)):
            return
        diff = Image.new("RGBA", actual.size)
        differing = pixelmatch(actual, approved, diff, threshold=THRESHOLD)
        if differing > MAX_DIFFERING_PIXELS:
            diff.save(SHOTS / f"{name}-diff.png")
            self.problems.append(
                f"{name}: {differing} pixels differ (see {SHOTS / (name + '-diff.png')})"
            )

    def assert_unchanged(self) -> None:
        """Every screenshot as approved, and every approved one taken."""
        stale = sorted(p.stem for p in APPROVED.glob("*.png") if p.stem not in self.names)
        problems = [*self.problems, *(f"{name}: approved but not taken" for name in stale)]
        assert not problems, "the widget looks different:\n" + "\n".join(problems)
