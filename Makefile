# Earworm: `make demo` sets everything up and runs the main job; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup demo test data rater eval bench clean

$(STAMP): pyproject.toml
	@if ! ldconfig -p 2>/dev/null | grep -q libfluidsynth; then \
		echo "libfluidsynth3 is missing: installing it with apt"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends libfluidsynth3; \
	fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) demo.py

test: $(STAMP)
	$(PY) -m pytest -q

data: $(STAMP)
	$(PY) -m rater.data build

rater: $(STAMP)
	$(PY) train.py --agent rater

eval: $(STAMP)
	$(PY) evaluate.py

bench: $(STAMP)
	for f in benchmarks/[a-z]*.py; do m=$$(basename $$f .py); echo "== $$m"; $(PY) -m benchmarks.$$m || exit 1; done

clean:
	rm -rf runs data .cache
