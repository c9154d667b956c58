#!/usr/bin/env python3
"""Build the SCF bundle: `python scripts/build_bundle.py --help` (the code is captcha_ocr/deploy/bundle.py).

Runs from a checkout with any Python that has pyelftools, installed package or not.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from captcha_ocr.deploy.bundle import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
