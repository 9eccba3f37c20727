#!/usr/bin/env bash
# The GPU measurements of the training step, in one device call of at most 6 minutes:
#   1. bench/gpu_checks.py: no host sync in the eager step; the CUDA-graph step against the
#      eager one (losses, weights, BatchNorm counts); the LSTM's dtype under bf16 autocast;
#   2. bench.py's ablation on the paper preset with real Sprites (plain, +bf16, +channels-last,
#      +no-grad-bank, +no-read-back, +fused-prior, +graph), 3 warm-up and 20 timed steps per
#      phase, with --profile: launches, host issue time and GPU time per step;
#   3. train.py, paper preset, 3 epochs (1 warm-up, 2 contrastive), eager and --cuda-graph:
#      seconds per epoch as train.py logs them, and the losses of both.
# Writes bench/results_gpu.json, bench/gpu_checks.json and bench/train_gpu.json, copies them
# (with the logs) to $OUT.
#
# Before the call, here: copy the sprite parts into the ignored folder .parts/:
#   mkdir -p .parts && cp -r ../shared/lpc-sprites .parts/ && echo /.parts/ >> .git/info/exclude
# The call: run(command="bash bench/gpu_run.sh", carry=[".parts"], timeout_s=420)
set -uo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
PY=python3
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "from dataloader import load_sprites; load_sprites('data', '.parts/lpc-sprites')" || exit 1

timeout 60 $PY bench/gpu_checks.py bench/gpu_checks.json 2>&1 | tail -3 | tee "$OUT/gpu_checks.log"

timeout 180 $PY bench.py --presets paper --steps 20 --warmup-steps 3 --profile --data-dir data --eval-sequences 252 \
    --out bench/results_gpu.json 2>&1 | tee "$OUT/bench.log"

for mode in eager graph; do
    flag=$([ $mode = graph ] && echo --cuda-graph || echo --no-cuda-graph)
    rm -rf runs/gpu-$mode
    timeout 75 $PY train.py --epochs 3 --warmup-epochs 1 --eval-every 0 $flag --run-dir runs/gpu-$mode \
        --sheets .parts/lpc-sprites 2>&1 | grep -v "it/s\|step/s" | tail -5 | tee "$OUT/train_$mode.log"
done
$PY - <<'PY'
import json, os, time
out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
for mode in ("eager", "graph"):
    path = f"runs/gpu-{mode}/log.jsonl"
    if os.path.exists(path):
        out[mode] = [{k: r[k] for k in ("epoch", "seconds", "seq_per_s", "val_loss")} | {"loss": r["train"]["loss"]} for r in map(json.loads, open(path))]
json.dump(out, open("bench/train_gpu.json", "w"), indent=1)
print(json.dumps(out))
PY
cp bench/results_gpu.json bench/gpu_checks.json bench/train_gpu.json "$OUT"/ 2>/dev/null
true
