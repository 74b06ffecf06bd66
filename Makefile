# Two commands on a fresh machine: `make demo` and `make test`.
# Everything installs into .venv/ from this repo's files, pinned by constraints.txt.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install browser demo lint test bench serve ui clean prefect-postgres

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m s3flow.demo

# The UI test drives Debian's Chromium (Playwright's own browser download is blocked here).
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Lint, format check and type check first (seconds), then the suite.
lint: $(STAMP)
	$(VENV)/bin/ruff check s3flow flows blocks tests bench
	$(VENV)/bin/ruff format --check s3flow flows blocks
	$(VENV)/bin/mypy s3flow flows blocks

test: $(STAMP) browser lint
	$(PY) -m pytest -q

# The reference tools live in their own venv: awscli pins a botocore of its own.
BENCH_STAMP := .venv-bench/.installed
$(BENCH_STAMP): bench/requirements.txt
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install -q -r bench/requirements.txt
	touch $(BENCH_STAMP)

rclone:
	@command -v rclone >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq rclone >/dev/null; }

# Side-by-side benchmark (about 20 minutes on 2 cores); BENCH_ARGS="--sets small --repeat 1" to narrow it.
bench: $(STAMP) $(BENCH_STAMP) rclone
	$(PY) bench/run.py $(BENCH_ARGS)

# The demo's S3 and Prefect servers back, on its data: prints what to export, then
# `s3flow plan`, `status`, `history` and the UI at http://127.0.0.1:4200 (Ctrl-C stops them).
serve: $(STAMP)
	$(PY) -m s3flow.demo serve

# A Prefect server on PostgreSQL (Debian's postgresql package), data in .prefect-postgres/.
prefect-postgres: $(STAMP)
	$(PY) -m s3flow.local prefect-postgres .prefect-postgres 4200

ui: serve

clean:
	rm -rf $(VENV) .venv-bench .demo .pytest_cache .screenshots
