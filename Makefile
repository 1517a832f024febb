# OpsConductor — one entry point. `make dev` runs the platform; `make test` proves it.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.8
PY := .venv/bin/python
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")

.PHONY: help install venv router-deps ui-deps ui ui-check chromium dev test lint sdl bench clean pins

help:
	@echo "make dev     - run every service, local Ray and the router on this machine (embedded defaults)"
	@echo "make test    - unit + integration + end-to-end tests (PostgreSQL, Redis, sshd, Ray, router)"
	@echo "make lint    - ruff, pyright, import contracts (CI runs it before make test)"
	@echo "make sdl     - export each subgraph's SDL and compose router/supergraph.graphql"
	@echo "make bench   - benchmarks, results in bench/RESULTS.md"
	@echo "make install - uv (if missing), the Python workspace in .venv and the router's node modules (dev/test run it)"
	@echo "make venv    - only the Python workspace (.venv)"
	@echo "make router-deps - only router/node_modules"
	@echo "make ui      - build the web UI (frontend/dist) when its sources changed"
	@echo "make ui-check - codegen drift check, type checks and vitest for frontend-adapter and frontend"
	@echo "make clean   - remove .venv, node_modules, frontend/dist and .data (make dev's databases)"
	@echo "make pins    - regenerate constraints.txt and [tool.uv] constraint-dependencies from the current .venv"
	@echo "make help    - this list"

$(UV):
	python3 -m pip install --quiet --user "uv==$(UV_VERSION)" || python3 -m pip install --quiet "uv==$(UV_VERSION)"

.venv/.synced: $(UV) pyproject.toml */pyproject.toml subgraphs/*/pyproject.toml
	$(UV) sync --all-packages --python 3.11 --quiet
	@touch $@

venv: .venv/.synced

router/node_modules/.installed: router/package.json router/package-lock.json
	cd router && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

router-deps: router/node_modules/.installed

# The web UI: one npm workspace (frontend-adapter + frontend), one package-lock.json at the root.
node_modules/.installed: package.json package-lock.json frontend/package.json frontend-adapter/package.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

ui-deps: node_modules/.installed

UI_SOURCES := $(shell find frontend/src frontend-adapter/src -type f 2>/dev/null) \
	frontend/index.html frontend/vite.config.ts frontend/tsconfig.json frontend/public/config.js

# Built once and again only when a source changed (make dev and make test serve this).
frontend/dist/index.html: node_modules/.installed $(UI_SOURCES)
	cd frontend && npx vite build --logLevel warn

ui: frontend/dist/index.html

ui-check: ui-deps
	cd frontend-adapter && npx graphql-codegen --config codegen.ts --check
	cd frontend-adapter && npx tsc --noEmit -p .
	cd frontend && npx tsc --noEmit -p .
	cd frontend-adapter && npx vitest run
	cd frontend && npx vitest run

# The browser tests drive Debian's chromium (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

install: venv router-deps ui-deps

dev: install ui
	@bash scripts/dev.sh

test: install ui chromium
	$(PY) scripts/export_sdl.py --check
	cd router && node compose.mjs --check
	$(MAKE) --no-print-directory ui-check
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/pyright
	.venv/bin/lint-imports

sdl: install
	$(PY) scripts/export_sdl.py
	cd router && node compose.mjs
	cd frontend-adapter && npx graphql-codegen --config codegen.ts

bench: install
	$(PY) bench/run.py

clean:
	rm -rf .venv router/node_modules node_modules frontend/dist .data

pins: venv  ## regenerate constraints.txt and [tool.uv] constraint-dependencies from the current .venv
	$(PY) scripts/pins.py
