# tusserver: `make run` starts the server on the embedded default, `make test` runs everything.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# pytest-xdist workers for `make test`: most tests wait on servers they start, so two workers
# halve the suite's time even on two cores (16 min -> 10 min measured).
TEST_WORKERS ?= 2

.PHONY: run test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tusserver serve

# Outside CI a missing `node` skips the web client's unit tests with a loud line; in CI
# (CI=true, as .ci/run sets) it fails `make test`. pytest's own non-zero statuses (failures,
# and 5, "no tests collected") fail the target as they are.
test: $(STAMP)
	$(VENV)/bin/ruff check tusserver tests bench
	$(PY) -m pytest -n $(TEST_WORKERS)
	@if command -v node >/dev/null 2>&1; then \
		node --test webclient/tests/; \
	elif [ -n "$$CI" ] && [ "$$CI" != false ] && [ "$$CI" != 0 ]; then \
		echo "node not found, and CI must run the web client's unit tests (apt-get install nodejs)" >&2; \
		exit 1; \
	else \
		echo "node not found: SKIPPING the web client's unit tests (CI would fail here)" >&2; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check tusserver tests bench
	$(VENV)/bin/ruff format --check tusserver tests bench

format: $(STAMP)
	$(VENV)/bin/ruff format tusserver tests bench
	$(VENV)/bin/ruff check --fix tusserver tests bench

# `make bench` also runs the PATCH hot path side by side with an older commit (default: aa5e30c,
# the code of 2026-11-21 that the write-path rework is measured against); BENCH_OLD=<rev> picks
# another.
BENCH_OLD ?= aa5e30c

bench: $(STAMP)
	$(PY) bench/run.py
	$(PY) bench/patch_path.py --old $(BENCH_OLD)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
