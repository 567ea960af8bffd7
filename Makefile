# Two commands do all set-up: `make demo` and `make test` (each installs into .venv first).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mcsp-installed

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "mcsp needs Python 3.11, 3.12 or 3.13: install one (Debian: apt-get install python3.11 python3.11-venv) or run make PYTHON=/path/to/python3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { echo "python -m venv failed: on Debian install python3.11-venv"; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/snakemake --profile workflow/profiles/local --configfile config/demo.yaml
	@cat results/synthetic/inventory.txt
	@$(BIN)/mcsp qc results/synthetic
	@$(BIN)/mcsp summary results/evaluation/summary.tsv
	@echo "Report: $(CURDIR)/results/report/index.html (tables: results/report/tables/)"

test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -ra --durations=15

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

clean:
	rm -rf results resources work .snakemake
