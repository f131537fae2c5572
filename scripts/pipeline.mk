# pipeline.mk — the dv2 pipeline (curation, training, distillation,
# evaluation) as GNU make file targets: every stage is a file under $(OUT),
# so running the same command again after a failure or a kill redoes only
# what is missing or older than its inputs, and `make -j` runs independent
# stages (the curated-set and pool embeddings, the two evaluation sets) side
# by side.  The recipes only call the dv2 programs; a recipe that composes
# commands writes $@.tmp and renames it, and the programs write atomically,
# so a killed make never leaves a target that looks complete.
#
#   make -f scripts/pipeline.mk DATA=/data/uncurated CURATED=/data/curated.ds \
#        MODEL=vitl14.safetensors CONFIG=configs/vits14.cfg \
#        EVAL_TRAIN=/data/in1k-train.ds EVAL_TEST=/data/in1k-val.ds OUT=work -j2
#   make -f scripts/pipeline.mk help
#
# Stages and their files (under OUT):
#   pool/manifest.json      dv2-pack of DATA (anything dv2-pack reads)
#   pool.emb                dv2-embed of the pool: -m MODEL, or --copy without MODEL
#   pool.copy.emb           COPY set: copy descriptors for the dedup (COPY=1: dv2-embed
#                           --copy; COPY=FILE: an SSCD model); else the dedup reads pool.emb
#   against.emb             AGAINST set: that evaluation set, embedded like the dedup input
#   pool.keep               dv2-dedup (near-copies, and near-copies of AGAINST, removed)
#   curated.emb             dv2-embed of CURATED (SELECT=sample or cluster)
#   selected.tsv            SELECT=sample: dv2-retrieve -n N; cluster: dv2-retrieve
#                           --clusters; hkmeans (default without CURATED): dv2-hkmeans
#                           (tree in hkmeans/)
#   selected.ids            the ids of selected.tsv
#   train/manifest.json     dv2-pack --select selected.ids of the pool
#   runs/RUN.done           dv2-train (CONFIG) into runs/RUN/, resumed when a run was
#                           interrupted; the teacher is runs/RUN/teacher.safetensors.
#                           RUN.done is written when the run has finished: dv2-train
#                           rewrites teacher.safetensors at every checkpoint and exits 0
#                           when stopped by a signal, so the weights alone do not say so.
#   runs/RUN-distill.done   DISTILL_CONFIG set: dv2-distill into runs/RUN-distill/
#                           (student: runs/RUN-distill/student_ema.safetensors)
#   eval/PROBE-train.emb, eval/PROBE-test.emb
#                           dv2-embed of EVAL_TRAIN and EVAL_TEST with the teacher
#                           (PROBE=teacher) or the distilled student (PROBE=student)
#   probe-PROBE.txt, probe-PROBE.json
#                           dv2-probe tables
#   logs/                   the training and distillation logs
#
# Changing a variable does not redo a stage; remove the stage's file (make
# then redoes it and everything after it).  GNU make 3.82 or newer.

OUT      ?= pipeline
DATA     ?=
CURATED  ?=
MODEL    ?=
COPY     ?=
AGAINST  ?=
SELECT   ?= $(if $(CURATED),sample,hkmeans)
N        ?= 4
CLUSTERS ?= 1000
PER_CLUSTER ?= 10000
MIN_QUERIES ?= 3
HK_CLUSTERS ?= 1000,100
HK_TARGET   ?= 100000
DEDUP_T     ?=
AGAINST_T   ?=
EMBED_ARGS  ?=
DEDUP_ARGS  ?=
SELECT_ARGS ?=
CONFIG   ?=
RUN      ?= run
TRAIN_ARGS ?=
DISTILL_CONFIG ?=
DISTILL_ARGS ?=
EVAL_TRAIN ?=
EVAL_TEST  ?=
EVAL_EMBED_ARGS ?=
PROBE    ?= $(if $(DISTILL_CONFIG),student,teacher)
PROBE_ARGS ?= --knn 10,20
DEVICE   ?= auto
J        ?=
SEED     ?= 0
MPIRUN   ?=
TRAIN_LAUNCH ?= $(MPIRUN)
DV2      ?=

SHELL := /bin/sh
.SHELLFLAGS := -ec
.ONESHELL:
.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDEXPANSION:

