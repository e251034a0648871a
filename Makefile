# Two commands on a fresh clone; each sets itself up (.venv and the pinned installs):
#   make demo    the whole assignment end to end (toy UCF-101 by default; DATA_ROOT=... for the real one)
#   make test    the test suite
# and: make rehearsal (the assignment at UCF-101's scale on a CPU), make report, make submission.
PY ?= .venv/bin/python
VENV := .venv/.installed

# Real UCF-101: make demo DATA_ROOT=/path/to/root [IMAGENET=imagenet|/path/resnet50.pth] [KINETICS=/path/resnet-50-kinetics.pth]
DATA_ROOT ?= data/toy
IMAGENET ?= imagenet
KINETICS ?= resnet-50-kinetics.pth
SEED ?= 0
# Official splits to run: SPLITS="1 2 3" runs each into $(RUN)/split<N> and writes $(RUN)/splits_summary.json.
SPLITS ?= 1
# Training processes: NPROC=N trains under torchrun with N processes (one GPU each; gloo on a CPU);
# --batch-size stays the batch of an optimizer step in all, so the assignment's batches are kept.
NPROC ?= 1
REPORT ?= report/report.pdf

ifeq ($(DATA_ROOT),data/toy)
# Toy UCF-101 (tools/make_toy_ucf101.py; SEED also seeds the toy: SEED=1 gets its own data and run folders).
# Same scripts, toy sizes: small ResNets from scratch on 32x32 inputs, so it runs on 2 CPU cores in minutes.
# 6 classes: 2 that differ by appearance, 2 motion-only pairs; more classes need many more 3D epochs.
# Adam lr: 1e-4 (the assignment's) keeps the 2D model near 50/50 within a pair, where 1e-3 left it confidently
# one-sided and able to drag the fusion below the 3D model; 5e-4 for the 3D one, whose last epochs swung at 1e-3.
SUFFIX := $(if $(filter-out 0,$(SEED)),-seed$(SEED))
ROOT ?= data/toy$(SUFFIX)
RUN ?= runs/toy$(SUFFIX)
TOY_FLAGS ?= --classes 6 --groups 7 --clips 4
SIZE ?= 32
EPOCHS_SF ?= 10
EPOCHS_3D ?= 25
SF_FLAGS := --pretrained none --arch resnet18 --train-from all --size $(SIZE) --epochs $(EPOCHS_SF) --batch-size 16 --lr 1e-4
TD_FLAGS := --pretrained none --arch resnet10 --train-from all --layer4-blocks 1 --size $(SIZE) --epochs $(EPOCHS_3D) --batch-size 8 --lr 5e-4
COMBINE_FLAGS := --toy-classes $(ROOT)/toy_classes.json
# The last group of every class is held out of the train list; the fusion weight is chosen on it.
VAL_GROUPS ?= 1
# The toy's figures are the same on every x86-64 CPU with AVX2: the kernels' instruction set and the
# number of threads decide the order of floating-point sums (docs/design.md, "The same digits
# everywhere"), so oneDNN and MKL run their AVX2 kernels on 2 threads (MKL_NUM_THREADS too: torch
# takes it over OMP_NUM_THREADS; engine.setup holds torch to it on a machine with fewer cores).
PIN ?= env ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
else
ROOT := $(DATA_ROOT)
RUN ?= runs/ucf101
# The assignment's settings are the scripts' defaults.
SF_FLAGS := --pretrained $(IMAGENET)
TD_FLAGS := --pretrained $(KINETICS)
COMBINE_FLAGS :=
# 0: the assignment's whole train list (fixed fusion weight); VAL_GROUPS=N holds N groups per class out.
VAL_GROUPS ?= 0
PIN :=
endif
COMMON := --data-root $(ROOT) --split $(SPLITS)
TRAIN := $(PIN) $(if $(filter-out 1,$(NPROC)),$(PY) -m torch.distributed.run --standalone --nproc_per_node $(NPROC),$(PY))
RUNPY := $(PIN) $(PY)
ifneq ($(VAL_GROUPS),0)
COMBINE_FLAGS += --val-single-frame $(RUN)/single_frame_val --val-3d $(RUN)/3d_val
endif

