#!/usr/bin/env bash
# Build MatchLite's student as a TensorRT plan for the gpu target, inside the NGC TensorRT
# image:
#   docker run --rm --gpus all -v "$PWD":/work -w /work nvcr.io/nvidia/tensorrt:24.10-py3 \
#     build_engines/build_matchlite.sh rci/match/matchlite.onnx /work/engines
# The ONNX's tensors already carry the config's names (MAPS, MASK, SIDE -> PROBABILITY,
# FRACTION, KINDS). Shapes: up to 256 pairs (rci_match's candidates) of grids up to 128 a
# side (rci/match/pair_input.py MAX_SIDE). FP32: the student is small, and its decisions
# should equal the cpu target's.
set -euo pipefail
onnx=${1:?usage: build_matchlite.sh MATCHLITE.onnx REPOSITORY}
repository=${2:?usage: build_matchlite.sh MATCHLITE.onnx REPOSITORY}
mkdir -p "$repository/rci_matchlite_student/1"
trtexec --onnx="$onnx" \
  --saveEngine="$repository/rci_matchlite_student/1/model.plan" \
  --minShapes=MAPS:1x3x1x1,MASK:1x1x1x1,SIDE:1x12 \
  --optShapes=MAPS:16x3x64x32,MASK:16x1x64x32,SIDE:16x12 \
  --maxShapes=MAPS:256x3x128x128,MASK:256x1x128x128,SIDE:256x12