threads := $(if $(J),-j $(J))
common  := --device $(DEVICE) $(threads)
# --copy runs on the CPU only: no --device for it
emb_common := $(if $(MODEL),$(common),$(threads))
emb_model := $(if $(MODEL),-m $(MODEL) $(EMBED_ARGS),--copy $(EMBED_ARGS))
copy_model := $(if $(filter 1 yes,$(COPY)),--copy,-m $(COPY))
dedup_in := $(if $(COPY),$(OUT)/pool.copy.emb,$(OUT)/pool.emb)
against_model := $(if $(COPY),$(copy_model),$(emb_model))
# an input that is a dataset directory is tracked by its manifest
input = $(firstword $(wildcard $(1)/manifest.json) $(1))
rundir := $(OUT)/runs/$(RUN)
drundir := $(OUT)/runs/$(RUN)-distill
model_teacher := $(rundir)/teacher.safetensors
model_student := $(drundir)/student_ema.safetensors
stamp_teacher := $(OUT)/runs/$(RUN).done
stamp_student := $(OUT)/runs/$(RUN)-distill.done

need = test -n "$(2)" || { echo "pipeline.mk: $(1)=... is needed for $@" >&2; exit 2; }

goal := $(if $(EVAL_TEST),probe,$(if $(DISTILL_CONFIG),distill,$(if $(CONFIG),train,curate)))
.PHONY: all help pack embed dedup select curate train distill eval probe
all: $(goal)
pack: $(OUT)/pool/manifest.json
embed: $(OUT)/pool.emb
dedup: $(OUT)/pool.keep
select: $(OUT)/selected.ids
curate: $(OUT)/train/manifest.json
train: $(stamp_teacher)
distill: $(stamp_student)
eval: $(OUT)/eval/$(PROBE)-train.emb $(OUT)/eval/$(PROBE)-test.emb
probe: $(OUT)/probe-$(PROBE).txt $(OUT)/probe-$(PROBE).json

# ---- curation ---------------------------------------------------------------
$(OUT)/pool/manifest.json:
	$(call need,DATA,$(DATA))
	mkdir -p $(OUT)
	$(DV2)dv2-pack $(threads) -o $(OUT)/pool $(DATA)

# Embeddings are resumable: dv2-embed --resume appends to $@.part, which is
# renamed when complete; a rerun after a kill continues it.
$(OUT)/pool.emb: $(OUT)/pool/manifest.json $(MODEL)
	$(DV2)dv2-embed $(emb_model) $(emb_common) --resume -o $@.part $(OUT)/pool
	mv $@.part $@

$(OUT)/pool.copy.emb: $(OUT)/pool/manifest.json $(filter-out 1 yes,$(COPY))
	$(DV2)dv2-embed $(copy_model) $(threads) --resume -o $@.part $(OUT)/pool
	mv $@.part $@

$(OUT)/against.emb: $(call input,$(AGAINST)) $(if $(COPY),$(filter-out 1 yes,$(COPY)),$(MODEL))
	$(call need,AGAINST,$(AGAINST))
	$(DV2)dv2-embed $(against_model) $(if $(COPY),$(threads),$(emb_common)) --resume -o $@.part $(AGAINST)
	mv $@.part $@

$(OUT)/pool.keep: $(dedup_in) $(if $(AGAINST),$(OUT)/against.emb)
	$(MPIRUN) $(DV2)dv2-dedup $(common) $(if $(DEDUP_T),-t $(DEDUP_T)) \
		$(if $(AGAINST),--against $(OUT)/against.emb $(if $(AGAINST_T),--against-threshold $(AGAINST_T))) \
		$(DEDUP_ARGS) -f -o $@ $(dedup_in)

$(OUT)/curated.emb: $(call input,$(CURATED)) $(MODEL)
	$(call need,CURATED,$(CURATED))
	$(DV2)dv2-embed $(emb_model) $(emb_common) --resume -o $@.part $(CURATED)
	mv $@.part $@

select_sample  = --queries $(OUT)/curated.emb --pool $(OUT)/pool.emb --keep $(OUT)/pool.keep -n $(N)
select_cluster = --queries $(OUT)/curated.emb --pool $(OUT)/pool.emb --keep $(OUT)/pool.keep \
	--clusters $(CLUSTERS) --per-cluster $(PER_CLUSTER) --min-queries $(MIN_QUERIES)
