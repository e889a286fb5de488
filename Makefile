# The only place that knows the install order:
#   1. a virtual environment in .venv (kept between runs),
#   2. torch (an existing one is kept; else the pinned CPU/CUDA wheel),
#   3. mmcv compiled *with ops* against that torch (no build isolation, or
#      pip silently builds it without mmcv._ext),
#   4. this package and the rest of the stack from setup.py.
# pip stays below 24.1: newer pip rejects betty-ml 0.1.1's metadata
# (`torch>=1.6.*`), and betty-ml 0.1.1 is the only release for Python 3.11.
# Every step is skipped when its result is already there, so `make test`
# and `make demo` are cheap the second time.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.mmbodvcl-deps
TORCH_VERSION ?= 2.13.0
MMCV_VERSION  ?= 2.1.0

.PHONY: env demo test clean-env

env: $(STAMP)

$(STAMP): setup.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q 'pip<24.1' wheel 'setuptools>=77,<82'
	$(PY) -c 'import torch' 2>/dev/null || $(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q numpy 'mmengine==0.10.7'
	$(PY) -c 'import mmcv.ops' 2>/dev/null || { \
	  echo '>>> building mmcv $(MMCV_VERSION) with compiled ops (about 8 minutes once, then cached)'; \
	  $(PIP) install --no-build-isolation mmcv==$(MMCV_VERSION); }
	$(PIP) install -q -e '.[tests]'
	$(PY) -c 'import mmcv.ops, mmbodvcl; print("environment ready:", mmbodvcl.__version__)'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/run_demo.py --work-dir work_dirs/demo

test: $(STAMP)
	$(PY) -m pytest tests -q

clean-env:
	rm -rf $(VENV)
