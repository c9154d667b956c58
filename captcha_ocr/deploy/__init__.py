"""Building and deploying the function: never imported by serving (tests check the bundle's files)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the source tree: index.py, the model, runtime-pins.txt, serverless.yml
