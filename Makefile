# The targets the README names. A fresh clone needs only Python 3.13 (the Lambda runtime)
# and redis-server (the integration tests start one); everything else lands in two
# virtualenvs: .venv for tests and tooling, .venv-sam for the SAM CLI and cfn-lint (the SAM
# CLI pins boto3 exactly, so it cannot share .venv). Each installs from a lock file (every
# package pinned, with hashes) that `make lock` compiles from the ranges in the .in beside it.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
# No "Entering directory" lines on stdout, even from a make inside another (make invoke | jq).
MAKEFLAGS += --no-print-directory

VENV ?= .venv
SAM_VENV ?= .venv-sam
SAM := $(SAM_VENV)/bin/sam
CFN_LINT := $(SAM_VENV)/bin/cfn-lint

# The lock files: the layer's (sam build reads requirements.txt from the layer's folder), the
# dev one (.venv) and the SAM CLI's (.venv-sam).
LAYER_LOCK := layers/wxtoken/requirements.txt
DEV_LOCK := requirements-dev.txt
SAM_LOCK := requirements-sam.txt

# pytest-xdist workers for make test / make integration: one per CPU. Each worker spawns its
# own redis-server and moto server (session fixtures), so tests never share a port.
# PYTEST_WORKERS=0 runs them in this process, serially (for a debugger).
PYTEST_WORKERS ?= auto

# Regions cfn-lint checks the template against: a commercial region and AWS China.
LINT_REGIONS ?= us-east-1 cn-north-1

# The SAM CLI sends no telemetry and, for validate, needs no credentials; a region is enough.
export SAM_CLI_TELEMETRY := 0

# Python 3.13: `python3.13` if it runs, else the newest 3.13.x pyenv has installed (pyenv's
# shim for python3.13 fails unless that version is selected).
ifndef PYTHON313
PYTHON313 := $(shell \
	if python3.13 -c '' >/dev/null 2>&1; then \
		python3.13 -c 'import sys; print(sys.executable)'; \
	elif command -v pyenv >/dev/null 2>&1; then \
		v=$$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$$' | sort -t. -k3,3n | tail -n1); \
		if [ -n "$$v" ]; then PYENV_VERSION=$$v pyenv exec python3.13 -c 'import sys; print(sys.executable)'; fi; \
	fi 2>/dev/null)
endif

define require_python313
	@if [ -z "$(PYTHON313)" ]; then \
		echo "error: Python 3.13 not found (the Lambda runtime is python3.13)." >&2; \
		echo "  Install it (e.g. 'pyenv install 3.13' or your package manager), or tell" >&2; \
		echo "  make where it is: make <target> PYTHON313=/path/to/python3.13" >&2; \
		exit 1; \
	fi
endef

# Creates $(1) with Python 3.13 unless it already is a 3.13 virtualenv.
define make_venv
	$(require_python313)
	@if ! $(1)/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then \
		echo "creating $(1) with $(PYTHON313)"; \
		rm -rf $(1); \
		$(PYTHON313) -m venv $(1); \
	fi
	$(1)/bin/python -m pip install --quiet --upgrade pip
endef

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv (Python 3.13) with the test and lint tools

# Re-runs only when a lock file changes (the dev lock pins the layer's packages too).
$(VENV)/.installed: $(DEV_LOCK) $(LAYER_LOCK)
	$(call make_venv,$(VENV))
	$(VENV)/bin/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	@touch $@

.PHONY: sam-venv
sam-venv: $(SAM_VENV)/.installed ## Create .venv-sam with the SAM CLI and cfn-lint

$(SAM_VENV)/.installed: $(SAM_LOCK)
	$(call make_venv,$(SAM_VENV))
	$(SAM_VENV)/bin/python -m pip install --quiet --require-hashes -r $(SAM_LOCK)
	@touch $@

# Each lock covers every platform (--universal: the layer is built for arm64 on any host) for
# Python 3.13, the Lambda runtime. uv reads the existing lock and keeps its pins unless a
# range excludes them; UPGRADE=1 (or make upgrade) takes the newest versions the ranges allow.
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.13 \
	--generate-hashes --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

.PHONY: lock
lock: venv ## Pin the *.in ranges into the lock files (*.txt), with hashes (UPGRADE=1: newest)
	@# The layer's first: requirements-dev.in constrains (-c) the dev lock to it.
	$(UV_COMPILE) layers/wxtoken/requirements.in -o $(LAYER_LOCK)
	$(UV_COMPILE) requirements-dev.in -o $(DEV_LOCK)
	$(UV_COMPILE) requirements-sam.in -o $(SAM_LOCK)

.PHONY: upgrade
upgrade: ## make lock UPGRADE=1: the newest versions the *.in ranges allow
	$(MAKE) lock UPGRADE=1
	$(MAKE) botocore-models

.PHONY: botocore-models
botocore-models: venv ## Cut the service models the functions read (wxtoken/botocore_models) from botocore
	$(VENV)/bin/python -m devtools.botocore_models

.PHONY: test
test: venv secrets ## Secret scan, lint, type-check and run every test (unit and integration)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@# explicit_package_bases (pyproject.toml) names each handler functions.<name>.app,
	@# so the functions' app.py files do not clash.
	$(VENV)/bin/mypy layers/wxtoken/wxtoken functions
	@# devtools and bench are products of their own: strict too.
	$(VENV)/bin/mypy devtools bench
	@# pytest exits 5 when it collects no tests; like any non-zero status, that fails make.
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS)

