#!/usr/bin/env bash
# The book on one GPU, in at most 10 minutes (a benchmark, not a test): run from the repository root
# on the accelerator, e.g. with the device tool:  bash benchmarks/gpu.sh "$OUT"
#
#   1. the smoke book on CUDA, every chapter end to end (executed, not built: the HTML is no GPU work);
#      sweeps run up to 8 workers on CUDA (sweep.default_workers): one point is a kernel whose start,
#      imports and CUDA initialisation cost seconds, so 2 workers left chapter 5 in its sweep cell for 120 s;
#   2. the paper profile's chapters 1-2 on MNIST-10k, one seed, ONE epoch of each training (-p epochs=1
#      -p adv_epochs=1; the profile's 20 and 40 are extrapolated from the seconds per epoch printed);
#      seconds per model for training and for AutoAttack standard;
#   3. benchmarks/attacks.py (PGD against its compute floor, CPU and CUDA rows) and benchmarks/training.py
#      (3 seeds trained one at a time and as one batched computation);
#   4. determinism: smoke chapter 1 twice with IGAN_DETERMINISTIC=1, weights compared bit for bit.
#
# Steps run in that order, each under its share of GPU_CHECK_SECONDS (default 560), and report even
# when an earlier one failed; everything lands in the output folder (summary.md, logs, CSVs).
# Where there is no .venv (the accelerator's image has PyTorch but no Jupyter, papermill, Dask or
# AutoAttack), the wheels from `.venv/bin/python benchmarks/gpu_wheels.py` in .whl/ are installed
# first, and MNIST-10k is read from .gpu-data/ (copy ../shared/data there; both travel with `carry`).
# GPU_CHECK_TINY=1 shrinks every budget, to try the script on a CPU before spending device time.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mkdir -p "${1:-gpu-check}" && cd "${1:-gpu-check}" && pwd)
work=$(mktemp -d)
export PYTHONUNBUFFERED=1 IGAN_LOG_OUTPUT=1  # every cell's output streams into the step's log as it comes
if [ -x .venv/bin/python ]; then
    PY=$PWD/.venv/bin/python
else
    PY=python3
    if [ -d .whl ]; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" .whl/*.whl \
            || { echo "installing .whl/ failed" | tee "$out/summary.md"; exit 1; }
        export PYTHONPATH="$work/site:$PWD/.whl:$PWD${PYTHONPATH:+:$PYTHONPATH}"
        export PATH="$work/site/bin:$PATH"
    fi
fi
[ -d .gpu-data/MNIST ] && export IGAN_DATA_DIR=${IGAN_DATA_DIR:-$PWD/.gpu-data}
export IGAN_DATA_DIR=${IGAN_DATA_DIR:-$(cd .. && pwd)/shared/data}
device=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
export IGAN_DEVICE=$device

train_tiny=()
attack_tiny=()
scale=1
if [ "${GPU_CHECK_TINY:-0}" = 1 ]; then  # on a CPU: small data, short training, few attack steps, longer caps
    train_tiny=(-p train_size=400 -p val_size=50 -p test_size=100 -p epochs=1 -p adv_epochs=1 -p train_steps=2)
    attack_tiny=(-p eval_steps=5 -p restarts=1 -p eval_size=32 -p check_size=32 -p aa_iters=5 -p aa_targets=2
                 -p aa_queries=20)
    scale=4
    GPU_CHECK_SECONDS=${GPU_CHECK_SECONDS:-2000}
