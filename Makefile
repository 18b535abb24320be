# The two commands a new machine needs:  `make run`  (the whole stack, answering calls)  and  `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: run test lint install down status bench eval clean-cache

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing Python dependencies into $(VENV) (first time: several minutes, llama-cpp-python builds from source)"
	$(PY) -m pip install --progress-bar off -q --upgrade pip
	$(PY) -m pip install --progress-bar off -e ".[test]"
	@touch $@

# Debian packages, livekit-server and livekit-sip (built once into .cache/bin). Needs the network, so it
# runs before the tests enter their network namespace.
install: $(VENV)/.installed playground/web/node_modules/.package-lock.json
	$(PY) cli.py install

# The playground page's livekit-client, served from node_modules (no CDN), and the browser test's driver.
playground/web/node_modules/.package-lock.json: playground/web/package-lock.json
	cd playground/web && npm ci --no-audit --no-fund

run: install
	$(PY) cli.py up
	@echo "Stack is up. Call it: $(PY) cli.py call --say 'What are your opening hours?'   Stop it: make down"

# The tests start their own stack in a network namespace of their own (loopback + a veth pair), so they
# never touch a running `make run` stack or any other host.
test: install
	$(PY) cli.py install --test-tools
	scripts/netns.sh $(PY) -m pytest -v -rs --durations=15 $(PYTEST_ARGS)

# Ruff's rules (pyproject.toml [tool.ruff]). No `ruff format --check`: most files predate it and would be rewritten.
lint: $(VENV)/.installed
	$(PY) -m ruff check .

# The call benchmark on a stack of its own, in a namespace of its own; results go to docs/benchmarks.md.
BENCH_RUN := $(CURDIR)/.run/bench
bench: install
	scripts/netns.sh sh -c 'PHONE_RUN_DIR=$(BENCH_RUN) $(PY) cli.py up && \
	  PHONE_RUN_DIR=$(BENCH_RUN) $(PY) -m bench.calls --run-dir $(BENCH_RUN) $(BENCH_ARGS) --write docs/benchmarks.md; \
	  status=$$?; PHONE_RUN_DIR=$(BENCH_RUN) $(PY) cli.py down; exit $$status'

# The spoken evaluation: real SIP calls (PCMU only) in two caller voices against the bakery profile, on a stack of
# its own in a namespace of its own; scores go to docs/quality.md. A quick look at one scenario, written nowhere:
#   make eval EVAL_ARGS="--only hours-monday --voice piper"
# The business keys are emptied so that a .env's BUSINESS_NAME or OPENING_HOURS cannot override the profile
# (a non-empty key wins over BUSINESS_CONFIG), and SIP allow-lists and auth so that the softphone gets in.
EVAL_RUN := $(CURDIR)/.run/eval
EVAL_ARGS ?= --write docs/quality.md
EVAL_ENV := PHONE_RUN_DIR=$(EVAL_RUN) BUSINESS_CONFIG=$(CURDIR)/tests/data/bakery.toml \
  SIP_NUMBERS=+15550100 TRANSFER_NUMBER=+15550199 BUSINESS_NAME= BUSINESS_HOURS= OPENING_HOURS= \
  BUSINESS_TIMEZONE= BUSINESS_COUNTRY= BUSINESS_FACTS= AGENT_LANGUAGE= GREETING= FAREWELL= \
  SIP_ALLOWED_ADDRESSES= SIP_ALLOWED_NUMBERS= SIP_AUTH_USERNAME= SIP_AUTH_PASSWORD=
eval: install
	$(PY) -c 'from stack.binaries import ensure_debian_packages; ensure_debian_packages(["espeak-ng"])'
	$(EVAL_ENV) scripts/netns.sh sh -c 'trap "$(PY) cli.py down" EXIT; trap "exit 130" INT TERM; \
	  $(PY) cli.py up && $(PY) -m bench.spoken_eval $(EVAL_ARGS)'

down:
	$(PY) cli.py down

status:
	$(PY) cli.py status
