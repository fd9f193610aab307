# neural-tissue: two commands on a fresh machine.
#   make demo   set up .venv and run the showcase study (writes demo-out/)
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= demo-out

.PHONY: demo test bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	MPLBACKEND=Agg $(BIN)/tissue demo --out $(OUT)

test: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest -q

bench: $(STAMP)
	NUMBA_NUM_THREADS=2 $(BIN)/python bench/bench_settle.py --out docs/benchmarks.md
	NUMBA_NUM_THREADS=2 $(BIN)/python bench/bench_learn.py --out docs/benchmarks.md

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .hypothesis
