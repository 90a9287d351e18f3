#!/usr/bin/env bash
# Time the deployable network of every isomorphism class of NAS-Bench-201 on this
# machine's CUDA GPU (nasloop's default protocol), then a second, separate run of the
# first 300 cells as the repeat check. Written for a lent GPU with a fixed time budget:
# each run is stopped by SIGINT after its time limit and keeps every finished block, so
# a partial table is a seeded random sample of the classes. Options after the two limits
# go to `nasloop measure` (e.g. --cuda-graph). Re-running with the same OUTDIR resumes.
#   usage: benchmarks/gpu_table.sh OUTDIR [SECONDS_RUN1] [SECONDS_RUN2] [MEASURE OPTIONS...]
set -u
out=${1:?usage: gpu_table.sh OUTDIR [SECONDS_RUN1] [SECONDS_RUN2] [MEASURE OPTIONS...]}
t1=${2:-400}; t2=${3:-75}
shift $(( $# < 3 ? $# : 3 ))
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,utilization.gpu \
  --format=csv >> "$out/gpu.txt" 2>&1
python3 - "$out" <<'PY'
import sys, numpy as np, torch
from nasloop.space import all_archs, canonical_representatives
out = sys.argv[1]
archs = list(all_archs())
reps = np.unique(canonical_representatives())
order = reps[np.random.default_rng(0).permutation(len(reps))]
open(f"{out}/cells.txt", "w").write("\n".join(str(archs[i]) for i in order) + "\n")
open(f"{out}/check.txt", "w").write("\n".join(str(archs[i]) for i in order[:300]) + "\n")
print("torch", torch.__version__, torch.cuda.get_device_name(0), len(order), "classes")
PY
start=$(date +%s)
timeout -s INT "$t1" python3 -m nasloop measure --device cuda --cells-from "$out/cells.txt" \
  --out "$out/table.csv" "$@"
echo "run 1: $(( $(date +%s) - start )) s, $(( $(wc -l < "$out/table.csv") - 1 )) cells"
start=$(date +%s)
timeout -s INT "$t2" python3 -m nasloop measure --device cuda --cells-from "$out/check.txt" \
  --out "$out/check.csv" "$@"
echo "run 2: $(( $(date +%s) - start )) s, $(( $(wc -l < "$out/check.csv") - 1 )) cells"
nvidia-smi --query-gpu=clocks.sm,temperature.gpu --format=csv >> "$out/gpu.txt" 2>&1
