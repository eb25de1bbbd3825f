# goip-tw: the two commands of README.rst.
#   make run   - set up (system packages, venv, build) and start the gateway
#   make test  - set up and run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
DATA   ?= goip-data

# Debian packages: build needs, then the real peers the tests talk to.
APT_BUILD := python3-venv python3-dev gcc libbcg729-dev
APT_PEERS := kamailio baresip sipsak sipvicious kannel coturn gammu socat sox tshark linphone-cli

.PHONY: run test setup system-packages peer-packages venv build clean bench

run: setup
	$(VENV)/bin/twistd -n goip --data-dir $(DATA)

test: setup peer-packages
	$(PY) -m pytest -q $(PYTEST_ARGS)

setup: system-packages venv build

# Installs what is missing with apt-get when root; otherwise says what to install.
system-packages:
	@sh scripts/apt-ensure.sh $(APT_BUILD)

peer-packages:
	@sh scripts/apt-ensure.sh $(APT_PEERS)

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel setuptools Cython
	$(PIP) install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

build: venv
	$(PY) setup.py -q build_ext --inplace

bench: setup
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
	find goip_tw -name '*.so' -delete
