# The README's two commands: `make run` (serve mail) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CONFIG := var/merpati.toml

.PHONY: run test test-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	@test -f $(CONFIG) || $(VENV)/bin/merpati -c $(CONFIG) init --data-dir var --hostname localhost \
		--domain example.test --demo-user demo@example.test
	$(VENV)/bin/merpati -c $(CONFIG) serve

test-deps:
	bash scripts/install-test-deps.sh

test: $(STAMP) test-deps
	$(PY) -m pytest -n auto --dist loadfile -p no:cacheprovider

bench: $(STAMP) test-deps
	$(PY) bench/smtp_inbound.py

clean:
	rm -rf $(VENV) var bench/out