# dv2-hkmeans keeps its tree in hkmeans/ and reuses the levels made from the
# same input; its output is removed first rather than forced (-f would
# recompute the tree).
$(OUT)/selected.tsv: $(OUT)/pool.emb $(OUT)/pool.keep $(if $(filter hkmeans,$(SELECT)),,$(OUT)/curated.emb)
	rm -f $@
	case "$(SELECT)" in
	sample) $(MPIRUN) $(DV2)dv2-retrieve $(common) --seed $(SEED) $(select_sample) $(SELECT_ARGS) -f -o $@ ;;
	cluster) $(MPIRUN) $(DV2)dv2-retrieve $(common) --seed $(SEED) $(select_cluster) $(SELECT_ARGS) -f -o $@ ;;
	hkmeans) $(MPIRUN) $(DV2)dv2-hkmeans $(threads) --seed $(SEED) --tree $(OUT)/hkmeans \
		--clusters $(HK_CLUSTERS) --keep $(OUT)/pool.keep --target $(HK_TARGET) $(SELECT_ARGS) -o $@ $(OUT)/pool.emb ;;
	*) echo "pipeline.mk: SELECT=$(SELECT): sample, cluster or hkmeans" >&2; exit 2 ;;
	esac

$(OUT)/selected.ids: $(OUT)/selected.tsv
	cut -f1 $< > $@.tmp
	mv $@.tmp $@

# A complete train/ made from an older selection is replaced (-f); an
# interrupted one is resumed.
$(OUT)/train/manifest.json: $(OUT)/selected.ids $(OUT)/pool/manifest.json
	$(DV2)dv2-pack $(threads) $(if $(wildcard $@),-f) --select $< -o $(OUT)/train $(OUT)/pool

# ---- training and distillation ----------------------------------------------
# PROG, run directory, stamp, options: runs PROG with --resume when the run
# directory exists (its own config.cfg then, as scripts/slurm/dv2-train.sbatch
# does) and anew (-f) when a finished run is out of date; the stamp is written
# only when the log says the run finished rather than stopped at a signal.
define run_training
	mkdir -p $(OUT)/logs
	if [ -e $(3) ]; then how=-f; elif [ -d $(2) ]; then how=--resume; else how=; fi
	cfg="--config $(4)"
	[ "$$how" = --resume ] && [ -f $(2)/config.cfg ] && cfg=
	log=$(OUT)/logs/$(notdir $(2)).log
	rm -f $$log.failed
	{ $(TRAIN_LAUNCH) $(DV2)$(1) $$cfg --data $(OUT)/train -o $(2) $$how $(common) --seed $(SEED) $(5) 2>&1 ||
		echo $$? > $$log.failed; } | tee $$log >&2
	if [ -e $$log.failed ]; then rm -f $$log.failed; exit 1; fi
	if grep -q 'interrupted, checkpoint written' $$log; then
		echo "pipeline.mk: $(1) was interrupted; run make again to resume $(2)" >&2; exit 1
	fi
	rm -f $(3)
	echo $(2) > $(3).tmp
	mv $(3).tmp $(3)
endef

$(stamp_teacher): $(OUT)/train/manifest.json $(CONFIG)
	$(call need,CONFIG,$(CONFIG))
	$(call run_training,dv2-train,$(rundir),$@,$(CONFIG),$(TRAIN_ARGS))

$(stamp_student): $(stamp_teacher) $(OUT)/train/manifest.json $(DISTILL_CONFIG)
	$(call need,DISTILL_CONFIG,$(DISTILL_CONFIG))
	$(call run_training,dv2-distill,$(drundir),$@,$(DISTILL_CONFIG),--teacher $(rundir) $(DISTILL_ARGS))

# ---- evaluation ---------------------------------------------------------------
$(OUT)/eval/%-train.emb: $$(stamp_$$*) $(call input,$(EVAL_TRAIN))
	$(call need,EVAL_TRAIN,$(EVAL_TRAIN))
	mkdir -p $(OUT)/eval
	$(DV2)dv2-embed -m $(model_$*) $(EVAL_EMBED_ARGS) $(common) --resume -o $@.part $(EVAL_TRAIN)
	mv $@.part $@

$(OUT)/eval/%-test.emb: $$(stamp_$$*) $(call input,$(EVAL_TEST))
	$(call need,EVAL_TEST,$(EVAL_TEST))
	mkdir -p $(OUT)/eval
	$(DV2)dv2-embed -m $(model_$*) $(EVAL_EMBED_ARGS) $(common) --resume -o $@.part $(EVAL_TEST)
	mv $@.part $@

