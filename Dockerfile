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
# faiss-gpu replaces faiss-cpu with the library issue.
RUN pip install --no-cache-dir . nvidia-dali-cuda120==2.4.0 \
 && python3 -m rci.serving.repository --target gpu --out /models
# Large frames freed go back to the system (see rci.serving.server.TritonServer.environment).
ENV RCI_DATA_DIR=/data RCI_LIBRARIES=main RCI_DESCRIPTOR=sscd_resnet50 MALLOC_MMAP_THRESHOLD_=262144