fi
deadline=$(( $(date +%s) + ${GPU_CHECK_SECONDS:-560} ))
summary=$out/summary.md
{
    echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    "$PY" -c "from igan_utils.book.runner import hardware; print(hardware())"
    [ "$device" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    echo "device: $device; data: $IGAN_DATA_DIR; tiny: ${GPU_CHECK_TINY:-0}"
    echo
    echo "| step | exit | seconds |"
    echo "| --- | --- | --- |"
} > "$summary"

# step NAME CAP_SECONDS COMMAND...: runs COMMAND under min(CAP, time left), logs to NAME.log
step() {
    local name=$1 cap=$2; shift 2
    local left=$(( deadline - $(date +%s) ))
    cap=$(( cap * scale ))
    local limit=$(( cap < left ? cap : left ))
    if [ "$limit" -lt 10 ]; then echo "| $name | skipped (no time left) | |" >> "$summary"; return; fi
    local start=$SECONDS
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    echo "| $name | $([ $rc = 124 ] && echo "timeout ($limit s)" || echo $rc) | $(( SECONDS - start )) |" >> "$summary"
}

step smoke_book 200 env IGAN_STORE_DIR="$work/smoke" \
    "$PY" -m igan_utils.book --profile smoke --no-build --out "$work/smoke_executed"
paper_epochs=(-p epochs=1 -p adv_epochs=1)
paper_images=(-p eval_size=1000 -p check_size=500)  # of the profile's 10,000: seconds per model scale with it
step paper_ch1 80 env IGAN_STORE_DIR="$work/paper" "$PY" -m igan_utils.book --profile paper --only 01 \
    --no-build --out "$work/paper_executed" -p datasets=mnist -p seeds=0 -p results_path="$out/paper_01.csv" \
    "${paper_epochs[@]}" "${train_tiny[@]}"
step paper_ch2 120 env IGAN_STORE_DIR="$work/paper" "$PY" -m igan_utils.book --profile paper --only 02 \
    --no-build --out "$work/paper_executed" -p datasets=mnist -p seeds=0 -p results_path="$out/paper_02.csv" \
    "${paper_epochs[@]}" "${paper_images[@]}" "${train_tiny[@]}" "${attack_tiny[@]}"
if [ "${GPU_CHECK_TINY:-0}" = 1 ]; then
    step attacks_bench 60 "$PY" benchmarks/attacks.py --repeats 1 --steps 5 --batch 64
    step training_bench 40 "$PY" benchmarks/training.py --repeats 1 --images 256
else
    step attacks_bench 60 "$PY" benchmarks/attacks.py
    step training_bench 40 "$PY" benchmarks/training.py --repeats 1 --images 1024
fi
for run in a b; do
    step "deterministic_$run" 35 env IGAN_DETERMINISTIC=1 IGAN_STORE_DIR="$work/det_$run" \
        "$PY" -m igan_utils.book --profile smoke --only 01 --no-build --out "$work/det_executed_$run"
done
step same_weights 20 "$PY" benchmarks/gpu_check.py same-weights "$work/det_a" "$work/det_b"

{
    echo
    for log in smoke_book paper_ch1 paper_ch2; do
        echo "## $log (seconds per chapter)"
        echo
        grep -aoE "[0-9]{2}_[a-z_]+: [0-9]+ s" "$out/$log.log" | sed 's/^/- /' || echo "(no chapter finished; see $log.log)"
        echo
    done
    echo "## paper, MNIST-10k, seed 0: seconds per model"
    echo
    [ -f "$out/paper_01.csv" ] && [ -f "$out/paper_02.csv" ] \
        && "$PY" benchmarks/gpu_check.py per-model "$out/paper_01.csv" "$out/paper_02.csv" \
        || echo "(chapters 1-2 did not both finish)"
    echo
    echo "## benchmarks/attacks.py"
    echo
    grep -E "^[|#]" "$out/attacks_bench.log" || echo "(see attacks_bench.log)"
    echo
    echo "## benchmarks/training.py (seeds one at a time ÷ batched)"
    echo
    grep -E "^[|#]" "$out/training_bench.log" || echo "(see training_bench.log)"
    echo
    echo "## determinism (IGAN_DETERMINISTIC=1, smoke chapter 1 twice)"
    echo
    tail -n 1 "$out/same_weights.log" 2>/dev/null || echo "(not run)"
} >> "$summary"
cat "$summary"
rm -rf "$work"
