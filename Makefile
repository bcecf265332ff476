# The README's two commands: `make demo` (set up + deblur the examples) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# glibc's malloc returns memory to the OS too eagerly for torch's allocation pattern;
# these tunables made torch ops 1.3-5x faster on our 2-core CI machine (docs/decisions.md).
export GLIBC_TUNABLES := glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736

.PHONY: demo setup photos browser test lint clean

demo: setup
	@bash scripts/demo.sh

setup: $(VENV)/.installed photos

# pyproject.toml states lower bounds; constraints.txt pins the versions we test with.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# Sharp photos for the data engine (Debian packages); optional for deblurring.
photos:
	@bash scripts/install_photos.sh

# Debian's chromium + chromedriver for the web page's browser test (skipped without them).
browser:
	@bash scripts/apt_install.sh "the web page's browser test" chromium chromium-driver

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff format --check src tests && $(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) out
