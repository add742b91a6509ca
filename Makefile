# Developer entry points; CI (.ci/run) calls `make test` too.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
EXTRAS ?= dev,fast,tts,ray,asr,pipecat

.PHONY: install demo test lint bench soak clean mutate

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/callsim demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check simulator tests scripts examples
	$(VENV)/bin/mypy

bench: $(STAMP)
	@for s in scripts/bench_*.py; do echo "== $$s"; $(PY) $$s || exit 1; done

# 30 minutes of long calls with the typical_call profile's tool faults against the reference
# agent (not run in CI); numbers go to docs/benchmarks.md.
soak: $(STAMP)
	mkdir -p runs
	$(VENV)/bin/callsim soak --lines 50 --duration 30m --turn-gap 5 --profile typical_call \
		-o runs/soak.json

clean:
	rm -rf $(VENV) runs mutants .mypy_cache .ruff_cache

# Mutation testing of the gate, graders, store, generator and degradation (not part of
# `make test`: it takes tens of minutes). By default a seeded random sample of
# MUTATE_SAMPLE mutants per file (every mutant of a smaller file); FULL=1 runs all of them
# (hours). Writes runs/mutation/report.md; see docs/testing.md.
MUTATE_JOBS ?= 2
MUTATE_SAMPLE ?= 40
mutate: $(STAMP)
	$(PY) scripts/mutate.py --jobs $(MUTATE_JOBS) $(if $(FULL),,--sample $(MUTATE_SAMPLE)) $(FILES)
