# Two commands for a newcomer on a fresh machine:  make demo   |   make test
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.focuspull-installed

.PHONY: demo test bench stress clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# CPU torch first: a bare `torch` requirement could pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[render,refine,depth-models,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/focuspull demo

test: $(STAMP)
	$(PY) -m pytest -q

# The whole suite STRESS_RUNS times in a row, stopping at the first failure (flaky tests are defects).
STRESS_RUNS ?= 20
stress: $(STAMP)
	@for i in $$(seq 1 $(STRESS_RUNS)); do \
		echo "== stress run $$i of $(STRESS_RUNS)"; \
		$(PY) -m pytest -p no:cacheprovider -q -x || { echo "stress: run $$i failed"; exit 1; }; \
	done; echo "stress: $(STRESS_RUNS) runs passed"

bench: $(STAMP)
	$(PY) bench/speed.py
	$(PY) bench/quality.py

clean:
	rm -rf $(VENV) build *.egg-info server/*.egg-info
