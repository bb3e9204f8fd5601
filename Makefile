# The README's two commands for a fresh machine:
#   make bench [PROFILE=quick]   set up .venv and benchmark localhost (the embedded default)
#   make test                    set up .venv with the dev extras and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
# Intel Neural Compressor's ONNX API needs numpy<2 and onnx 1.16 (docs/DESIGN.md): its own env.
INC_VENV := .venv-inc
INC_PACKAGES := neural-compressor==3.7.1 "numpy<2" six onnx==1.16.2 onnxruntime==1.19.2
# The TFLite converter (onnx2torch + litert-torch) pulls a second torch and jax: its own env too.
# The converter needs torch on the CPU only; 2.13.0 is the release its tests convert and check
# with (any torch litert-torch 0.10 supports would do, apart from .venv's, which torchvision pins);
# onnx2torch without its deps, which would add torchvision (the converter never uses it).
# ai-edge-quantizer (tflite-int8's quantize_tflite.py) comes with litert-torch; pinned so that a
# fresh machine quantises with the version the tests check.
LITERT_VENV := .venv-litert
LITERT_PACKAGES := torch==2.13.0 litert-torch==0.10.0 ai-edge-quantizer==0.10.0 onnx==1.23.2
LITERT_NODEPS := onnx2torch==1.5.15
PROFILE ?= full
# Extra ansible-playbook arguments, e.g. ARGS='--tags report' or ARGS='-e variants=onnx-cpu'.
ARGS ?=
PYTEST_ARGS ?=

BIN := $(CURDIR)/$(VENV)/bin
# Console scripts (bench-run, bench-report, chi-*) and ansible live in the venv.
RUN := PATH="$(BIN):$$PATH"
# ansible-playbook gets the allow-list servebench.runner gives it (PATH, HOME, LANG, SSH_AUTH_SOCK,
# ANSIBLE_*, ...): never the caller's OS_* credentials or other secrets (docs/BAD_INPUTS.md).
PLAYBOOK := $(BIN)/python -c 'import os, sys; from servebench.runner import passed_env; \
	os.execvpe("ansible-playbook", ["ansible-playbook", *sys.argv[1:]], passed_env(os.environ))'

# On a terminal (not under CI), `make bench` shows the progress view (servebench.progress): per
# host the stage, variants done / planned and the last one's p50; Ansible's own output goes to
# results/<run-id>/ansible.log. PROGRESS=0 (or a pipe, or CI set) prints Ansible's output instead.
PROGRESS ?= auto

.PHONY: bench test lint overhead compare clean help artifact

help:
	@echo "make bench [PROFILE=quick|full] [ARGS=...]  benchmark localhost (or what chi-up provisioned)"
	@echo "make test [PYTEST_ARGS=...]                 run the test suite"
	@echo "make lint                                   ansible-lint (production profile) + syntax check"
	@echo "make overhead                               print the harness overhead against a bare session.run loop"
	@echo "make compare A=RUN_A B=RUN_B [FAIL_ABOVE=5%] B / A median latency per model x host x variant"
	@echo "make clean                                  remove the venvs (results/ is kept)"
	@echo "make artifact                               build dist/servebench-trovi.tar.gz for Trovi (no secrets, no results)"

$(VENV)/.bench-installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[bench]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.bench-installed

$(INC_VENV)/.installed:
	test -x $(INC_VENV)/bin/python || $(PYTHON) -m venv $(INC_VENV)
	$(INC_VENV)/bin/python -m pip install -q --upgrade pip
	$(INC_VENV)/bin/python -m pip install -q $(INC_PACKAGES)
	touch $@

$(LITERT_VENV)/.installed:
	test -x $(LITERT_VENV)/bin/python || $(PYTHON) -m venv $(LITERT_VENV)
	$(LITERT_VENV)/bin/python -m pip install -q --upgrade pip
	$(LITERT_VENV)/bin/python -m pip install -q $(LITERT_PACKAGES)
	$(LITERT_VENV)/bin/python -m pip install -q --no-deps $(LITERT_NODEPS)
	touch $@

bench: $(VENV)/.bench-installed $(INC_VENV)/.installed $(LITERT_VENV)/.installed
	@if [ "$(PROGRESS)" != 0 ] && [ -t 1 ] && [ -z "$$CI" ]; then \
		$(RUN) $(BIN)/python -m servebench.progress bench.yml -e profile=$(PROFILE) $(ARGS); \
	else \
		$(RUN) $(PLAYBOOK) bench.yml -e profile=$(PROFILE) $(ARGS); \
	fi

test: $(VENV)/.dev-installed $(INC_VENV)/.installed $(LITERT_VENV)/.installed
	$(RUN) python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(RUN) ansible-playbook --syntax-check bench.yml
	$(RUN) ansible-lint --offline --profile production

overhead: $(VENV)/.bench-installed
	$(RUN) python tests/perf/harness_overhead.py

# Compare two run folders; with FAIL_ABOVE, exit 6 on a significant slowdown over it (a CI gate).
compare: $(VENV)/.bench-installed
	$(RUN) bench-report --compare $(A) $(B)$(if $(FAIL_ABOVE), --fail-above $(FAIL_ABOVE))

# The archive to upload to Trovi: the notebook, trovi.json and the code it runs (git-tracked files
# only); refuses credentials, keys, chi-up state, results and venvs (servebench.artifact).
artifact: $(VENV)/.bench-installed
	$(RUN) python -m servebench.artifact --out dist/servebench-trovi.tar.gz

clean:
	rm -rf $(VENV) $(INC_VENV) $(LITERT_VENV)
