# twotower: `make demo` and `make test` bootstrap .venv themselves.
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python) $(shell command -v python3.10 2>/dev/null) python3.10)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_ROOT ?= runs/demo
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` / `make test-fast` (CI has 2 cores). Whole files go to one worker
# (--dist loadfile), so a module's fixture (one real pipeline run) is built once. PYTEST_WORKERS=0: no workers.
PYTEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),-p no:xdist,-n $(PYTEST_WORKERS) --dist loadfile)

.PHONY: install demo test test-fast test-deps lint format lock clean

install: $(STAMP)

# Re-installs only when the package metadata or the pins change.
$(STAMP): setup.py constraints.txt requirements/direct.in requirements/dev.in
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else "twotower needs Python 3.10 (TFX 1.16); set PYTHON=/path/to/python3.10")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/twotower data generate --out $(DEMO_ROOT)/data
	$(BIN)/twotower run --config hm --data $(DEMO_ROOT)/data --pipeline-root $(DEMO_ROOT) --show 3

test: install lint test-deps
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: install test-deps
	$(BIN)/python -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

# The history store tests start their own redis-server (Debian's package); installed here when missing.
test-deps:
	@command -v redis-server >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
	@command -v redis-server >/dev/null 2>&1 || echo "redis-server not installed (no apt-get?): the Redis tests skip"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-resolve constraints.txt (needs uv: pip install uv). Existing pins are kept
# unless you edit them; delete a line to let it move.
lock:
	uv pip compile --python-version 3.10 --no-annotate --no-header -c constraints.txt \
	  requirements/direct.in requirements/dev.in -o constraints.new
	{ sed -n '1,4p' constraints.txt; cat constraints.new; } > constraints.txt.tmp && mv constraints.txt.tmp constraints.txt && rm constraints.new

clean:
	rm -rf $(VENV) runs *.egg-info
