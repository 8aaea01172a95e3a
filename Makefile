# Everything a new user needs, from nothing but Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit bench lock clean trace

install: $(STAMP)

# Reinstall whenever the project's dependency files change.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/scaler demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/cfn-lint infra/lambda/template.yaml

typecheck: $(STAMP)
	$(BIN)/mypy src

# Two workers (this is a 2-core machine's suite); each has its own local AWS server. loadgroup
# keeps a module whose fixture is costly on one worker (tests marked xdist_group).
unit: $(STAMP)
	$(BIN)/pytest -n $(or $(WORKERS),2) --dist loadgroup

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m bench.run

# Regenerate the bundled incident trace from the physical model.
trace: $(STAMP)
	$(BIN)/python -m scaler.sim.incident > src/scaler/data/incident-m5xlarge.csv

# Pin what `make install` resolved today; commit the result.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
