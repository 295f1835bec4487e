# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_TEXT := Deepfake Studio runs entirely on this computer. This sentence was never spoken by the person you hear.

.PHONY: install demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools<81" wheel
	# torch first and pinned: a bare torch requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[eval,server,queue,detector,train,test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	mkdir -p out
	$(BIN)/deepfake-studio clone --reference examples/lj_reference.flac \
		--text "$(DEMO_TEXT)" --out out/demo.wav

# Two worker processes of one thread each, a test file per worker at a time (module fixtures
# load once): 15.6-17 min against 23 min for one process of two threads (599 tests, 2 AMD EPYC
# cores); many tests wait on subprocesses, servers and the browser with a core idle.
TEST_WORKERS ?= 2
test: install
	$(BIN)/ruff check src tests benchmarks
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: install  # refreshes the committed results under benchmarks/ (see benchmarks/README.md)
	$(BIN)/python benchmarks/bench_clone.py --overwrite
	$(BIN)/python benchmarks/bench_sv2tts.py --overwrite
	$(BIN)/python benchmarks/bench_server_load.py --overwrite
	$(BIN)/python benchmarks/bench_kokoro_torch.py --overwrite
	$(BIN)/python benchmarks/bench_streaming.py --overwrite
	$(BIN)/python benchmarks/bench_live_player.py --overwrite

clean:
	rm -rf $(VENV) out .pytest_cache
