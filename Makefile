# Earworm: `make demo` sets everything up and runs the main job; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed
RAY_VENV ?= .venv-ray
RAY_PY := $(RAY_VENV)/bin/python
RAY_STAMP := $(RAY_VENV)/.installed
NO_RAY_HERE := "import importlib.util, sys; sys.exit('ray is installed in $(VENV); its rllib extra downgrades gymnasium there. Reinstall it (rm -rf $(VENV); make setup); Ray lives in $(RAY_VENV) (make setup-ray).' if importlib.util.find_spec('ray') else 0)"

.PHONY: setup demo test data rater eval bench clean setup-ray test-ray bench-ray

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
	@$(PY) -c $(NO_RAY_HERE)
	$(PY) -m pytest -q

# The Ray backend in its own venv: RLlib pins gymnasium 1.2.2, the project is tested on 1.4 in $(VENV).
$(RAY_STAMP): pyproject.toml $(STAMP)
	test -x $(RAY_PY) || $(PYTHON) -m venv $(RAY_VENV)
	$(RAY_PY) -m pip install -q --upgrade pip
	$(RAY_PY) -m pip install -q "torch==$(TORCH_VERSION)"
	$(RAY_PY) -m pip install -q -e ".[test,ray]"
	@echo "$(RAY_VENV) differs from $(VENV) in:"; $(RAY_PY) -m pip freeze | grep -v '^-e' | sort > $(RAY_VENV)/freeze.txt; \
		$(PY) -m pip freeze | grep -v '^-e' | sort | comm -13 - $(RAY_VENV)/freeze.txt | sed 's/^/    /'
	touch $(RAY_STAMP)

setup-ray: $(RAY_STAMP)

bench-ray: $(RAY_STAMP)
	$(RAY_PY) -m benchmarks.ray_scaling

# The two-node Ray cluster tests, and the env's checks on the gymnasium RLlib runs it with.
test-ray: $(RAY_STAMP)
	$(RAY_PY) -m pytest -q tests/test_ray.py tests/test_piano_env.py

data: $(STAMP)
	$(PY) -m rater.data build

rater: $(STAMP)
	$(PY) train.py --agent rater

eval: $(STAMP)
	$(PY) evaluate.py

bench: $(STAMP)
	for f in benchmarks/[a-z]*.py; do m=$$(basename $$f .py); [ $$m = ray_scaling ] && continue; echo "== $$m"; $(PY) -m benchmarks.$$m || exit 1; done

clean:
	rm -rf runs data .cache
