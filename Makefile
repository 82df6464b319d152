# Two entry points for a newcomer:
#   make demo   set up .venv, train a small model on the reference corpus, export it, generate from it
#   make test   set up .venv and run the linter and the test suite (what CI runs)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORPUS ?= ../shared/data/neural_network_patent_query.csv
RUN ?= runs/small
MODEL ?= small.onnx

.PHONY: demo test lint setup clean bench

$(BIN)/nextword: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[train,dev]"
	touch $@

setup: $(BIN)/nextword

demo: setup
	@test -f "$(CORPUS)" || { echo "corpus $(CORPUS) not found: run make demo CORPUS=your.csv"; exit 2; }
	$(BIN)/nextword train "$(CORPUS)" --out $(RUN) --epochs 1 --lstm-units 64 --overwrite --verbose 2
	$(BIN)/nextword export $(RUN) --out $(MODEL)
	$(BIN)/nextword generate "a neural network" --model $(MODEL) --seed 1
	$(BIN)/nextword info $(MODEL)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

# Benchmarks (about 20 minutes on two cores): rewrites docs/benchmarks.md and docs/img/generation-*.png.
bench: setup
	$(BIN)/python -m pip install -q -e ".[train,bench]"
	$(BIN)/python benchmarks/run_all.py --corpus "$(CORPUS)"

clean:
	rm -rf $(VENV) runs $(MODEL) build *.egg-info .pytest_cache .ruff_cache
