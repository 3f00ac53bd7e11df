# The two set-up commands of README.md: `make run` and `make test`. Both work on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-scale install lint clean soak fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,scale]'
	# open_clip_torch is only read for its CLIP BPE vocabulary file (engine/weights/clip_vocab.py); its
	# dependency torchvision does not import beside torch 2.13.0 CPU, so it is installed alone.
	$(BIN)/pip install -q --no-deps open-clip-torch==3.3.0
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@KEY=$$($(BIN)/pixelserve keys create --name "demo $$(date +%F)" | tail -n 1) && echo "demo API key: $$KEY" && \
	$(BIN)/pixelserve serve --host 127.0.0.1 --port 8000 --demo-key "$$KEY"

lint: $(STAMP)
	$(BIN)/lint-imports

# Two workers (pytest-xdist), a file per worker at a time (tests/conftest.py groups them), one torch
# thread each: the suite's many waits (servers starting, worker processes, Ray) overlap.
test: $(STAMP) lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadgroup

# The API suite once more with every test server on PostgreSQL (Debian's postgresql package) and
# its files in an S3 bucket (SeaweedFS), both started by the tests. CI runs the database- and
# store-heavy part of it (SCALE_TESTS in .ci/run) to stay inside its time budget.
SCALE_TESTS ?= tests/api
test-scale: $(STAMP)
	PIXELSERVE_TEST_DB=postgres PIXELSERVE_TEST_STORE=s3 $(BIN)/python -m pytest -q $(SCALE_TESTS)

# The long fault run: kill -9 the engine worker 50 times across a stream of jobs, then check the ledger.
soak: $(STAMP)
	PIXELSERVE_SOAK_KILLS=50 $(BIN)/python -m pytest -q -s tests/reliability/test_worker_kills.py

# The long fuzz run: schemathesis with 1000 random cases per API operation (CI runs 100), plus its
# examples and boundary cases; prints the cases per operation, 5xx and failed checks.
fuzz: $(STAMP)
	PIXELSERVE_FUZZ_EXAMPLES=1000 $(BIN)/python -m pytest -q -s tests/security/test_fuzz.py tests/api/octoai/test_fuzz.py

clean:
	rm -rf $(VENV) data
