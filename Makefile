# dicomnode: `make run` starts the node, `make test` runs the tests, `make bench` the benchmarks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= $(wildcard dicomnode.toml)
TORCH_VERSION ?= 2.13.0

.PHONY: run test bench demo lint system-deps clean

$(BIN)/dicomnode: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch before the project: a bare torch requirement would pull the multi-GB CUDA build.
	$(BIN)/pip install -q "torch==$(TORCH_VERSION)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

venv: $(BIN)/dicomnode

system-deps:
	scripts/system-deps.sh dcmtk dicom3tools redis-server postgresql systemd chromium chromium-driver orthanc

run: $(BIN)/dicomnode
	$(BIN)/dicomnode serve $(if $(CONFIG),--config $(CONFIG))

demo: $(BIN)/dicomnode
	scripts/system-deps.sh dcmtk
	$(BIN)/dicomnode demo --keep --http-port 8080

test: $(BIN)/dicomnode system-deps
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/pytest -q

bench: $(BIN)/dicomnode system-deps
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/inference.py
	$(BIN)/python bench/results.py
	$(BIN)/python bench/worklist.py
	$(BIN)/python bench/triage.py
	$(BIN)/python bench/triage.py --on-release
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/monitoring.py

clean:
	rm -rf $(VENV) var bench/out .pytest_cache
