#!/usr/bin/env bash
# Installs libtorch 2.11.0 (the C++ headers and CPU libraries of PyPI's torch==2.11.0 wheel,
# plus libcudart/libcupti that libtorch_cpu links against) for the tch crate.
#
# Idempotent: does nothing when the install is complete. Pinned and sha256-verified.
#   LIBTORCH=/some/prefix   install there instead of <repo>/.deps/libtorch (the build then needs
#                           LIBTORCH exported too); the default needs no variable at all.
#   KN_TORCH_CUDA=1          also install libtorch_cuda and the NVIDIA runtime libraries it needs
#                           (several GB; only useful on a machine with an NVIDIA GPU).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TORCH_VERSION=2.11.0
TORCH_SHA=7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a
CUDART_VERSION=13.0.96
CUDART_SHA=7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
CUPTI_VERSION=13.0.85
CUPTI_SHA=4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8

PREFIX="${LIBTORCH:-$REPO_ROOT/.deps/libtorch}"
CUDA="${KN_TORCH_CUDA:-0}"
STAMP="$PREFIX/.kn-install-complete"
want_stamp="torch=$TORCH_VERSION cudart=$CUDART_VERSION cupti=$CUPTI_VERSION cuda=$CUDA"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ]; then
  log "libtorch $TORCH_VERSION already installed in $PREFIX"
  exit 0
fi

torch_whl=$(fetch_wheel torch "$TORCH_VERSION" "$TORCH_SHA")
cudart_whl=$(fetch_wheel nvidia-cuda-runtime "$CUDART_VERSION" "$CUDART_SHA")
cupti_whl=$(fetch_wheel nvidia-cuda-cupti "$CUPTI_VERSION" "$CUPTI_SHA")

tmp="$PREFIX.partial"
rm -rf "$tmp"
mkdir -p "$tmp/lib" "$tmp/unpack"
log "unpacking libtorch into $PREFIX"
cpu_libs='torch/lib/libc10.so torch/lib/libtorch.so torch/lib/libtorch_cpu.so torch/lib/libgomp.so.1 torch/lib/libtorch_global_deps.so torch/lib/libshm.so'
cuda_libs='torch/lib/libtorch_cuda.so torch/lib/libc10_cuda.so torch/lib/libtorch_cuda_linalg.so torch/lib/libtorch_nvshmem.so torch/lib/libcaffe2_nvrtc.so'
members="torch/include/* $cpu_libs"
[ "$CUDA" = 1 ] && members="$members $cuda_libs"
# shellcheck disable=SC2086
unzip -q -o "$torch_whl" $members -d "$tmp/unpack"
mv "$tmp/unpack/torch/include" "$tmp/include"
mv "$tmp/unpack/torch/lib/"* "$tmp/lib/"
unzip -q -o -j "$cudart_whl" 'nvidia/cu13/lib/libcudart.so.13' -d "$tmp/lib"
unzip -q -o -j "$cupti_whl" 'nvidia/cu13/lib/libcupti.so.13' -d "$tmp/lib"
if [ "$CUDA" = 1 ]; then
  log "KN_TORCH_CUDA=1: installing the NVIDIA libraries libtorch_cuda needs (pip, several GB)"
  "$PYTHON" -m pip download --quiet --no-deps -d "$tmp/unpack/nv" \
    nvidia-cublas==13.1.0.3 nvidia-cudnn-cu13==9.19.0.56 nvidia-cufft==12.0.0.61 \
    nvidia-curand==10.4.0.35 nvidia-cusolver==12.0.4.66 nvidia-cusparse==12.6.3.3 \
    nvidia-cusparselt-cu13==0.8.0 nvidia-nccl-cu13==2.28.9 nvidia-nvjitlink==13.0.88 \
    nvidia-nvtx==13.0.85 nvidia-cufile==1.15.1.6 nvidia-nvshmem-cu13==3.4.5 nvidia-cuda-nvrtc==13.0.88 >&2
  for w in "$tmp/unpack/nv"/*.whl; do unzip -q -o -j "$w" '*.so*' -d "$tmp/lib" 2>/dev/null || true; done
fi
rm -rf "$tmp/unpack"
echo "$TORCH_VERSION" > "$tmp/build-version"
rm -rf "$PREFIX"
mv "$tmp" "$PREFIX"
echo "$want_stamp" > "$STAMP"
log "libtorch $TORCH_VERSION installed in $PREFIX"
