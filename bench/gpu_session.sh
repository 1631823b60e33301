#!/usr/bin/env bash
# Everything that needs a GPU, as one prepared run (the CUDA tests, then vaecore vs Pythae vs a bare
# loop on the GPU in fp32, fp32 with TF32, bf16 and fp16 + GradScaler autocast with channels-last, and
# torch.compile), for a CUDA machine such as the `device` tool's H200. Each phase has its own time limit
# and log under $OUT. Every race times after torch.cuda.synchronize() and prints the GPU, the machine, and
# the measured matmul peak of the race's dtype beside its figures (bench/machine_report.py).
#
#   bash bench/gpu_session.sh wheels                 # HERE, once: Pythae and its missing needs as wheels in .whl/
#   bash bench/gpu_session.sh tests race tf32 amp    # THERE (carry .whl): about 9 minutes on an H200
#   bash bench/gpu_session.sh compile                # a second call, if time is left
#   bash bench/gpu_session.sh reproduction      # the reproduction board at its published budgets (resumable)
#
# Dry check on the CPU (no fp16, TF32 or CUDA tests there; the same commands otherwise; LIMIT_SCALE multiplies
# every phase's time limit, which is sized for the GPU), a few minutes on an idle 2-core machine:
#   DEVICE=cpu THREADS=1 LIMIT=500 TEST=200 NETS=sigma-conv ROUNDS=1 LIMIT_SCALE=10 \
#     PYTHAE_PYTHON=.venv-pythae/bin/python bash bench/gpu_session.sh race tf32 amp compile
#
# The GPU image has torch but neither pythae nor pydantic; wheels travel in .whl/ (git-ignored) and
# are installed into /tmp/site. LIMIT (training images, default 60000), TEST (inference images, default
# 10000), NETS and ROUNDS (default 2) size the race; DEVICE=cpu runs the same phases on the CPU without fp16
# (to check the script here). The device tool sends at most 64 MiB of working tree, and the tracked
# files are about 75 MiB now (mostly checkpoints/): move checkpoints/ aside for the call (no phase
# reads it) and back after.
#
# `reproduction` trains every row of experiments/reproduction.py for its published number of epochs (3280 for
# the IWAE rows: Burda et al.'s 3^8 passes) and scores −log p(x) on all 10,000 test images at the published K,
# writing $OUT/reproduction/<row>.json (board: `python3 experiments/reproduction.py --report --out DIR`). That is
# tens of GPU hours in all (batch 20 leaves a GPU mostly idle: run rows side by side with REPRO_ROWS=a,b in
# several processes), so the phase stops at REPRO_LIMIT_S (default 540) and resumes from the run folders in
# REPRO_RUNS (default runs/reproduction-gpu; carry it to the next call). REPRO_ARGS replaces the budget flags:
# REPRO_ARGS=--tiny DEVICE=cpu checks the phase here in about a minute.
#
# `disentanglement` trains the dSprites study of experiments/disentanglement.py (5 families x 3 seeds, burgess-conv,
# Bernoulli) at Locatello et al.'s budget of 300,000 steps of batch 64 (DIS_ARGS replaces the flags) and scores
# each model, writing $OUT/disentanglement/<family>-s<seed>.json (table: `python3 experiments/disentanglement.py
# table` after copying them to experiments/results/disentanglement/); `pythae-tcvae` trains Pythae's β-TC-VAE
# dSprites row (chen-mlp, batch 1000, 50 epochs; PYT_ARGS adds flags) into $OUT/disentanglement-pythae-tcvae.json.
# Both stop at DIS_LIMIT_S (default 540) and resume from the run folders in DIS_RUNS (default
# runs/disentanglement-gpu; carry it to the next call). Checked here with
# DEVICE=cpu DIS_ARGS="--steps 3 --families vae --seeds 0" PYT_ARGS="--max-steps 2 --n-test 1000".
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out/gpu}
DEVICE=${DEVICE:-cuda}
LIMIT=${LIMIT:-60000}
TEST=${TEST:-10000}
NETS=${NETS:-sigma-conv,pythae-conv}
ROUNDS=${ROUNDS:-2}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

