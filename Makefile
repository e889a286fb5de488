# The only place that knows the install order:
#   1. a virtual environment in .venv (kept between runs),
#   2. pip, wheel, setuptools, then torch, numpy and mmengine,
#   3. mmcv compiled *with ops* against that torch (no build isolation, or
#      pip silently builds it without mmcv._ext); ninja first, so that
#      torch's extension builder compiles on every core,
#   4. this package and the rest of the stack from setup.py.
# Every install takes its versions from requirements/lock.txt (Linux,
# Python 3.11, torch 2.13.0 CPU): a fresh machine tests exactly what was
# tested. `make lock` refreshes the lock from the ranges in setup.py.
# Every step is skipped when its result is already there, so `make test`
# and `make demo` start at once the second time.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
LOCK   := requirements/lock.txt
STAMP  := $(VENV)/.mmbodvcl-deps
LOCKED := $(PIP) install -q -c $(LOCK)
LINTED := mmbodvcl tools tests benchmarks configs setup.py
# pytest-xdist workers: one per core ('auto'); tests that start processes
# talking over ports or signals share one worker (tests/conftest.py).
WORKERS ?= auto

.PHONY: env demo test lint lock clean-env

env: $(STAMP)

$(STAMP): setup.py Makefile $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(LOCKED) pip wheel setuptools
	$(LOCKED) torch numpy mmengine ninja
	$(PY) -c 'import mmcv.ops' 2>/dev/null || { \
	  echo '>>> building mmcv with compiled ops (minutes, once; pip caches the wheel)'; \
	  $(PIP) install -c $(LOCK) --no-build-isolation mmcv; }
	$(LOCKED) -e '.[tests]'
	$(PY) tools/check_lock.py $(LOCK)
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/run_demo.py --work-dir work_dirs/demo

# flake8 with setup.cfg's settings (PEP 8, 79 columns); part of `make test`.
lint: $(STAMP)
	$(PY) -m flake8 $(LINTED)

# The suite on every core, the 15 slowest tests listed at the end.
test: $(STAMP) lint
	$(PY) -m pytest tests -q -n $(WORKERS) --dist loadgroup --durations=15


# Refresh the lock: install the ranges of setup.py into a scratch
# environment in the same order, then freeze it. Review the diff, run
# `make test`, commit requirements/lock.txt.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q 'pip<24.1' wheel 'setuptools>=77,<82'
	.venv-lock/bin/pip install -q torch==2.13.0 numpy mmengine==0.10.7 ninja
	.venv-lock/bin/pip install --no-build-isolation 'mmcv>=2.0.0,<2.2.0'
	.venv-lock/bin/pip install -q -e '.[tests]'
	.venv-lock/bin/python tools/check_lock.py --write $(LOCK)
	rm -rf .venv-lock

clean-env:
	rm -rf $(VENV)
