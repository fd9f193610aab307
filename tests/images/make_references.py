"""Write the reference images of tests/test_view_images.py (run only when a picture is meant to change,
and look at every image before committing it):

    MPLBACKEND=Agg python tests/images/make_references.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from test_view_images import RENDERERS  # noqa: E402

if __name__ == "__main__":
    for name, render in RENDERERS.items():
        render(HERE / f"{name}.png")
        print(f"wrote {HERE / name}.png")