# .secrets.baseline lists the known fake secrets (test AppSecrets, WeChat's sample keys),
# audited, without line numbers so that moving one does not rewrite the file. Exit 3 of the
# hook: no new secret, but a listed one is gone and the baseline was rewritten (commit it).
.PHONY: secrets
secrets: venv ## Fail on a secret in a tracked file that .secrets.baseline does not list
	$(VENV)/bin/pre-commit validate-config
	$(VENV)/bin/detect-secrets-hook --baseline .secrets.baseline $$(git ls-files) || [ $$? -eq 3 ]

.PHONY: hooks
hooks: venv sam-venv ## Install the git pre-commit hooks: ruff, cfn-lint, the secret scan
	$(VENV)/bin/pre-commit install

.PHONY: unit
unit: venv ## Unit tests only: pure logic, no Redis, no moto, no sockets (seconds)
	$(VENV)/bin/pytest tests/unit

.PHONY: integration
integration: venv ## Integration, end-to-end and fuzz tests (spawned redis-server, moto, the WeChat stand-in)
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) tests/integration tests/e2e tests/fuzz

.PHONY: validate
validate: sam-venv ## Validate template.yaml (sam validate --lint, cfn-lint incl. AWS China)
	AWS_DEFAULT_REGION=us-east-1 $(SAM) validate --lint
	$(CFN_LINT) --regions $(LINT_REGIONS) -- template.yaml

