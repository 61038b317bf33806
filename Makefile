# minternet: `make test` lints and runs the test suite, `make book` builds the book into
# book/_build/html (executing every chapter), `make clean` removes everything generated.
# Both `test` and `book` check what they need from the system first, then create .venv and
# install the Python packages on first use. `make help` lists the targets.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Installed before the package, whose ranges it satisfies, so pip keeps it. Override it
# for another platform or build, e.g. make test TORCH_SPEC="torch torchvision".
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

# Stamps: reinstall only when what they depend on changed.
VENV_STAMP := $(VENV)/.installed
NPM_STAMP := book/node_modules/.installed

JB_FLAGS := --all --warningiserror --nitpick --keep-going

.PHONY: help test lint book clean prerequisites-python prerequisites-test prerequisites-book

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  make \1\t/' | expand -t 24

test: prerequisites-test lint ## lint, then run the whole test suite (the browser tests need `make book` first)
	$(BIN)/python -m pytest -q

lint: $(VENV_STAMP) ## ruff over the package, tests, benchmarks and chapters
	$(BIN)/ruff check .

book: prerequisites-book $(VENV_STAMP) $(NPM_STAMP) ## build the book into book/_build/html, executing every chapter
	$(BIN)/python book/tools/colab_cell.py --write
	$(BIN)/python book/tools/offline_assets.py
	$(BIN)/jupyter-book build book $(JB_FLAGS)

# What the system must provide: one line naming what is missing and how to install it.
MISSING = { echo "make: $(1) is missing; install it: $(2)" >&2; exit 2; }
VENV_HINT := Debian/Ubuntu: sudo apt-get install python3-venv; macOS/conda: conda install python=3.11
NPM_HINT := Debian/Ubuntu: sudo apt-get install npm; macOS: brew install node; conda: conda install -c conda-forge nodejs
CHROMIUM_HINT := Debian: sudo apt-get install chromium; Ubuntu: sudo snap install chromium; macOS: brew install --cask chromium

prerequisites-python:
	@command -v $(PYTHON) >/dev/null 2>&1 || $(call MISSING,$(PYTHON) (3.10 or newer),$(VENV_HINT))
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
		|| $(call MISSING,Python 3.10 or newer ($(PYTHON) is older or does not run),$(VENV_HINT))
	@test -x $(BIN)/python || $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null \
		|| $(call MISSING,Python's venv module with pip (python3-venv),$(VENV_HINT))

prerequisites-test: prerequisites-python
	@command -v chromium >/dev/null 2>&1 || $(call MISSING,chromium (for the browser tests of the built book),$(CHROMIUM_HINT))

prerequisites-book: prerequisites-python
	@command -v npm >/dev/null 2>&1 || $(call MISSING,npm (Node.js's package manager; the book bundles its JavaScript with it),$(NPM_HINT))

$(VENV_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing PyTorch and the package into $(VENV) (about 6 GB on first use)..."
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[book,dev]'
	touch $@

# npm ci empties node_modules first, so the stamp inside it goes too.
$(NPM_STAMP): book/package.json book/package-lock.json
	cd book && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

clean: ## remove everything generated: .venv, the built book, run folders, caches
	rm -rf $(VENV) book/_build book/node_modules book/_static/vendor book/runs
	rm -rf .pytest_cache .ruff_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
