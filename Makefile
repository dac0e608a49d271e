# Two commands do all the set-up on a fresh machine: `make run` (the chat) and `make test` (the tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODEL  := models/multilingual-e5-small
SHARED ?= ../shared

.PHONY: install model index run test test-scale lint format bench bench-quick bench-scale bench-openvino browser lexicon reader clean

install: $(STAMP) $(MODEL)/conversion.json lexicon

# FreeDict's English-Arabic dictionaries (Debian packages, GPL; never copied into the repo) give English questions
# a lexical channel. Installed with apt-get when missing and root; elsewhere one line says how, and English
# questions fall back to dense retrieval only.
DICTS := dict-freedict-eng-ara dict-freedict-ara-eng
lexicon:
	@if [ -f /usr/share/dictd/freedict-eng-ara.index ] && [ -f /usr/share/dictd/freedict-ara-eng.index ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's $(DICTS) for English questions"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DICTS) >/dev/null) \
	  || echo "could not install $(DICTS): English questions will use names, numbers and dense retrieval only"; \
	else echo "note: run \`sudo apt-get install $(DICTS)\` for better English questions (names, numbers and dense retrieval only until then)"; fi

# torch first, from the local CPU build: a plain `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

$(MODEL)/conversion.json: $(STAMP)
	$(BIN)/rag model --dest $(MODEL)

model: install

index: install
	$(BIN)/rag index

run: index
	$(BIN)/rag serve

# Debian's Chromium for the browser test (no browser download); installed only where it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "could not install chromium: the browser test will fail"; }

lint: install
	$(BIN)/ruff format --check rag ui tests bench
	$(BIN)/ruff check rag ui tests bench

format: install
	$(BIN)/ruff format rag ui tests bench
	$(BIN)/ruff check --fix rag ui tests bench

test: install browser lint
	$(BIN)/pytest -q -rs -m "not scale"
	$(MAKE) test-scale

# The scale-out tests need Ray (the `scale` extra, about 300 MB installed); only they install it.
test-scale: install
	@$(BIN)/python -c "import ray" 2>/dev/null || $(BIN)/pip install -q -e '.[scale]'
	$(BIN)/pytest -q -rs -m scale

# The short-answer reader's trained layers (models/reader, 43 MB), from the benchmarks' tuning data in
# $(SHARED): about a quarter of an hour on two cores. The chat works without them (recognisers only).
reader: install
	$(BIN)/python -m bench.train_reader --shared $(SHARED)

bench: install
	@test -f models/reader/reader.safetensors || $(MAKE) reader
	$(BIN)/python -m bench.run --shared $(SHARED)

bench-quick: install
	$(BIN)/python -m bench.run --shared $(SHARED) --quick

# The cost curve: local and Ray build throughput, flat/HNSW/IVF search at 10k-1M vectors, disk per chunk, projection.
bench-scale: install
	@$(BIN)/python -c "import ray" 2>/dev/null || $(BIN)/pip install -q -e '.[scale]'
	$(BIN)/python -m bench.scale --shared $(SHARED)
	$(BIN)/python -m bench.sizes --shared $(SHARED)

# OpenVINO against torch bf16, same chunks, same run; OpenVINO goes into bench/work/openvino, not the project.
bench-openvino: install
	$(BIN)/pip install --quiet --no-deps --target bench/work/openvino openvino openvino-telemetry
	PYTHONPATH=bench/work/openvino $(BIN)/python -m bench.openvino_check

clean:
	rm -rf index/* .pytest_cache
