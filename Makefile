# The two commands a new machine needs:  `make run`  (the whole stack, answering calls)  and  `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
PIP_VERSION := 26.3
UV_VERSION := 0.13.9
UV_VENV := .cache/uv

.PHONY: run test lint lock install down status bench bench-standin eval amd-eval reliability clean-cache

# Python packages come from requirements.lock (every version pinned, every file hash-checked), so a new machine
# gets exactly what CI tested; the project itself is then installed editable, without resolving anything.
# llama-cpp-python first, built from the lock's sdist without AMX (scripts/llama_wheel.py says why); the lock's
# install then finds it in place.
$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing Python dependencies into $(VENV) (first time: several minutes, llama-cpp-python builds from source)"
	$(PY) -m pip install --progress-bar off -q pip==$(PIP_VERSION)
	$(PY) scripts/llama_wheel.py requirements.lock
	$(PY) -m pip install --progress-bar off --require-hashes -r requirements.lock
	$(PY) -m pip install --progress-bar off --no-deps -e .
	@touch $@

# Regenerate requirements.lock after changing the dependencies in pyproject.toml (runtime and the test extra, for
# CPython 3.11 on x86_64 Linux). Versions already in the lock are kept where pyproject.toml still allows them;
# `make lock UV_ARGS=--upgrade` (or `UV_ARGS="--upgrade-package NAME"`) moves them on.
lock:
	@test -x $(UV_VENV)/bin/uv || { $(PYTHON) -m venv $(UV_VENV) && $(UV_VENV)/bin/pip install -q uv==$(UV_VERSION); }
	$(UV_VENV)/bin/uv pip compile --quiet pyproject.toml --extra test --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu -o requirements.lock $(UV_ARGS)

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
# Its worker takes up to 4 conversations (the highest default level), whatever AGENT_MAX_CALLS says: the bench
# measures what each level costs, to choose AGENT_MAX_CALLS from (docs/deploy.md, "Capacity").
BENCH_RUN := $(CURDIR)/.run/bench
bench: install
	scripts/netns.sh sh -c 'export AGENT_MAX_CALLS=4; PHONE_RUN_DIR=$(BENCH_RUN) $(PY) cli.py up && \
	  PHONE_RUN_DIR=$(BENCH_RUN) $(PY) -m bench.calls --run-dir $(BENCH_RUN) $(BENCH_ARGS) --write docs/benchmarks.md; \
	  status=$$?; PHONE_RUN_DIR=$(BENCH_RUN) $(PY) cli.py down; exit $$status'

# The same bench with the agent on the OpenAI path, pointed at a stand-in for a fast server with fixed delays
# (bench/standin_endpoint.py; STANDIN_ARGS="--stt-ms 100 --llm-ms 150 --tts-ms 80"): what the rest of the stack adds.
# Its table goes to .run/bench-standin/standin.md, not docs/.
STANDIN_RUN := $(CURDIR)/.run/bench-standin
STANDIN_URL := http://127.0.0.1:21890/v1
bench-standin: install
	scripts/netns.sh sh -c 'export AGENT_MAX_CALLS=4 OPENAI_API_KEY=stand-in OPENAI_BASE_URL=$(STANDIN_URL) \
	  PHONE_RUN_DIR=$(STANDIN_RUN); $(PY) -m bench.standin_endpoint --port 21890 $(STANDIN_ARGS) & standin=$$!; \
	  trap "$(PY) cli.py down; kill $$standin" EXIT; trap "exit 130" INT TERM; \
	  for i in $$(seq 120); do curl -sf $(STANDIN_URL)/models >/dev/null && break; sleep 0.5; done; \
	  $(PY) cli.py up && $(PY) -m bench.calls --run-dir $(STANDIN_RUN) $(BENCH_ARGS) --write $(STANDIN_RUN)/standin.md'

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

# Answering-machine detection on outbound calls (bench/amd_eval.py): the agent dials a softphone in the namespace
# that answers as a person or as a voicemail; results go to docs/quality.md.
AMD_EVAL_ARGS ?= --write docs/quality.md
amd-eval: install
	$(EVAL_ENV) PHONE_RUN_DIR=$(CURDIR)/.run/amd-eval SIP_OUTBOUND_ADDRESS=127.0.0.1:21960 \
	  scripts/netns.sh sh -c 'trap "$(PY) cli.py down" EXIT; trap "exit 130" INT TERM; \
	  $(PY) cli.py up && $(PY) -m bench.amd_eval $(AMD_EVAL_ARGS)'

# The reliability suite (bench/reliability.py: calls in a row, components killed and restarted, malformed SIP, endpoint
# abuse) on a stack of its own, in a namespace of its own; results go to docs/reliability.md. `make test` runs a fast
# subset (tests/test_reliability.py). Fewer calls in a row or bursts, or some scenarios only, written nowhere:
#   make reliability RELIABILITY_ARGS="--calls 10 --only sequential-calls,redis-restart"
#   make reliability RELIABILITY_ARGS="--bursts 1 --only burst,endpoint-killed"
# SIP allow-lists and auth are emptied so that the softphone and the raw SIP probes get in.
RELIABILITY_RUN := $(CURDIR)/.run/reliability
RELIABILITY_ARGS ?= --calls 100 --write docs/reliability.md
RELIABILITY_ENV := PHONE_RUN_DIR=$(RELIABILITY_RUN) SIP_ALLOWED_ADDRESSES= SIP_ALLOWED_NUMBERS= SIP_AUTH_USERNAME= \
  SIP_AUTH_PASSWORD=
reliability: install
	$(PY) cli.py install --test-tools
	$(RELIABILITY_ENV) scripts/netns.sh sh -c 'trap "$(PY) cli.py down" EXIT; trap "exit 130" INT TERM; \
	  $(PY) cli.py up && $(PY) -m bench.reliability $(RELIABILITY_ARGS)'

down:
	$(PY) cli.py down

status:
	$(PY) cli.py status
