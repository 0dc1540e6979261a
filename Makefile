# Two commands do all the set-up on a fresh clone:
#   make demo   the example gallery, end to end (SQLite, moto S3, Celery on a
#               file-system broker): http://127.0.0.1:8000/
#   make test   lint, types, the documentation and the whole test suite on
#               every supported Python/Django pair (tox), with real Redis,
#               PostgreSQL, Celery workers, moto's S3 server and headless
#               Chromium, Ceph's radosgw and s3rver.
# Everything is installed into .venv (and .tox, tests/node/node_modules) by
# these targets; Debian packages with apt-get, when missing.

# The interpreters tox needs (Django 5.2 on 3.10 and 3.11, Django 6 on 3.12
# and 3.13).
# With pyenv, the newest installed patch release of each is put on PATH, so
# that every process tox starts finds them; a missing one fails the run.
PYTHON_MINORS := 3.10 3.11 3.12 3.13
PYENV_BINS := $(shell command -v pyenv >/dev/null 2>&1 && for v in $(PYTHON_MINORS); do \
  p=$$(pyenv latest $$v 2>/dev/null) && printf '%s:' "$$(pyenv root)/versions/$$p/bin"; done)
export PATH := $(PYENV_BINS)$(PATH)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test quick lint docs bench chromium radosgw s3rver pythons clean mutate

$(STAMP): pyproject.toml
	@command -v python3.12 >/dev/null || { echo "python3.12 is needed (e.g. pyenv install 3.12)"; exit 1; }
	test -x $(PY) || python3.12 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all]' --group test --group lint --group docs --group mutate tox
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/gallery/demo.py

chromium:
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; }

# The S3 servers other than moto that tests/integration/test_servers.py runs:
# Ceph's radosgw (Debian's packages; one monitor, one in-memory OSD) and npm's
# s3rver, pinned by tests/node/package-lock.json.
radosgw:
	@command -v radosgw >/dev/null && command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null || { \
	  echo "Installing Debian's radosgw, ceph-mon and ceph-osd for the S3 server tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends radosgw ceph-mon ceph-osd) >/dev/null; }

S3RVER := tests/node/node_modules/.installed
$(S3RVER): tests/node/package.json tests/node/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed for the s3rver tests"; exit 1; }
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
	touch $@

s3rver: $(S3RVER)

pythons:
	@for v in $(PYTHON_MINORS); do command -v python$$v >/dev/null || \
	  { echo "python$$v is needed for the test matrix (e.g. pyenv install $$v)"; exit 1; }; done

test: pythons $(STAMP) chromium radosgw s3rver
	$(VENV)/bin/tox run

quick: $(STAMP)
	$(VENV)/bin/pytest -q -x

lint: $(STAMP)
	$(VENV)/bin/tox run -e lint

# Mutation testing (mutmut) of the modules that guard data, driven by the fast
# unit tests: a 1-in-10 sample of every module (SAMPLE=1 for all mutants);
# MODULES="proof ledger" limits it (see docs/contributing-mutation.rst).
SAMPLE ?= 10
mutate: $(STAMP)
	$(PY) mutation/run.py --sample $(SAMPLE) $(MODULES)

# The documentation site, warnings as errors: docs/_build/html/index.html
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .tox .pytest_cache .mypy_cache .ruff_cache docs/_build tests/node/node_modules
