#!/bin/bash
# One GPU validation run (docs/cuda.md): on a GPU machine with nothing of Tessera's installed, runs
# the cuda tests and times GPT-2 124M, writing each stage's log to OUT as it goes (a run killed at
# its time limit still reports the stages it finished).
#
#   tests/cuda/gpu_validate.sh BUNDLE OUT
#
# BUNDLE is what tests/cuda/make_gpu_bundle.sh made on a build machine: Tessera built with CUDA for
# sm_90 and portable x86-64-v3 CPU code, plus the shared libraries of its Debian dependencies that a
# GPU image lacks (OpenBLAS, oneDNN, fmt, toml++, OpenMPI's runtime). cuBLASLt comes from the GPU
# machine: its CUDA toolkit or PyTorch's nvidia-* wheels. Stages and their time limits (about 7
# minutes in all on an H200):
#   0 machine: nvidia-smi, the CUDA libraries found          (seconds)
#   1 test_cuda_host: host-side units                        (30 s)
#   2 parity harness, every op × dtype on cuda vs reference  (240 s)
#   3 test_cuda_model: GPT on cuda vs the CPU                (180 s)
#   3b test_cuda_nccl: the NCCL communicator on one GPU      (60 s; needs libnccl.so.2 there)
#   4 tessera bench: GPT-2 124M, micro batch 16, seq 1024, fp32, tf32 and bf16, PyTorch beside it (300 s)
#   5 the bf16 step's per-op profile (TESSERA_OP_PROFILE=1)                                  (120 s)
set -u
BUNDLE=${1:?usage: gpu_validate.sh BUNDLE OUT}
OUT=${2:?usage: gpu_validate.sh BUNDLE OUT}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$OUT"
say() { echo "[$(date -u +%T)] $*" | tee -a "$OUT/summary.txt"; }
# stage NAME LIMIT COMMAND...: runs it with a time limit, its output into OUT/NAME.log.
stage() {
  local name=$1 limit=$2
  shift 2
  say "stage $name: $*"
  local t0=$SECONDS
  timeout --signal=KILL "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  say "stage $name: exit $rc after $((SECONDS - t0)) s"
  tail -n 25 "$OUT/$name.log" | sed "s/^/  $name| /"
  return 0
}

say "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1)"
say "nvcc: $(nvcc --version 2>/dev/null | tail -1)"

WORK=/tmp/tessera-gpu
rm -rf "$WORK" && mkdir -p "$WORK" && tar -xf "$BUNDLE" -C "$WORK" || { say "cannot unpack $BUNDLE"; exit 1; }
# cuBLASLt: the toolkit's, else the one PyTorch's wheels carry.
LIBS="$WORK/lib:$WORK/deps"
for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, n, "lib") for p in nvidia.__path__ for n in os.listdir(p)))' 2>/dev/null); do
  [ -d "$d" ] && LIBS="$LIBS:$d"
done
export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export TESSERA_PLUGIN_PATH="$WORK/lib/tessera" OMP_WAIT_POLICY=PASSIVE
say "cuBLASLt: $(for d in ${LIBS//:/ }; do ls "$d"/libcublasLt.so* 2>/dev/null; done | head -1)"
say "NCCL: $(for d in ${LIBS//:/ }; do ls "$d"/libnccl.so* 2>/dev/null; done | head -1)"
# The tests read the corpus and configs from the source tree they were built from.
BUILT_FROM=$(cat "$WORK/source_dir")
if [ "$BUILT_FROM" != "$SRC" ] && [ ! -e "$BUILT_FROM" ]; then
  mkdir -p "$(dirname "$BUILT_FROM")" && ln -s "$SRC" "$BUILT_FROM"
fi
# The tests write their corpus into the current folder: a scratch one, not the source tree.
mkdir -p "$WORK/run" && cd "$WORK/run"
stage host 30 "$WORK/bin/test_cuda_host"
stage parity 240 env TESSERA_PARITY_REQUIRE=cuda "$WORK/bin/test_backend_ops"
stage model 180 "$WORK/bin/test_cuda_model"
[ -x "$WORK/bin/test_cuda_nccl" ] && stage nccl 60 "$WORK/bin/test_cuda_nccl"
cd "$SRC"  # the bench's config names its tokenizer files relative to the source tree
stage bench 300 "$WORK/bin/tessera" bench configs/gpt/gpt2-124m.toml --device cuda --precision fp32,tf32,bf16 \
  --set model.seq_length=1024 --set training.micro_batch_size=16 --iters 10 --warmup 3 --gemm-size 8192 \
  --python python3
# Where the bf16 step's time goes, op by op (TESSERA_OP_PROFILE: the device synchronised at each op).
stage profile 120 env TESSERA_OP_PROFILE=1 "$WORK/bin/tessera" bench --child --device cuda --precision bf16 \
  --set model.seq_length=1024 --set training.micro_batch_size=16 --iters 5 --warmup 2 -- configs/gpt/gpt2-124m.toml
say "done"
