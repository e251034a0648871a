# Two commands on a fresh clone; each sets itself up (.venv and the pinned installs):
#   make demo    the whole assignment end to end (toy UCF-101 by default; DATA_ROOT=... for the real one)
#   make test    the test suite
PY := .venv/bin/python
VENV := .venv/.installed

# Real UCF-101: make demo DATA_ROOT=/path/to/root [IMAGENET=imagenet|/path/resnet50.pth] [KINETICS=/path/resnet-50-kinetics.pth]
DATA_ROOT ?= data/toy
IMAGENET ?= imagenet
KINETICS ?= resnet-50-kinetics.pth
SEED ?= 0

ifeq ($(DATA_ROOT),data/toy)
RUN ?= runs/toy
# Same scripts, toy sizes: small ResNets from scratch on 32x32 inputs, so it runs on 2 CPU cores in minutes.
SF_FLAGS := --weights none --arch resnet18 --train-from all --size 32 --epochs 6 --batch-size 32
TD_FLAGS := --kinetics-checkpoint none --arch resnet10 --train-from all --layer4-blocks 1 --size 32 --epochs 6 --batch-size 16
TEST_FLAGS :=
else
RUN ?= runs/ucf101
# The assignment's settings are the scripts' defaults.
SF_FLAGS := --weights $(IMAGENET)
TD_FLAGS := --kinetics-checkpoint $(KINETICS)
TEST_FLAGS :=
endif
COMMON := --data-root $(DATA_ROOT) --seed $(SEED)

.PHONY: demo test clean
demo: $(VENV)
ifeq ($(DATA_ROOT),data/toy)
	$(PY) make_toy_ucf101.py --out data/toy --seed $(SEED)
	$(PY) prepare_data.py --data-root data/toy
endif
	$(PY) train_single_frame.py $(COMMON) $(SF_FLAGS) --out $(RUN)/single_frame --resume
	$(PY) train_3d.py $(COMMON) $(TD_FLAGS) --out $(RUN)/3d --resume
	$(PY) test_single_frame.py $(COMMON) $(TEST_FLAGS) --checkpoint $(RUN)/single_frame/checkpoint.pt --out $(RUN)/single_frame_test
	$(PY) test_3d.py $(COMMON) $(TEST_FLAGS) --checkpoint $(RUN)/3d/checkpoint.pt --out $(RUN)/3d_test
	$(PY) combine_results.py --single-frame $(RUN)/single_frame_test --three-d $(RUN)/3d_test --out $(RUN)/combined
	$(PY) report/make_report.py --results $(RUN)/combined --out report/report.pdf

test: $(VENV)
	$(PY) -m pytest -q tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

$(VENV): requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet -r requirements.txt
	touch $@

clean:
	rm -rf runs data/toy report/report.pdf report/report.md
