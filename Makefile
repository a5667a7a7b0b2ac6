# Set-up and checks. `make demo` and `make test` do everything on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

GYMNASIUM_MIN := 1.0.0
GYMNASIUM_MIN_DIR := $(VENV)/gymnasium-$(GYMNASIUM_MIN)

.PHONY: install demo test test-gymnasium-min lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/lsched run tpch-streaming --seeds 3 --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadgroup
	$(MAKE) test-gymnasium-min

# The env's tests again on the oldest gymnasium pyproject.toml allows (put first on the path).
test-gymnasium-min: $(STAMP)
	test -d $(GYMNASIUM_MIN_DIR) || { rm -rf $(GYMNASIUM_MIN_DIR).tmp && \
	  $(BIN)/pip install -q --no-deps --target $(GYMNASIUM_MIN_DIR).tmp gymnasium==$(GYMNASIUM_MIN) && \
	  mv $(GYMNASIUM_MIN_DIR).tmp $(GYMNASIUM_MIN_DIR); }
	PYTHONPATH=$(GYMNASIUM_MIN_DIR) LSCHED_EXPECT_GYMNASIUM=$(GYMNASIUM_MIN) $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider tests/test_env.py

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
