# Two commands matter: `make run` and `make test`. Everything they need is installed on demand.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.requirements.installed
NPM_STAMP := node_modules/.package-lock.installed
# Translations: the .po files are committed, their compiled .mo files are made here (Debian gettext's msgfmt).
PO_FILES := $(wildcard locale/*/LC_MESSAGES/*.po)
MO_STAMP := locale/.compiled
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test worker bench screenshots lint system-deps run-deps migrate messages

$(PIP_STAMP): requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

system-deps:
	bash scripts/system-deps.sh

# What the console itself needs on a fresh machine (gettext, the CJK font for watermarks), not the test tools.
run-deps:
	bash scripts/system-deps.sh run

$(MO_STAMP): $(PO_FILES) | $(PIP_STAMP) run-deps
	if command -v msgfmt >/dev/null; then $(PY) manage.py compilemessages --ignore=.venv --ignore=node_modules --ignore=var -v 0 && touch $@; \
	else echo "gettext (msgfmt) is missing: the console runs in English only" >&2; fi

# Refresh the .po files from the templates, the Python and the scripts (then translate the new entries).
messages: $(PIP_STAMP)
	$(PY) manage.py makemessages -l zh_Hans --ignore=.venv --ignore=node_modules --ignore=var --ignore=tests --no-obsolete
	$(PY) manage.py makemessages -d djangojs -l zh_Hans --ignore=.venv --ignore=node_modules --ignore=var --ignore=tests --no-obsolete

migrate: $(PIP_STAMP) $(NPM_STAMP)
	$(PY) manage.py migrate --noinput

run: migrate $(MO_STAMP)
	$(PY) manage.py ensureadmin --url http://$(HOST):$(PORT)/login/
	@echo "Tileflow console: http://$(HOST):$(PORT)/"
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) console.asgi:application

# A worker host needs the code and REDIS_URL only: no database, no media.
worker: $(PIP_STAMP)
	$(PY) manage.py runworker tileflow.lane.default

test: $(PIP_STAMP) $(NPM_STAMP) system-deps $(MO_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(PIP_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(PIP_STAMP) system-deps
	$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(PY) bench/run.py $(BENCH_ARGS)

screenshots: $(PIP_STAMP) $(NPM_STAMP) system-deps $(MO_STAMP)
	$(PY) -m pytest tests/browser -k screenshots --screenshots