if [ "${1:-}" = wheels ]; then  # pure-Python Pythae plus pydantic v2 for the image's Python 3.12
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    pythae==0.1.2 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.7.0 typing-inspection==0.4.5 \
    geoopt==0.5.1
  exit
fi
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

{ nvidia-smi 2>/dev/null || true; "$PY" -c "import torch; from vaecore.runtime import machine
print(machine.describe()); print('cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())"
uptime; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

CL=""; [ "$DEVICE" = cuda ] && CL=--channels-last  # tensor cores take NHWC convolutions under autocast
race() {  # race NAME LIMIT_S ARGS...: one race_pythae run, its log in $OUT/race_NAME.log
  local name=$1 limit=$2; shift 2
  timeout "$((limit * ${LIMIT_SCALE:-1}))" "$PY" bench/race_pythae.py --device "$DEVICE" --pythae-python "${PYTHAE_PYTHON:-$(command -v "$PY")}" --limit "$LIMIT" \
    --test "$TEST" --nets "$NETS" ${THREADS:+--threads "$THREADS"} "$@" 2>&1 | tee "$OUT/race_$name.log"
}

for phase in "${@:-tests race amp}"; do
  for p in $phase; do
    case $p in
      tests) timeout 240 "$PY" -m pytest -q -rs tests/test_cuda.py tests/test_training.py tests/test_training_options.py \
               2>&1 | tee "$OUT/tests.log" ;;
      race) race fp32 200 --rounds "$ROUNDS" ;;
      tf32) [ "$DEVICE" = cuda ] && race tf32 100 --rounds 1 --tf32 ;;
      amp) race bf16 100 --rounds 1 --amp bf16 $CL
           [ "$DEVICE" = cuda ] && race fp16 100 --rounds 1 --amp fp16 $CL ;;
      compile) race compile 240 --rounds 1 --amp bf16 --compile --channels-last ;;
      reproduction)
        # shellcheck disable=SC2086  # REPRO_ARGS is a list of flags
        timeout "${REPRO_LIMIT_S:-540}" "$PY" experiments/reproduction.py ${REPRO_ARGS:---epochs published --final-images 10000} \
          ${REPRO_ROWS:+--rows "$REPRO_ROWS"} --device "$DEVICE" --threads "${REPRO_THREADS:-4}" \
          --out "$OUT/reproduction" --runs "${REPRO_RUNS:-runs/reproduction-gpu}" 2>&1 | tee "$OUT/reproduction.log" ;;
      disentanglement)
        # shellcheck disable=SC2086  # DIS_ARGS is a list of flags
        timeout "${DIS_LIMIT_S:-540}" "$PY" experiments/disentanglement.py train ${DIS_ARGS:---steps 300000} \
          --device "$DEVICE" --threads "${DIS_THREADS:-4}" --runs "${DIS_RUNS:-runs/disentanglement-gpu}" \
          --results "$OUT/disentanglement" --no-bundle 2>&1 | tee "$OUT/disentanglement.log" ;;
      pythae-tcvae)
        # shellcheck disable=SC2086  # PYT_ARGS is a list of flags
        timeout "${DIS_LIMIT_S:-540}" "$PY" experiments/disentanglement.py pythae-tcvae ${PYT_ARGS:-} --device "$DEVICE" \
          --threads "${DIS_THREADS:-4}" --runs "${DIS_RUNS:-runs/disentanglement-gpu}" \
          --out "$OUT/disentanglement-pythae-tcvae.json" 2>&1 | tee "$OUT/pythae-tcvae.log" ;;
      *) echo "unknown phase $p (choose: wheels, tests, race, tf32, amp, compile, reproduction, disentanglement," \
              "pythae-tcvae)" >&2; exit 2 ;;
    esac
  done
done