.PHONY: build
build: sam-venv ## sam build: the layer (arm64 wheels) and the functions into .aws-sam/
	$(require_python313)
	@# sam build copies the layer's folder as it is on disk: not setuptools' leftovers from a
	@# `pip install ./layers/wxtoken` (the layer installs requirements.txt, not the package).
	rm -rf layers/wxtoken/build layers/wxtoken/*.egg-info
	@# sam build looks up python3.13 on PATH; put the real interpreter first.
	PATH="$(dir $(PYTHON313)):$$PATH" $(SAM) build
	@# Lambda's /opt and /var/task are read-only, so Python cannot keep what it compiles, and
	@# sam build ships no .pyc: each cold start compiled every module it imported (wxtoken's
	@# own cost the webhook about 25 ms; bench/cold_import.py). Compiled here by Python 3.13,
	@# the runtime's, as checked-hash .pyc (PEP 552): used while the source is unchanged,
	@# whatever mtime a zip keeps, and ignored if a later build replaces the source.
	$(PYTHON313) -m compileall -q -j 0 --invalidation-mode checked-hash .aws-sam/build

.PHONY: ci
ci: test validate build ## What CI runs (.ci/run)

.PHONY: clean
clean: ## Remove build output and tool caches (keeps the virtualenvs)
	rm -rf .aws-sam .pytest_cache .ruff_cache .mypy_cache .hypothesis
	rm -rf layers/wxtoken/build layers/wxtoken/*.egg-info
	find . -path ./$(VENV) -prune -o -path ./$(SAM_VENV) -prune -o \
		-name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: distclean
distclean: clean ## clean, and remove both virtualenvs
	rm -rf $(VENV) $(SAM_VENV)

# --- local loop ---
# template.yaml running on this machine: no Docker, no AWS account (devtools/local.py).
# Real WeChat instead of the sandbox: WECHAT_APPID=wx… WECHAT_APPSECRET=… make local;
# Redis instead of SSM: TOKEN_STORE=redis make local.

LOCAL_ARGS ?=
# HOST=0.0.0.0: every local service listens on all interfaces, so that sam local in Docker can
# reach them (docs/sam-local.md); they are fakes anyone on the network can then use.
HOST ?=
FN ?= RefreshTokenFunction
EVENT ?= events/force_all.json
ENV_VARS ?=
MSG ?= hello

.PHONY: local
local: venv ## Run the stack locally: API on :3100, schedules, local AWS, WeChat sandbox [HOST=0.0.0.0]
	$(VENV)/bin/python -m devtools.local $(if $(HOST),--host $(HOST)) $(LOCAL_ARGS)

.PHONY: invoke
invoke: ## Invoke a function once (sam local invoke): FN=… EVENT=… [ENV_VARS=events/env.json]
	@# stdout is the result's JSON alone, as with sam (make invoke … | jq): make echoes
	@# nothing, and setting up .venv, if it must, talks on stderr.
	@$(MAKE) --no-print-directory -s venv >&2
	@$(VENV)/bin/python -m devtools.invoke $(FN) -e $(EVENT) $(if $(ENV_VARS),--env-vars $(ENV_VARS))

.PHONY: play
play: venv ## Play WeChat: send MSG to the local webhook, encrypted (PLAIN=1: plain)
	@$(VENV)/bin/python -m devtools.play text "$(MSG)" $(if $(PLAIN),,--encrypted)

# --- benchmarks and fuzzing ---
# Benchmarks print ratios measured side by side in one run (machines are noisy) and counts;
# none of them is a test. The fuzz target runs the webhook fuzz tests with 10,000 examples
# each (make test runs the same tests with the short "ci" profile).

BENCH_ARGS ?=

.PHONY: bench
bench: venv ## Every benchmark figure in one table (bench/run_all.py; BENCH_ARGS=--quick)
	$(VENV)/bin/python -m bench.run_all $(BENCH_ARGS)

.PHONY: bench-webhook
bench-webhook: venv ## Webhook round trip vs wechatpy, piece by piece
	$(VENV)/bin/python -m bench.webhook_roundtrip --breakdown

.PHONY: bench-cold
bench-cold: venv ## Cold start: import, and import + first request, vs boto3
	$(VENV)/bin/python -m bench.cold_import

.PHONY: bench-platform
bench-platform: venv ## Open Platform at scale: 5,000 authorizers, 24 simulated hours, monthly cost (BENCH_ARGS=--quick)
	$(VENV)/bin/python -m bench.open_platform_scale $(BENCH_ARGS)

.PHONY: fuzz
fuzz: venv ## Fuzz the webhook through its handler: 10,000 examples per property
	HYPOTHESIS_PROFILE=fuzz $(VENV)/bin/pytest tests/fuzz -q --show-capture=no
