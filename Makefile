# Two entry points for a newcomer:
#   make demo   set up .venv, train a small model on the reference corpus, export it, generate from it
#   make test   set up .venv and run the linter and the test suite (what CI runs)

PYTHON ?= python3
# onnxruntime's telemetry (1.29 and later: Linux, macOS, Windows) off for everything make runs, the
# benchmarks included, as the nextword command turns it off; ORT_DISABLE_TELEMETRY=0 make ... keeps it on
export ORT_DISABLE_TELEMETRY ?= 1
VENV ?= .venv
BIN := $(VENV)/bin
CORPUS ?= ../shared/data/neural_network_patent_query.csv
RUN ?= runs/small
MODEL ?= small.onnx

BUNDLED_RUN ?= runs/bundled
BUNDLED ?= runtime/data/nextword-patents.onnx
UNTIED_RUN ?= runs/untied
# fp32 twins sit beside the run folders, not in them: `train --overwrite` replaces only what a run wrote
BUNDLED_FP32 ?= runs/bundled-fp32.onnx
UNTIED_FP32 ?= runs/untied-fp32.onnx

.PHONY: demo test lint format setup clean bench bundled-model untied-model quality
.PHONY: web-setup web-maybe-setup web-test web-unicode web-bench web-vendor

# pip's and setuptools' own notices (an editable install always prints one) go to $(VENV)/install.log;
# the log is shown only when the install fails.
$(BIN)/nextword: pyproject.toml
	@echo "setting up $(VENV) with nextword[train,dev,serve,serve-test] (log: $(VENV)/install.log)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --upgrade pip > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@$(BIN)/python -m pip install -e ".[train,dev,serve,serve-test]" >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $@

setup: $(BIN)/nextword

demo: setup
	@test -f "$(CORPUS)" || { echo "corpus $(CORPUS) not found: run make demo CORPUS=your.csv"; exit 2; }
	$(BIN)/nextword train "$(CORPUS)" --out $(RUN) --epochs 1 --lstm-units 64 --overwrite --verbose 2
	$(BIN)/nextword export $(RUN) --out $(MODEL)
	$(BIN)/nextword generate "a neural network" --model $(MODEL) --seed 1
	$(BIN)/nextword info $(MODEL)

# Python: ruff, and mypy on every package and on benchmarks/: scripts/typecheck.py links the package
# folders under their nextword.* names in build/typecheck (mypy finds them there, not through the
# editable install), then runs mypy with pyproject's [tool.mypy]. JavaScript: prettier (web/'s pinned devDependency, with
# web/.prettierrc.json) on nextword-web (web/src, test, types, bench, example) and the page's own scripts
# (serve/static/*.js, index.html and style.css; not serve/static/web: a copy of web/src), `npm run format:check` in web/.
# `make format` rewrites both.
# Without npm the prettier check is skipped, unless NEXTWORD_REQUIRE_WEB=1 (.ci/run): then it fails.
lint: setup web-maybe-setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/typecheck.py
	@if command -v npm >/dev/null 2>&1 && [ -x web/node_modules/.bin/prettier ]; then \
		echo "cd web && npm run --silent format:check"; cd web && npm run --silent format:check; \
	elif [ "$${NEXTWORD_REQUIRE_WEB:-}" = 1 ]; then \
		echo "prettier is missing: install Node and npm, then make web-setup"; \
		echo "(NEXTWORD_REQUIRE_WEB=1 asks for the JavaScript checks)"; exit 1; \
	else echo "npm not found: prettier's check of the JavaScript (web/, serve/static/) is skipped"; fi

format: setup web-setup
	$(BIN)/ruff format .
	cd web && npm run --silent format

