# Two commands on a fresh machine: `make demo` runs the system, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-unit test-integration lint bench clean faults peers-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/toogreen demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q --durations=15

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/agents

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

# Fault injection: kill -9 of each process of a running system, the demo's broker, Ctrl-C (prints the counts)
faults: $(STAMP)
	$(BIN)/python -m pytest -q -s -m faults tests/faults

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

PEERS_VENV := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

$(PEERS_STAMP): bench/peers/requirements.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet -r bench/peers/requirements.txt
	touch $(PEERS_STAMP)

peers-venv: $(PEERS_STAMP)

bench: $(STAMP) $(PEERS_STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) $(PEERS_VENV) var .pytest_cache .ruff_cache

# The Avro reference implementation (Java) the interoperability tests check the wire format against: built once
# (the first build downloads Avro, kafka-clients and Maven's plugins from Maven Central into ~/.m2), then cached.
INTEROP_JAVA := tests/interop/java
INTEROP_JAR := $(INTEROP_JAVA)/target/avro-interop.jar
.PHONY: interop-java schema-compat interop-vectors
$(INTEROP_JAR): $(INTEROP_JAVA)/pom.xml $(shell find $(INTEROP_JAVA)/src -name '*.java')
	mvn -q -B -Dstyle.color=never -f $(INTEROP_JAVA)/pom.xml package
	touch $@
interop-java: $(INTEROP_JAR)
test: $(INTEROP_JAR)
test-integration: $(INTEROP_JAR)
# Every schema must read what its committed baseline (schemas/baseline/) wrote: Avro's SchemaCompatibility decides.
schema-compat: $(INTEROP_JAR)
	java -jar $(INTEROP_JAR) compat schemas/baseline schemas
# After a schema changed: the test vectors (bytes from Avro's Java encoder) and the producer guide's fingerprints.
interop-vectors: $(STAMP) $(INTEROP_JAR)
	$(BIN)/python -m tests.interop.make_vectors
# The dashboard (api/dashboard/): its browser-side packages from npm, and Debian's chromium for its browser tests.
DASHBOARD := api/dashboard
DASHBOARD_STAMP := $(DASHBOARD)/node_modules/.installed
.PHONY: chromium test-dashboard screenshots
venv demo test test-unit test-integration: $(DASHBOARD_STAMP)
test: chromium

$(DASHBOARD_STAMP): $(DASHBOARD)/package.json $(DASHBOARD)/package-lock.json
	command -v npm >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y npm)
	npm ci --prefix $(DASHBOARD) --no-audit --no-fund
	touch $@

chromium:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

test-dashboard: $(STAMP) $(DASHBOARD_STAMP) chromium
	$(BIN)/python -m pytest -q tests/dashboard

screenshots: $(STAMP) $(DASHBOARD_STAMP) chromium
	$(BIN)/python -m tests.dashboard.screenshots docs/screenshots

# Apache Kafka (KRaft) from Maven Central, cached in ~/.cache/toogreen; the streams verifier on 3 brokers (docs/kafka.md)
.PHONY: kafka-install verify
kafka-install:
	scripts/install-kafka.sh
verify: $(STAMP)
	$(BIN)/python -m tests.system.streams_verifier
