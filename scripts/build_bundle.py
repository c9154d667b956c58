#!/usr/bin/env python3
"""Build the SCF bundle: `python scripts/build_bundle.py --help` (the code is captcha_ocr/deploy/bundle.py)."""

import sys

from captcha_ocr.deploy.bundle import main

if __name__ == "__main__":
    sys.exit(main())
