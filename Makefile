# minternet: `make test` lints and runs the test suite, `make book` builds the book into
# book/_build/html (executing every chapter), `make clean` removes everything generated.
# Both `test` and `book` create .venv and install what they need on first use.

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

.PHONY: test lint book clean

test: lint
	$(BIN)/python -m pytest -q

lint: $(VENV_STAMP)
	$(BIN)/ruff check .

book: $(VENV_STAMP) $(NPM_STAMP)
	$(BIN)/python book/tools/colab_cell.py --write
	$(BIN)/python book/tools/offline_assets.py
	$(BIN)/jupyter-book build book $(JB_FLAGS)

$(VENV_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[book,dev]'
	touch $@

# npm ci empties node_modules first, so the stamp inside it goes too.
$(NPM_STAMP): book/package.json book/package-lock.json
	cd book && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

clean:
	rm -rf $(VENV) book/_build book/node_modules book/_static/vendor
	rm -rf .pytest_cache .ruff_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