.PHONY: demo test rehearsal report submission clean
ifneq ($(words $(SPLITS)),1)
demo: $(VENV)
	set -e; for s in $(SPLITS); do $(MAKE) --no-print-directory demo SPLITS=$$s RUN=$(RUN)/split$$s REPORT=$(RUN)/split$$s/report.pdf; done
	$(RUNPY) -m tools.splits_summary --runs $(foreach s,$(SPLITS),$(RUN)/split$(s)) --out $(RUN)
	$(RUNPY) report/make_report.py --results $(RUN)/split$(firstword $(SPLITS))/combined --splits-summary $(RUN)/splits_summary.json --pdf $(REPORT)
else
demo: $(VENV)
ifeq ($(DATA_ROOT),data/toy)
	$(RUNPY) -m tools.make_toy_ucf101 --out $(ROOT) --seed $(SEED) $(TOY_FLAGS)
	$(RUNPY) -m tools.prepare_data --data-root $(ROOT)
endif
	$(TRAIN) train_single_frame.py $(COMMON) --seed $(SEED) $(SF_FLAGS) --val-groups $(VAL_GROUPS) --out $(RUN)/single_frame --resume
	$(TRAIN) train_3d.py $(COMMON) --seed $(SEED) $(TD_FLAGS) --val-groups $(VAL_GROUPS) --out $(RUN)/3d --resume
ifneq ($(VAL_GROUPS),0)
	$(RUNPY) test_single_frame.py $(COMMON) --subset val --checkpoint $(RUN)/single_frame/checkpoint.pt --out $(RUN)/single_frame_val
	$(RUNPY) test_3d.py $(COMMON) --subset val --checkpoint $(RUN)/3d/checkpoint.pt --out $(RUN)/3d_val
endif
	$(RUNPY) test_single_frame.py $(COMMON) --checkpoint $(RUN)/single_frame/checkpoint.pt --out $(RUN)/single_frame_test
	$(RUNPY) test_3d.py $(COMMON) --checkpoint $(RUN)/3d/checkpoint.pt --out $(RUN)/3d_test
	$(RUNPY) combine_results.py --single-frame $(RUN)/single_frame_test --3d $(RUN)/3d_test --out $(RUN)/combined $(COMBINE_FLAGS)
	$(RUNPY) report/make_report.py --results $(RUN)/combined --pdf $(REPORT)
	@$(PY) -c 'import json, sys; m = json.load(open(sys.argv[1]))["models"]; print("\n".join("%-13s video-level top-1 %7.2f%%  top-5 %7.2f%%  top-10 %7.2f%%" % (k.replace("_", " ").replace("3d", "3D"), 100 * r["top1"], 100 * r["top5"], 100 * r["top10"]) for k, r in m.items()))' $(RUN)/combined/results.json
endif

# tools/rehearse.py runs every script on a synthetic UCF-101 of full size (one video per official name)
# and prints the three top-1/5/10 lines and each phase's wall time; REHEARSAL_FLAGS="--max-per-class 20" is quicker.
REHEARSAL_FLAGS ?=
rehearsal: $(VENV)
	$(PY) -m tools.rehearse --seed $(SEED) $(REHEARSAL_FLAGS)

# make report: the PDF again from the last run's results, with the student's discussion
# (report/discussion.md: made from a template with the three questions on the first run, never
# overwritten). make submission: the hand-in zip of the tracked code, the report and the discussion.
# RUN as for demo (RUN=runs/ucf101 DATA_ROOT=... for the real run; SPLITS="1 2 3" as for demo).
DISCUSSION ?= report/discussion.md
SUBMISSION ?= submission/ucf101_action_recognition_submission.zip
RESULTS := $(if $(filter 1,$(words $(SPLITS))),$(RUN)/combined,$(RUN)/split$(firstword $(SPLITS))/combined)
report: $(VENV)
	$(PY) report/make_report.py --results $(RESULTS) --pdf $(REPORT) --discussion $(DISCUSSION) $(if $(wildcard $(RUN)/splits_summary.json),--splits-summary $(RUN)/splits_summary.json)

submission: $(VENV)
	$(PY) report/make_submission.py --results $(RESULTS)/results.json --report $(REPORT) --discussion $(DISCUSSION) --out $(SUBMISSION)

# ruff (configured in pyproject.toml) first: a lint error fails in seconds, not after the suite
test: $(VENV)
	.venv/bin/ruff check .
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

$(VENV): requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet -r requirements.txt
	touch $@

clean:
	rm -rf runs submission data/toy data/toy-seed* data/rehearsal report/report.pdf report/report.md report/rehearsal.pdf report/rehearsal.md report/*_figures
