# The embeddings function as a Lambda container image, CPU only.
#
# Base: AWS's Lambda Python base image by default. Lambda caches AWS's base images near its hosts,
# AWS patches them, and they carry AWS's runtime interface client (and its emulator, for `docker
# run` + curl). Any other base works if it has `python3` (3.11 or newer) with pip: Debian's, a slim
# Python image, or the local one `make image` builds where no registry answers (README: The image).
# On a base without /lambda-entrypoint.sh, the image's entry point runs `python3 -m awslambdaric`,
# the runtime interface client pinned in requirements.txt (the version the tests boot).
#
# Every input can come from elsewhere, so that the build needs no network at all:
#   BASE_IMAGE       the base image (a registry mirror's, or a local one);
#   WHEELS_SOURCE    index: download from PIP_INDEX_URL (and torch from TORCH_INDEX_URL);
#                    context: the wheel files of `--build-context wheels=DIR`;
#   MODEL_SOURCE     hub: download MODEL_ID from HF_ENDPOINT (with its onnx/model.onnx if WITH_ONNX=true);
#                    context: the model folder of `--build-context model=DIR` (MODEL_ID names it).
# Either way every wheel is checked against the lock's hashes (torch against its pin).
ARG BASE_IMAGE=public.ecr.aws/lambda/python:3.12
ARG WHEELS_SOURCE=index
ARG MODEL_SOURCE=hub

# --- wheels: downloaded from the indexes, or given as a folder --------------------------------------
FROM ${BASE_IMAGE} AS wheels-index
ARG PIP_INDEX_URL=https://pypi.org/simple
# PyPI's x86_64 torch pulls GBs of CUDA libraries: the CPU build comes from PyTorch's own index.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY requirements-torch.txt requirements.txt /tmp/
RUN python3 -m pip download --no-cache-dir --no-deps --only-binary=:all: --dest /wheels \
      --index-url "${TORCH_INDEX_URL}" -r /tmp/requirements-torch.txt \
 && python3 -m pip download --no-cache-dir --no-deps --only-binary=:all: --dest /wheels \
      --require-hashes --index-url "${PIP_INDEX_URL}" -r /tmp/requirements.txt

FROM scratch AS wheels-context
COPY --from=wheels . /wheels/

FROM wheels-${WHEELS_SOURCE} AS wheel-files

# --- the model: downloaded from the hub, or given as a folder ---------------------------------------
FROM ${BASE_IMAGE} AS model-hub
ARG MODEL_ID=sentence-transformers/all-mpnet-base-v2
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG HF_ENDPOINT=https://huggingface.co
# true: also the model's own onnx/model.onnx (sentence-transformers models on the hub have one), for
# BACKEND=onnx; its optimised and quantised variants never.
ARG WITH_ONNX=false
COPY requirements.txt /tmp/
RUN hub="$(sed -n 's/^huggingface-hub==\([^ ]*\).*/\1/p' /tmp/requirements.txt)" \
 && PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir --target /tmp/hub --index-url "${PIP_INDEX_URL}" \
      "huggingface-hub==${hub}" \
 && PYTHONPATH=/tmp/hub HF_ENDPOINT="${HF_ENDPOINT}" python3 -c "import sys; \
from huggingface_hub import snapshot_download; \
onnx = ['onnx/model_*'] if sys.argv[2] == 'true' else ['*.onnx', 'onnx/*']; \
snapshot_download(sys.argv[1], local_dir='/opt/model', \
ignore_patterns=['*.bin', '*.h5', '*.msgpack', '*.ot', 'openvino/*', *onnx])" "${MODEL_ID}" "${WITH_ONNX}" \
 && rm -rf /opt/model/.cache /tmp/hub \
 && chmod -R a=rX /opt/model

FROM ${BASE_IMAGE} AS model-context
COPY --from=model . /opt/model/
RUN chmod -R a=rX /opt/model

FROM model-${MODEL_SOURCE} AS model-files

