#!/usr/bin/env bash
# Every GPU measurement of the off-CPU and performance issues in one call on a lent GPU machine (torch,
# torchvision, lightning there; hydra / captum / zennit / grad-cam carried as wheels in .whl/ when present).
# Each part is time-boxed and appends to $OUT/session.log; BENCHMARKS.md's new tables come back as
# $OUT/BENCHMARKS.md, the checks as $OUT/gpu_checks.json, the two train.py runs as $OUT/pipeline.json and the step
# profile as $OUT/profile_step.json + $OUT/profile_step.txt.
#
#   bash bench/gpu_session.sh            # on the GPU machine (OUT set by the device tool, else /tmp/gpu_out)
#   QUICK=1 bash bench/gpu_session.sh    # a dry run on the CPU at toy sizes
#   PARTS=checks,trainer_step CHECKS=memory bash bench/gpu_session.sh    # some parts only
#   PARTS=profile bash bench/gpu_session.sh                             # the step profile alone (~2-4 min)
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src
PY=${PY:-python3}
LOG=$OUT/session.log
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl >>"$LOG" 2>&1 \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >>"$LOG" 2>&1
$PY -c "import torch, torchvision, lightning; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'lightning', lightning.__version__)" >>"$LOG" 2>&1

DEADLINE=${DEADLINE:-540}   # seconds for all parts: a part gets min(its limit, what is left); none starts late
part() {  # part NAME SECONDS command...
  local name=$1 limit=$2; shift 2
  [ -n "${PARTS:-}" ] && [[ ",$PARTS," != *",$name,"* ]] && return   # PARTS=a,b: run only those parts
  local start=$SECONDS left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 15 ]; then echo "=== $name skipped (deadline)" | tee -a "$LOG"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== $name: $*" >>"$LOG"
  timeout "$limit" "$@" >>"$LOG" 2>&1
  echo "=== $name rc=$? $((SECONDS - start)) s" | tee -a "$LOG"
}

if [ "${QUICK:-0}" = 1 ]; then
  DEV=cpu; B=2; S=32; R=1; M=small_vgg; RUNARGS="data.train_size=64 data.val_size=16 data.test_size=16 model.width=4"
else
  DEV=cuda; B=32; S=224; R=5; M=vgg19,resnet50,densenet121; RUNARGS=""
fi

# 1. issue 16: single-GPU checks (syncs, autocast dtypes, determinism, chunk memory, portable noise)
part checks 150 $PY bench/gpu_checks.py --device $DEV --out "$OUT/gpu_checks.json" --only "${CHECKS:-noise,syncs,autocast,determinism,memory}" $([ "${QUICK:-0}" = 1 ] && echo --quick)

# 2. issue 16: the real pipeline on the GPU, twice from one theta0 cache: evaluation device, deterministic CUDA
#    kernels (trainer.deterministic=true), bit-identical fooled weights and report numbers
for run in 1 2; do
  part "train_$run" 100 $PY train.py trainer=gpu trainer.accelerator=$([ $DEV = cuda ] && echo gpu || echo cpu) \
    logger=csv original.epochs=2 trainer.max_steps=100 trainer.val_check_interval=50 cache_dir=/tmp/if_cache \
    hydra.run.dir=/tmp/if_run$run $RUNARGS
done
# the two runs' summary only when a train part was asked for (PARTS=profile alone leaves no pipeline.json)
if [ -z "${PARTS:-}" ] || [[ ",$PARTS," == *",train_"* ]]; then
$PY - "$OUT/pipeline.json" >>"$LOG" 2>&1 <<'EOF'
import json, sys, torch
out = {}
for r in (1, 2):
    try:
        out[f"run{r}"] = json.load(open(f"/tmp/if_run{r}/report.json"))
    except OSError as err:
        out[f"run{r}"] = {"error": str(err)}
try:
    a, b = (torch.load(f"/tmp/if_run{r}/fooled.pt", map_location="cpu") for r in (1, 2))
    out["fooled_bit_identical"] = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
except OSError as err:
    out["fooled_bit_identical"] = str(err)
json.dump(out, open(sys.argv[1], "w"), indent=1, default=str)
print("pipeline: device", out["run1"].get("device"), "fooled bit-identical", out["fooled_bit_identical"])
EOF
fi

# 3. issue 15: the three tables on the GPU, fp32 then bf16 + channels_last, and the Trainer-loop table
part overhead_fp32 100 $PY bench/fooling_overhead.py --device $DEV --models $M --batch $B --size $S --reps $R
part heatmaps_vgg19 70 $PY bench/heatmap_throughput.py --device $DEV --model $([ $DEV = cuda ] && echo vgg19 || echo resnet50) \
  --batch $B --size $S --reps 3 $([ "${QUICK:-0}" = 1 ] && echo --ig-steps 4 --sg-samples 2)
part end_to_end_b8 40 $PY bench/end_to_end.py --device $DEV --models $M --batch $([ $DEV = cuda ] && echo 8 || echo 2) \
  --size $S --steps $((R * 2))
part trainer_step 60 $PY bench/trainer_step.py --device $DEV --batch $B --size $S --steps $((R * 6)) \
  $([ "${QUICK:-0}" = 1 ] && echo --models small_vgg --interps gradcam --small-size 32 --warmup 2)
part end_to_end_b32 50 $PY bench/end_to_end.py --device $DEV --models $M --batch $B --size $S --steps $((R * 2))
part overhead_bf16_cl 80 $PY bench/fooling_overhead.py --device $DEV --models $M --batch $B --size $S --reps $R \
  --amp bf16 --channels-last
part heatmaps_resnet50 50 $PY bench/heatmap_throughput.py --device $DEV --model resnet50 --batch $B --size $S --reps 3 \
  $([ "${QUICK:-0}" = 1 ] && echo --ig-steps 4 --sg-samples 2)

# 4. the op-level profile of the fooling step (phases, top ops, launches, GPU busy share): $OUT/profile_step.json + .txt
part profile $([ "${QUICK:-0}" = 1 ] && echo 420 || echo 280) $PY bench/profile_step.py --device $DEV --out "$OUT" \
  $([ "${QUICK:-0}" = 1 ] && echo --quick || echo --batches 8 32)

cp BENCHMARKS.md "$OUT/BENCHMARKS.md"
echo "done in $SECONDS s" | tee -a "$LOG"