$(OUT)/probe-%.txt: $(OUT)/eval/%-train.emb $(OUT)/eval/%-test.emb
	$(DV2)dv2-probe $(common) --seed $(SEED) --train $(word 1,$^) --test $(word 2,$^) $(PROBE_ARGS) -f -o $@

$(OUT)/probe-%.json: $(OUT)/eval/%-train.emb $(OUT)/eval/%-test.emb
	$(DV2)dv2-probe $(common) --seed $(SEED) --train $(word 1,$^) --test $(word 2,$^) $(PROBE_ARGS) --json -f -o $@

# ---- help -----------------------------------------------------------------------
help:
	@cat <<'EOF'
	make -f scripts/pipeline.mk [VARIABLE=value...] [STAGE...]   (-j N: independent stages at once)
	
	Stages (phony names; the files they make, under OUT=$(OUT)):
	  pack      pool/manifest.json       dv2-pack of DATA
	  embed     pool.emb                 dv2-embed -m MODEL (or --copy without MODEL)
	  dedup     pool.keep                dv2-dedup of pool.emb (pool.copy.emb with COPY), --against AGAINST
	  select    selected.tsv, .ids       dv2-retrieve (SELECT=sample|cluster, with CURATED) or dv2-hkmeans
	  curate    train/manifest.json      dv2-pack --select selected.ids of the pool
	  train     runs/RUN.done            dv2-train (CONFIG) into runs/RUN/, resumed after an interruption
	  distill   runs/RUN-distill.done    dv2-distill (DISTILL_CONFIG) of runs/RUN into runs/RUN-distill/
	  eval      eval/PROBE-{train,test}.emb  EVAL_TRAIN and EVAL_TEST embedded with the teacher or student
	  probe     probe-PROBE.txt, .json   dv2-probe (PROBE_ARGS)
	  all       (default) as far as the variables given allow: probe, distill, train or curate
	
	Variables (current value):
	  DATA=$(DATA)   uncurated images (required)
	  CURATED=$(CURATED)   curated seed set (a dataset); without it SELECT=hkmeans
	  OUT=$(OUT)   MODEL=$(MODEL)   EMBED_ARGS=$(EMBED_ARGS)
	  COPY=$(COPY)   1: dedup on dv2-embed --copy descriptors; FILE: an SSCD model
	  AGAINST=$(AGAINST)   evaluation set whose near-copies leave the pool
	  DEDUP_T=$(DEDUP_T)   AGAINST_T=$(AGAINST_T)   DEDUP_ARGS=$(DEDUP_ARGS)   dv2-dedup thresholds, options
	  SELECT=$(SELECT)   N=$(N)   CLUSTERS=$(CLUSTERS)   PER_CLUSTER=$(PER_CLUSTER)   MIN_QUERIES=$(MIN_QUERIES)
	  HK_CLUSTERS=$(HK_CLUSTERS)   HK_TARGET=$(HK_TARGET)   SELECT_ARGS=$(SELECT_ARGS)
	  CONFIG=$(CONFIG)   RUN=$(RUN)   TRAIN_ARGS=$(TRAIN_ARGS)
	  DISTILL_CONFIG=$(DISTILL_CONFIG)   DISTILL_ARGS=$(DISTILL_ARGS)
	  EVAL_TRAIN=$(EVAL_TRAIN)   EVAL_TEST=$(EVAL_TEST)   EVAL_EMBED_ARGS=$(EVAL_EMBED_ARGS)
	  PROBE=$(PROBE)   PROBE_ARGS=$(PROBE_ARGS)
	  DEVICE=$(DEVICE)   J=$(J) (threads per program; empty: all cores)   SEED=$(SEED)
	  MPIRUN=$(MPIRUN)   launcher of dv2-dedup, dv2-retrieve, dv2-hkmeans (e.g. mpirun -np 4)
	  TRAIN_LAUNCH=$(TRAIN_LAUNCH)   launcher of dv2-train and dv2-distill
	  DV2=$(DV2)   folder of the dv2 programs, with a trailing / (empty: PATH)
	
	A stage is redone when its file is missing or older than its inputs; remove a file to
	redo it and what follows.  A killed make leaves no partial target: rerun the same command.
	EOF