# --- Python dependencies, from the wheels alone: torch, then the hashed lock -------------------------
# The code directories are read-only in Lambda: the bytecode is compiled at build time, or every cold
# start compiles it. Unchecked: the code never changes in an image, whatever the files' times say.
# (`-x`: a test helper of torch's written for Python 3.12 only; nothing imports it.)
FROM ${BASE_IMAGE} AS deps
COPY requirements-torch.txt requirements.txt /tmp/
# Debian's pip refuses installs into its system Python (PEP 668) even with --target.
ENV PIP_BREAK_SYSTEM_PACKAGES=1
RUN --mount=type=bind,from=wheel-files,source=/wheels,target=/wheels \
    python3 -m pip install --no-cache-dir --no-index --find-links /wheels --no-deps --target /deps \
      -r /tmp/requirements-torch.txt \
 && python3 -m pip install --no-cache-dir --no-index --find-links /wheels --no-deps --target /deps \
      --require-hashes -r /tmp/requirements.txt \
 && find /deps -name '__pycache__' -prune -exec rm -rf {} + \
 && rm -rf /deps/bin \
 && python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash -d /opt/python \
      -x '/torch/testing/_internal/py312_intrinsics\.py$' /deps

# --- the runtime image: no pip install, no compilers, no caches, no tests ----------------------------
FROM ${BASE_IMAGE}
ARG MODEL_ID=sentence-transformers/all-mpnet-base-v2
# Dependencies and the shared engine where Lambda puts a layer's Python code; the engine changes
# most often, so it is the later layer. Development-only modules (`python -m embedding_engine`: the
# local server, the CLI, the local PostgreSQL) stay out: nothing Lambda runs imports them
# (tests/test_dockerfile.py checks).
COPY --from=deps /deps /opt/python/
COPY --from=model-files /opt/model /opt/model
COPY layer/python/ /opt/python/
RUN cd /opt/python/embedding_engine && rm __main__.py cli.py serve.py local_db.py
ENV LAMBDA_TASK_ROOT=/var/task
WORKDIR /var/task
COPY function/ /var/task/
# jemalloc serves malloc: with glibc's, a warm container's memory keeps growing under varied traffic
# (heap fragmentation); with jemalloc it levels off (README: Memory). Installed (dnf on Amazon Linux,
# apt on Debian: this needs the network) unless the base has it.
# A base without /lambda-entrypoint.sh gets one that runs the pinned runtime interface client.
# /opt/python goes on the path through a .pth file, whatever the base's own path.
RUN if ! LD_PRELOAD=libjemalloc.so.2 grep -q libjemalloc /proc/self/maps 2>/dev/null; then \
      if command -v dnf >/dev/null; then dnf install -y jemalloc && dnf clean all && rm -rf /var/cache/dnf; \
      else apt-get update && apt-get install -y --no-install-recommends libjemalloc2 \
        && rm -rf /var/lib/apt/lists/*; fi; fi \
 && LD_PRELOAD=libjemalloc.so.2 grep -q libjemalloc /proc/self/maps \
 && if [ ! -e /lambda-entrypoint.sh ]; then \
      printf '#!/bin/sh\nexec python3 -m awslambdaric "$@"\n' > /lambda-entrypoint.sh \
      && chmod 755 /lambda-entrypoint.sh; fi \
 && purelib="$(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
 && mkdir -p "${purelib}" && echo /opt/python > "${purelib}/opt-python.pth" \
 && python3 -m compileall -q --invalidation-mode unchecked-hash /opt/python/embedding_engine /var/task

# Nothing downloads, and nothing writes outside /tmp, at run time. Torch's thread count is set at
# init from the CPUs Lambda gives the function, or from TORCH_NUM_THREADS.
ENV LD_PRELOAD=libjemalloc.so.2 \
    MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 \
    MODEL_PATH=/opt/model \
    MODEL_ID=${MODEL_ID} \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HF_HOME=/tmp/huggingface \
    HF_HUB_CACHE=/tmp/huggingface/hub \
    SENTENCE_TRANSFORMERS_HOME=/tmp/sentence-transformers \
    TORCH_HOME=/tmp/torch \
    XDG_CACHE_HOME=/tmp/.cache \
    TOKENIZERS_PARALLELISM=false

ENTRYPOINT ["/lambda-entrypoint.sh"]
CMD ["handler.lambda_handler"]