# The suite runs in one process per core, up to four (each worker loads TensorFlow once and trains its
# own tiny models): 10–17 minutes on two cores (10 on an idle machine, 17 on a shared one), 20 in one
# process. A file's tests stay in one worker.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ "$$n" -gt 4 ] && n=4; echo $$n)
test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# nextword-web (web/): the JavaScript runtime on onnxruntime-web. `make test` installs its npm packages
# when npm is there (its tests in tests/test_web.py are skipped without them); `make web-test` runs them.
test: web-maybe-setup
web-setup: web/node_modules/.package-lock.json
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --ignore-scripts --no-audit --no-fund
web-maybe-setup:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory web-setup; \
	else echo "npm not found: nextword-web's tests (tests/test_web.py) will be skipped"; fi
web-test: setup web-setup
	$(BIN)/python -m pytest tests/test_web.py
# The tokenizers' Unicode tables (runtime/unicode_marks.py, web/src/unicode-data.js). The script refuses
# a Python whose Unicode is not the committed tables' (Python 3.11: 14.0.0): UNICODE_PYTHON=python3.11
# runs another Python; UNICODE=X.Y.Z (that Python's version) moves the tables on purpose (docs/web.md).
UNICODE_PYTHON ?= $(BIN)/python
web-unicode: setup
	$(UNICODE_PYTHON) web/scripts/unicode_tables.py $(if $(UNICODE),--move-to $(UNICODE))
# serve/static/web, /ort and /docs: what the server's pages run in the browser (package data).
web-vendor: setup web-setup
	$(BIN)/python web/scripts/vendor.py
# nextword-web against the Python runtime (about 10 minutes): rewrites the figures in docs/web.md.
web-bench: setup web-setup
	$(BIN)/python -m benchmarks.web --write docs/web.md

# Benchmarks (about 30 minutes on two cores): rewrites docs/benchmarks.md and docs/img/generation-*.png.
# Each one also runs alone: python -m benchmarks.NAME --help (python -m benchmarks lists them).
bench: setup
	@test -f "$(CORPUS)" || { echo "corpus $(CORPUS) not found: run make bench CORPUS=your.csv"; exit 2; }
	@$(BIN)/python -m pip install -e ".[train,bench]" >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	$(BIN)/python -m benchmarks.run_all --corpus "$(CORPUS)"

# The model shipped in the wheel (at most 30 minutes on two cores), then its fp32 twin for the quality
# report. Tied embeddings, the development part (cache tuning) and the split are the train defaults;
# export tunes the cache. The exact commands are recorded inside the model file (nextword info).
bundled-model: setup
	$(BIN)/nextword train "$(CORPUS)" --out $(BUNDLED_RUN) --embedding-dim 256 --lstm-units 448 \
		--dropout 0.4 --learning-rate 0.003 --epochs 12 --patience 3 --max-minutes 30 --verbose 2 --overwrite
	$(BIN)/nextword export $(BUNDLED_RUN) --out $(BUNDLED) --int8 --no-repeat-ngram-size 4
	$(BIN)/nextword export $(BUNDLED_RUN) --out $(BUNDLED_FP32)

# The ablation twin of the bundled model: the same recipe and 30-minute budget, the output layer with
# its own matrix (slower per epoch, so fewer epochs fit). Only the quality report uses it.
untied-model: setup
	$(BIN)/nextword train "$(CORPUS)" --out $(UNTIED_RUN) --embedding-dim 256 --lstm-units 448 \
		--no-tie-embeddings --dropout 0.4 --learning-rate 0.003 --epochs 12 --patience 3 --max-minutes 30 \
		--verbose 2 --overwrite
	$(BIN)/nextword export $(UNTIED_RUN) --out $(UNTIED_FP32)

# docs/quality.md and docs/model-card.md from the bundled model (trains the notebook baseline: ~30 min),
# with the tied/untied ablation when `make untied-model` has run.
quality: setup
	@test -f "$(CORPUS)" || { echo "corpus $(CORPUS) not found: run make quality CORPUS=your.csv"; exit 2; }
	$(BIN)/python -m benchmarks.quality --corpus "$(CORPUS)" \
		--fp32 $(BUNDLED_FP32) $(if $(wildcard $(UNTIED_FP32)),--untied $(UNTIED_FP32))

clean:
	rm -rf $(VENV) runs $(MODEL) build *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis
