# Two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 \
	libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0 \
	libgl1 libegl1 libdbus-1-3 libfontconfig1 libglib2.0-0 libjemalloc2
# Runs the suite on both cores; each test file is small, so xdist would cost more than it saves.
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck pytest system-deps clean docs bench

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(MAKE) --no-print-directory system-deps
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: $(VENV)/.installed
	$(VENV)/bin/wsi-ssl demo -o demo_out

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

# Two passes: the tests without a window on both cores (pytest-xdist), then the napari-window
# tests one at a time, so that their event-loop timings do not compete with other tests.
pytest: $(VENV)/.installed
	$(PY) -m pytest -m "not gui" -n 2 $(PYTEST_ARGS)
	$(PY) -m pytest -m gui $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(VENV)/.installed
	$(VENV)/bin/wsi-ssl bench

# The screenshots of docs/ in a shown napari window; under Xvfb when there is no display.
XVFB := $(if $(DISPLAY),,xvfb-run -a -s "-screen 0 1600x1000x24")
docs: $(VENV)/.installed
	$(XVFB) $(PY) docs/scripts/screenshot_slide.py
	$(XVFB) $(PY) docs/scripts/gui_screenshots.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache .mypy_cache .ruff_cache
