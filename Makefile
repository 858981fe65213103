# ET3D: the two stages and their tools. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
export TOKENIZERS_PARALLELISM := false

# dump
PROMPTS ?= data/prompts/demo.txt
HELDOUT ?= data/prompts/heldout.txt
TEACHER ?= procedural
SAMPLES ?= 64
VIEWS ?= 4
RES ?= 64
OUT ?= data/shards
WORKERS ?= 2
SHARD_SIZE ?= 32
MVDREAM ?=
# train
SHARDS ?= $(OUT)
PRESET ?= cpu
MINUTES ?= 10
TRAIN_WORKERS ?= 1
TRAIN_DIR ?= runs/train
# eval, app
CKPT ?=
PORT ?= 7860

.PHONY: help install test lint format dump train gen eval bench gpu-check demo app app-screenshot clean-runs

help:
	@echo "make install   create $(VENV) with pip (no-op when up to date)"
	@echo "make test      ruff + pytest (installs first if needed)"
	@echo "make dump      PROMPTS=$(PROMPTS) TEACHER=$(TEACHER) SAMPLES=$(SAMPLES) VIEWS=$(VIEWS) RES=$(RES) OUT=$(OUT) WORKERS=$(WORKERS) [MVDREAM=dir]"
	@echo "make train     SHARDS=$(SHARDS) PRESET=$(PRESET) MINUTES=$(MINUTES) WORKERS=1 (resumes the latest run)"
	@echo "make eval      CKPT=<checkpoint dir> (default: newest)"
	@echo "make bench     measure teacher, dump, loader, trainer and generation; writes bench/results.json"
	@echo "make gpu-check on a CUDA machine (install included, <= 8 min): writes bench/gpu.json and bench/gpu.md"
	@echo "make demo      dump + train + generate + eval on the embedded procedural default"
	@echo "make app       serve the web app on http://127.0.0.1:$(PORT) [CKPT=<checkpoint dir>] (default: newest)"
	@echo "make app-screenshot  docs/app.png: the app after generating 'a red cube' in headless chromium"

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,app]'
	touch $(STAMP)

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q --durations=15

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

dump: install
	$(PY) -m teacher_dump.cli --prompts $(PROMPTS) --teacher $(TEACHER) --samples $(SAMPLES) \
		--views $(VIEWS) --res $(RES) --out $(OUT) --workers $(WORKERS) --shard-size $(SHARD_SIZE) \
		$(if $(MVDREAM),--mvdream $(MVDREAM),)

train: install
	$(PY) -m student.train.cli --data $(SHARDS) --preset $(PRESET) --out $(TRAIN_DIR) --minutes $(MINUTES) \
		$(if $(filter-out 1,$(TRAIN_WORKERS)),--workers $(TRAIN_WORKERS),)

eval: install
	$(PY) -m student.eval.cli $(if $(CKPT),--ckpt $(CKPT),) --runs $(TRAIN_DIR) --shards $(SHARDS) \
		--prompts $(PROMPTS) --heldout $(HELDOUT) --heldout-seeds 16

app: install
	$(PY) -m student.app.cli $(if $(CKPT),--ckpt $(CKPT),) --port $(PORT)

app-screenshot: install
	$(PY) -m student.app.screenshot $(if $(CKPT),--ckpt $(CKPT),) --out docs/app.png

bench: install
	$(PY) bench/run_all.py

# From a fresh checkout on a CUDA machine: install, then the paper-preset GPU numbers (bench/gpu_check.py).
gpu-check: install
	$(PY) bench/gpu_check.py --device cuda

demo: install
	@echo "== 1/5 dump: $(PROMPTS) -> $(OUT) (finished shards are kept)"
	$(MAKE) --no-print-directory dump
	@echo "== 2/5 train: preset $(PRESET), $(MINUTES) min budget (resumes the newest run)"
	$(MAKE) --no-print-directory train
	@echo "== 3/5 generate: meshes and previews in out/demo/"
	mkdir -p out/demo
	$(PY) -m student.generate.cli "a red cube" -o out/demo/red_cube.ply --num 2 --preview out/demo/red_cube.png --turntable out/demo/red_cube.gif
	$(PY) -m student.generate.cli "a blue sphere" -o out/demo/blue_sphere.ply --preview out/demo/blue_sphere.png
	$(PY) -m student.generate.cli --prompts-file $(HELDOUT) -o out/demo/heldout.ply --preview out/demo/heldout.png
	$(PY) -m student.generate.cli --interpolate "a red cube" "a blue sphere" --steps 5 -o out/demo/interp.ply
	$(PY) -m student.generate.cli "a red cube" -o out/demo/red_cube_textured.glb --faces 5000 --texture 512
	@echo "== 4/5 eval"
	$(MAKE) --no-print-directory eval
	@echo "== 5/5 pictures: teacher/student grid, turntable, interpolation, training curve in out/demo/"
	$(PY) -m student.eval.pictures_cli --ckpt $(TRAIN_DIR) --prompts $(PROMPTS) --heldout $(HELDOUT) --out out/demo
	@run=$$(ls -d $(TRAIN_DIR)/[0-9]*-*/ | sort | tail -1); run=$${run%/}; \
	echo "== done: meshes, previews and pictures in out/demo/, report in eval/$${run##*/}/report.md, checkpoints in $$run/checkpoints/"
