"""The gateway's live dashboard: a monitor that samples, and the static page that shows it."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
"""The page's HTML, JavaScript and CSS."""
