#!/usr/bin/env bash
# Fuzz soak: the property tests of tests/test_hardening.py with 20,000 examples each.
set -euo pipefail
cd "$(dirname "$0")/.."
HYPOTHESIS_PROFILE=soak exec .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_hardening.py -k "fuzzed or mutated"
