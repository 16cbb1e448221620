# Two entry points: `make demo` (the main job) and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test gui-test venv typecheck bench addon wheelhouse base-model corpus clean

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

# The real-window tier (README): Blender 4.3 in a window under Xvfb, driven by input events; needs root.
gui-test: $(STAMP)
	$(VPY) tests/gui/tier.py --out out/gui

typecheck: $(STAMP)
	$(VPY) -m mypy blender_addon backend

bench: $(STAMP)
	for b in bench_chamfer bench_train bench_sample bench_server bench_addon bench_transfer bench_generation; do $(VPY) -m bench.$$b || exit 1; done

addon: $(STAMP)
	$(VPY) build_addon.py --out dist

# Wheels of the backend's packages for this platform, for the add-on's offline install (needs internet).
wheelhouse: $(STAMP)
	$(VPY) build_addon.py --out dist --wheelhouse dist/wheelhouse

# Maintainers: rebuild models/base (issue 21, models/README.md) from the real-mesh corpus; run `make corpus` first.
base-model: $(STAMP)
	$(VPY) -m scripts.corpus.cap --src data/corpus/split/base/train --out data/capped/train300 --per-category 300
	$(VPY) -m backend train --data data/capped/train300 --out models/base --name base --epochs 80 --template squares --patches 8 --beta 1e-5 --val-fraction 0.05 --sheet-every 10 --cache-dir data/cache --device auto --force

# Maintainers only, never part of `make test`: the real-mesh corpus from Debian packages (README, docs/corpus.md).
# Pass options through CORPUS_ARGS, e.g. make corpus CORPUS_ARGS="--out /data/corpus".
corpus: $(STAMP)
	$(VPY) -m scripts.corpus $(CORPUS_ARGS)

clean:
	rm -rf out dist .pytest_cache .mypy_cache
