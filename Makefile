# Two commands do all the set-up on a fresh machine with Python 3.11 and pip:
#   make run    local API Gateway + demo page on http://127.0.0.1:9000 with the shipped model
#   make test   the test suite (installs the training and dev extras first)
PYTHON ?= python3.11
VENV ?= .venv
PORT ?= 9000
BIN := $(VENV)/bin

.PHONY: run test bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# runtime-pins.txt: the exact serving runtime the tests and the SCF bundle run, as constraints
$(VENV)/.run-deps: pyproject.toml runtime-pins.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c runtime-pins.txt -e ".[local]"
	touch $@

$(VENV)/.dev-deps: pyproject.toml runtime-pins.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c runtime-pins.txt -e ".[local,dev]"
	touch $@ $(VENV)/.run-deps

run: $(VENV)/.run-deps
	$(BIN)/captcha-ocr serve --port $(PORT)

test: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: $(VENV)/.dev-deps
	$(BIN)/python bench/run_all.py

# seconds: tiny counts, this venv only, results in build/bench-quick (the tests run the same)
bench-quick: $(VENV)/.dev-deps
	$(BIN)/python bench/run_all.py --quick

clean:
	rm -rf $(VENV) .cache .pytest_cache
