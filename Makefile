# genbook: `make book` builds the site, `make test` runs the tests.
# Both create .venv and install the pinned toolchain on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8000

.PHONY: all book test lint bench serve clean install check-site gpu-check

all: book

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

# Executes every chapter (cached by jupyter-cache: unchanged chapters are not re-run),
# turns every warning into an error, and writes the site to _build/html.
# The cache knows only the chapters' code cells, so when the package's source changes
# (a hash of genbook/*.py) the cache and Sphinx's parsed pages are dropped and every
# chapter runs again: the outputs on the site always come from the package as it is.
# The hash is taken once, before the build, and recorded only when the build succeeds.
GENBOOK_HASH = $(BIN)/python -c 'import hashlib, pathlib; print(hashlib.sha256(b"".join(p.read_bytes() for p in sorted(pathlib.Path("genbook").rglob("*.py")))).hexdigest()[:16])'

book: $(STAMP)
	@mkdir -p _build && $(GENBOOK_HASH) > _build/.genbook-hash.next
	@if ! cmp -s _build/.genbook-hash.next _build/.genbook-hash; then \
	  echo "genbook's source differs from the last build's: every chapter runs again"; \
	  rm -rf _build/.jupyter_cache _build/.doctrees; fi
	GENBOOK_PROGRESS=0 $(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
	@mv _build/.genbook-hash.next _build/.genbook-hash

test: $(STAMP)
	$(BIN)/python -m pytest -q

# One style for the package, tests, benchmarks and scripts (ruff, configured in pyproject.toml).
# `$(BIN)/ruff format .` applies the format; this target only checks it.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Reads the built site in headless Chromium (the system's; see scripts/check_site.py):
# math typeset, images loaded, no cell errors, links and anchors resolve, search works.
# Screenshots of every page go to _build/screenshots/.
check-site: $(STAMP)
	test -f _build/html/index.html || $(MAKE) book
	$(BIN)/python scripts/check_site.py --html _build/html --shots _build/screenshots

# Longer runs (quality and speed against the issues' anchors) -> _build/bench/results.json
bench: $(STAMP)
	GENBOOK_PROGRESS=0 $(BIN)/python -m benchmarks

# On a machine with CUDA: the tests with genbook.device() on the GPU, every chapter executed on the
# GPU with its time (_build/gpu-check/chapters.json), and the benchmarks on the GPU.
gpu-check: $(STAMP)
	$(BIN)/python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "make gpu-check needs CUDA, and torch sees none")'
	GENBOOK_TEST_DEVICE=cuda $(BIN)/python -m pytest -q
	GENBOOK_DEVICE=cuda $(BIN)/python scripts/gpu_check.py --out _build/gpu-check
	GENBOOK_DEVICE=cuda $(MAKE) bench

serve: book
	@echo "serving _build/html on http://127.0.0.1:$(PORT)"
	$(BIN)/python -m http.server --bind 127.0.0.1 --directory _build/html $(PORT)

clean:
	rm -rf _build .jupyter_cache .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
