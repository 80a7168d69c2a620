# Two commands: `make book` (execute every chapter, build the book) and `make test`;
# `make published` builds the book from the published run (book/published) without executing it.
# `make book PROFILE=quick ARGS="-p seeds=0,1,2"` passes extra options to igan_utils.book.
# Both create or reuse the virtual environment .venv and install the project into it.

PYTHON ?= python3
VENV ?= .venv
PROFILE ?= smoke
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Offline data lives in data/, the package's default data folder (unless IGAN_DATA_DIR is set): the
# MNIST-10k beside the checkout is linked there when it is there, and Fashion-MNIST is laid out there
# from Debian's package dataset-fashion-mnist on first use (a folder we can write, unlike ../shared).
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(IGAN_DATA_DIR),)
DATA := $(if $(wildcard $(SHARED_DATA)/MNIST/raw),data/MNIST)
TEST_DATA := IGAN_DATA_DIR=$(abspath data)
endif

.PHONY: install book published test unit nbval lab benchmark clean

install: $(STAMP)

data/MNIST:
	mkdir -p data && ln -sfn $(SHARED_DATA)/MNIST data/MNIST

# Reinstalls only when pyproject.toml changes; a second run finds everything in place.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23.1"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

book: $(STAMP) $(DATA)
	$(PY) -m igan_utils.book --profile $(PROFILE) $(ARGS)

published: $(STAMP)
	$(PY) -m igan_utils.book --published

test: $(STAMP) $(DATA)
	$(TEST_DATA) $(PY) -m pytest

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

benchmark: $(STAMP) $(DATA)
	$(TEST_DATA) $(PY) benchmarks/attacks.py
	$(TEST_DATA) $(PY) benchmarks/training.py

clean:
	rm -rf _build book/executed
