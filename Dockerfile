# syntax=docker/dockerfile:1.7
# The embeddings function as a Lambda container image, CPU only (x86_64 by default, arm64 with
# `--platform linux/arm64`).
#
# Base: the AWS Lambda Python base image rather than a slim Python image with awslambdaric as the
# entry point. It carries Lambda's own runtime interface client (and the runtime interface emulator
# for `docker run` + curl), on the OS Lambda runs, patched by AWS: the boot path is AWS's to keep
# right, and the tests here hold our handler to the same `awslambdaric` protocol.
ARG BASE_IMAGE=public.ecr.aws/lambda/python:3.12

# --- the model, fetched once at build time ---------------------------------------------------------
FROM ${BASE_IMAGE} AS model
ARG MODEL_ID=sentence-transformers/all-mpnet-base-v2
RUN pip install --no-cache-dir huggingface-hub==2.4.0 \
 && python -c "import sys; from huggingface_hub import snapshot_download; \
snapshot_download(sys.argv[1], local_dir='/opt/model', \
ignore_patterns=['*.bin', '*.h5', '*.msgpack', '*.ot', '*.onnx', 'onnx/*', 'openvino/*'])" "${MODEL_ID}" \
 && rm -rf /opt/model/.cache \
 && chmod -R a=rX /opt/model

# --- Python dependencies: CPU-only torch, then everything else from the hashed lock ----------------
FROM ${BASE_IMAGE} AS deps
ARG TARGETARCH
COPY requirements-torch.txt requirements.txt /tmp/
# torch without its dependencies (the lock has them, with hashes): on x86_64 the PyTorch CPU index's
# build (PyPI's x86_64 torch pulls GBs of CUDA libraries), on arm64 PyPI's, which is the CPU build.
# Then the lock, every file checked against its hash (`make lock` writes it; CI checks it is current).
RUN version="$(sed -n 's/^torch==//p' /tmp/requirements-torch.txt)" \
 && if [ "${TARGETARCH}" = "arm64" ]; then torch="torch==${version}"; index=https://pypi.org/simple; \
    else torch="torch==${version}+cpu"; index=https://download.pytorch.org/whl/cpu; fi \
 && pip install --no-cache-dir --no-deps --target /deps --index-url "${index}" "${torch}" \
 && pip install --no-cache-dir --no-deps --require-hashes --target /deps -r /tmp/requirements.txt \
 && find /deps -name '__pycache__' -prune -exec rm -rf {} + \
 && rm -rf /deps/bin

# --- the runtime image: no pip install, no compilers, no caches, no tests -------------------------
FROM ${BASE_IMAGE}
ARG MODEL_ID=sentence-transformers/all-mpnet-base-v2
COPY --from=deps /deps /var/lang/lib/python3.12/site-packages/
COPY --from=model /opt/model /opt/model
# The shared engine goes where Lambda puts layers; a .pth file keeps it importable in any case.
# Development-only modules (`python -m embedding_engine`: the local server, the CLI, the local
# PostgreSQL) stay out: nothing Lambda runs imports them (tests/test_dockerfile.py checks).
COPY layer/python/ /opt/python/
RUN cd /opt/python/embedding_engine && rm __main__.py cli.py serve.py local_db.py
COPY function/ ${LAMBDA_TASK_ROOT}/
# jemalloc serves malloc: with glibc's, a warm container's memory keeps growing under varied traffic
# (heap fragmentation); with jemalloc it levels off. Freed pages are kept for reuse, not purged:
# purging cost 10-20 % of the throughput of varied batches (README: Memory; make bench).
RUN dnf install -y jemalloc \
 && dnf clean all && rm -rf /var/cache/dnf \
 && test -f /usr/lib64/libjemalloc.so.2
# The code directory is read-only in Lambda: compile the bytecode now, or every cold start compiles it.
RUN echo /opt/python > /var/lang/lib/python3.12/site-packages/opt-python.pth \
 && python -m compileall -q -j 0 /opt/python ${LAMBDA_TASK_ROOT} /var/lang/lib/python3.12/site-packages

# Nothing downloads, and nothing writes outside /tmp, at run time. Torch's thread count is set at
# init from the CPUs Lambda gives the function (they follow MemorySize), or from TORCH_NUM_THREADS.
ENV LD_PRELOAD=/usr/lib64/libjemalloc.so.2 \
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

CMD ["handler.lambda_handler"]
