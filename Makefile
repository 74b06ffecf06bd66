# Two commands on a fresh machine: `make demo` and `make test`.
# Everything installs into .venv/ from this repo's files, pinned by constraints.txt.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test ui clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m s3flow.demo

test: $(STAMP)
	$(PY) -m pytest -q

# Browse the demo's runs and artifacts in the Prefect UI (Ctrl-C to stop).
ui: $(STAMP)
	PREFECT_HOME=$(CURDIR)/.demo/prefect $(VENV)/bin/prefect server start --host 127.0.0.1

clean:
	rm -rf $(VENV) .demo .pytest_cache
