# Two entry points: `make demo` (the main job) and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv typecheck bench addon wheelhouse base-model corpus clean

venv: $(STAMP)

$(STAMP): requirements.txt
	@$(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed; on Debian run: apt-get install python3-venv" >&2; exit 1; }
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

demo: $(STAMP)
	$(VPY) scripts/demo.py --out out

test: $(STAMP)
	$(VPY) -m mypy blender_addon backend
	$(VPY) -m pytest -q

typecheck: $(STAMP)
	$(VPY) -m mypy blender_addon backend

bench: $(STAMP)
	for b in bench_chamfer bench_train bench_sample bench_server bench_addon bench_transfer bench_generation; do $(VPY) -m bench.$$b || exit 1; done

addon: $(STAMP)
	$(VPY) build_addon.py --out dist

# Wheels of the backend's packages for this platform, for the add-on's offline install (needs internet).
wheelhouse: $(STAMP)
	$(VPY) build_addon.py --out dist --wheelhouse dist/wheelhouse

base-model: $(STAMP)
	$(VPY) -m backend train --procedural sword,plane,chair,table,mug:240 --out models/base --name base --epochs 60 --seed 0 --sheet-every 10 --device cpu --force

# Maintainers only, never part of `make test`: the real-mesh corpus from Debian packages (README, docs/corpus.md).
# Pass options through CORPUS_ARGS, e.g. make corpus CORPUS_ARGS="--out /data/corpus".
corpus: $(STAMP)
	$(VPY) -m scripts.corpus $(CORPUS_ARGS)

clean:
	rm -rf out dist .pytest_cache .mypy_cache
