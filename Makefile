# `make run`  : create .venv if missing, install, run the offline default experiment.
# `make test` : same setup, run the test suite (slow tests excluded; `make test-slow` runs them).
# Setup also installs Debian's dataset-fashion-mnist (data=fashion_mnist, offline) where it can (root and
# apt-get, files absent); it never fails the setup for it, it says in one line what to install instead.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.interpfool-installed
FASHION_MNIST_DIR ?= /usr/share/datasets/fashion-mnist
FASHION_MNIST_FILES := train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte
APT_GET ?= apt-get

.PHONY: setup run test test-slow eval clean fashion-mnist
setup: $(STAMP) fashion-mnist

fashion-mnist:
	@have=1; for f in $(FASHION_MNIST_FILES); do \
	  [ -f "$(FASHION_MNIST_DIR)/$$f.gz" ] || [ -f "$(FASHION_MNIST_DIR)/$$f" ] || have=0; done; \
	if [ $$have = 1 ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v $(APT_GET) >/dev/null 2>&1; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  if $(APT_GET) install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	     { $(APT_GET) update -q >/dev/null 2>&1 && $(APT_GET) install -y -q dataset-fashion-mnist >/dev/null 2>&1; }; \
	  then echo "setup: installed dataset-fashion-mnist ($(FASHION_MNIST_DIR)) for data=fashion_mnist"; \
	  else echo "setup: apt-get install dataset-fashion-mnist failed; data=fashion_mnist needs it (or data.download=true, or data.root=<folder with the idx files>)"; fi; \
	else echo "setup: data=fashion_mnist offline needs Debian's dataset-fashion-mnist: run (as root) apt-get install dataset-fashion-mnist, or use data.download=true or data.root=<folder with the idx files>"; fi

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

run: setup
	$(PY) train.py $(ARGS)

test: setup
	$(PY) -m pytest -q $(ARGS)

test-slow: setup
	$(PY) -m pytest -q -m slow $(ARGS)

clean:
	rm -rf outputs multirun .cache
