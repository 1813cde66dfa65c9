# The two commands of the README: `make run` and `make test`. Each does its own set-up
# on a fresh machine: Debian packages (as root), the virtual environment, npm packages.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
NODE_INSTALLED := node_modules/.package-lock.json

.PHONY: run test lint typecheck bench bench-crosscheck system-deps clean

run: $(INSTALLED) $(NODE_INSTALLED)
	$(PY) -m gateway $(ARGS)

# The type check first: CI (.ci/run) runs `make test`, so a type error fails it too.
test: system-deps $(INSTALLED) $(NODE_INSTALLED) typecheck
	scripts/in-loopback-netns $(PY) -m pytest $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# mypy over gateway/, signaling/ and sip_bridge/ ([tool.mypy] in pyproject.toml).
typecheck: $(INSTALLED)
	$(VENV)/bin/mypy

system-deps:
	scripts/install-system-deps

# setup.py builds the C extensions (gateway/media/_g711relay.c, _icedemux.c, _opusframes.c, with
# _opusstep.h) in place: a change to one reinstalls.
$(INSTALLED): pyproject.toml constraints.txt setup.py gateway/media/_g711relay.c gateway/media/_icedemux.c \
		gateway/media/_opusframes.c gateway/media/_opusstep.h
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test,bench]'
	touch $@

# `make bench`: per-packet cost of the SIP leg, click-to-audio latency, then the load sweep,
# both codecs, each G.711 point against this gateway and against Janus's SIP plugin;
# `make bench CALLS=100 SECONDS=20 CODEC=pcmu|opus` (CALLS=10,25 for several points;
# WORKERS=N, SERVER=gateway|janus|both, NICE=-10 optional): those points only. Results in
# bench/results/; how to read them: docs/benchmark.md. `make bench-crosscheck`: the load
# generator against real Chromium calls (CALLS, default 10).
BENCH_ARGS = $(if $(CALLS),--calls $(CALLS)) $(if $(SECONDS),--seconds $(SECONDS)) \
	$(if $(CODEC),--codec $(CODEC)) $(if $(WORKERS),--workers $(WORKERS)) \
	$(if $(SERVER),--server $(SERVER)) $(if $(NICE),--nice $(NICE))

bench: system-deps $(INSTALLED) $(NODE_INSTALLED)
	$(if $(CALLS),,scripts/in-loopback-netns $(PY) bench/rtp_packet_cost.py)
	$(if $(CALLS),,scripts/in-loopback-netns $(PY) bench/call_latency.py --calls 10)
	scripts/in-loopback-netns $(PY) -m bench.load $(BENCH_ARGS)

bench-crosscheck: system-deps $(INSTALLED) $(NODE_INSTALLED)
	scripts/in-loopback-netns $(PY) -m bench.crosscheck $(if $(CALLS),--calls $(CALLS)) \
		$(if $(SECONDS),--seconds $(SECONDS))

$(NODE_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) node_modules
