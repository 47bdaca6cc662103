# The two commands: `make reports` (the weekly pack on the bundled sample) and `make test`.
# Both bootstrap .venv first; the bootstrap is skipped when pyproject.toml has not changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= reports_out
# Two pytest workers, one test file each at a time (fixtures and notebook cells stay on one
# worker): the suite takes about 11 minutes on two cores instead of 14-15 one file after another.
# `make test PYTEST_ARGS="-n 0"` runs it in one process.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: install reports test lab sample bench clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

install: $(STAMP)

reports: $(STAMP)
	$(BIN)/crm-reports run --source data/sample --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

sample: $(STAMP)
	$(BIN)/crm-reports sample --out data/sample

bench: $(STAMP)
	$(BIN)/python benchmarks/pack.py

clean-venv:
	rm -rf $(VENV)
