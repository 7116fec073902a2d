#!/bin/bash
# Packs what tests/cuda/gpu_validate.sh needs on a GPU machine whose image lacks Tessera's Debian
# dependencies: the built programs and plugins of BUILD (configured with the CUDA toolkit, e.g.
#   cmake -S . -B build-gpu -G Ninja -DTESSERA_NATIVE=OFF -DCMAKE_CXX_FLAGS=-march=x86-64-v3
# so that its CPU code runs on any recent x86-64), and the shared libraries they load that are not
# the C library's or CUDA's own. Writes one xz tarball (about 28 MiB; ICU's data, for hf_tokenizer's NFC, 7.5 of it).
#
#   tests/cuda/make_gpu_bundle.sh BUILD OUT.tar.xz
set -eu
BUILD=$(cd "${1:?usage: make_gpu_bundle.sh BUILD OUT.tar.xz}" && pwd)
OUTFILE=${2:?usage: make_gpu_bundle.sh BUILD OUT.tar.xz}
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib/tessera" "$STAGE/deps"
cp "$BUILD/bin/tessera" "$BUILD/bin/test_cuda_host" "$BUILD/bin/test_cuda_model" "$BUILD/bin/test_backend_ops" "$STAGE/bin/"
[ -e "$BUILD/bin/test_cuda_nccl" ] && cp "$BUILD/bin/test_cuda_nccl" "$STAGE/bin/"
cp "$BUILD"/lib/libtessera_core.so "$STAGE/lib/"
cp "$BUILD"/lib/tessera/*.so "$STAGE/lib/tessera/"
grep -m1 CMAKE_HOME_DIRECTORY "$BUILD/CMakeCache.txt" | cut -d= -f2 >"$STAGE/source_dir"
# Every library these load, except the C and C++ runtimes (the GPU machine's are newer, and the
# PyTorch baseline must load its own) and CUDA's (the GPU machine's own; NCCL's, 218 MB, comes from
# its toolkit or PyTorch's nvidia-nccl wheel).
for f in "$STAGE"/bin/* "$STAGE"/lib/*.so "$STAGE"/lib/tessera/*.so; do ldd "$f"; done |
  awk '/=> \//{print $3}' | sort -u |
  grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*|libstdc\+\+|libgcc_s|libz|libudev|libcuda|libcublas[^/]*|libcudart[^/]*|libnccl|libtessera_core)\.so' |
  while read -r lib; do cp -L "$lib" "$STAGE/deps/"; done
tar -C "$STAGE" -cJf "$OUTFILE" .
ls -l "$OUTFILE"
