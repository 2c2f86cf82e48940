# syntax=docker/dockerfile:1.7
# The embeddings function as a Lambda container image (x86_64, CPU).
#
# Base: the AWS Lambda Python base image. It carries Lambda's own runtime interface client and the
# runtime interface emulator (for `docker run` + curl locally), on the OS Lambda runs, so the boot
# path is AWS's, not ours to maintain.
ARG BASE_IMAGE=public.ecr.aws/lambda/python:3.12

# --- the model, fetched once at build time and baked in read-only ---------------------------------
FROM ${BASE_IMAGE} AS model
ARG MODEL_ID=sentence-transformers/all-mpnet-base-v2
RUN pip install --no-cache-dir huggingface-hub==2.4.0 \
 && python -c "import sys; from huggingface_hub import snapshot_download; \
snapshot_download(sys.argv[1], local_dir='/opt/model', \
ignore_patterns=['*.bin', '*.h5', '*.msgpack', '*.ot', '*.onnx', 'onnx/*', 'openvino/*'])" "${MODEL_ID}" \
 && rm -rf /opt/model/.cache

# --- Python dependencies: CPU-only torch from the PyTorch CPU index, everything else pinned --------
FROM ${BASE_IMAGE} AS deps
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --target /deps \
      --extra-index-url https://download.pytorch.org/whl/cpu \
      torch==2.13.0+cpu -r /tmp/requirements.txt \
 && find /deps -name '__pycache__' -prune -exec rm -rf {} + \
 && rm -rf /deps/bin

# --- the runtime image --------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG MODEL_ID=sentence-transformers/all-mpnet-base-v2
COPY --from=deps /deps /var/lang/lib/python3.12/site-packages/
COPY --from=model /opt/model /opt/model
# The shared engine goes where Lambda puts layers; a .pth file keeps it importable in any case.
COPY layer/python/ /opt/python/
COPY function/ ${LAMBDA_TASK_ROOT}/
RUN echo /opt/python > /var/lang/lib/python3.12/site-packages/opt-python.pth \
 && python -m compileall -q -j 0 /opt/python ${LAMBDA_TASK_ROOT} /var/lang/lib/python3.12/site-packages

# Nothing downloads or writes outside /tmp at run time.
ENV MODEL_PATH=/opt/model \
    MODEL_ID=${MODEL_ID} \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/huggingface \
    SENTENCE_TRANSFORMERS_HOME=/tmp/sentence-transformers \
    TOKENIZERS_PARALLELISM=false

CMD ["handler.lambda_handler"]
