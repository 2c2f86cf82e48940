#!/usr/bin/env bash
# `make image`: build the function's image with no network inside the build.
#
# The engine is docker when its daemon answers, otherwise podman (installed from Debian's packages
# when missing and this is a Debian machine run as root). The base is BASE_IMAGE when the engine has
# it or can pull it; otherwise a Lambda-like base made here from Debian packages (debootstrap), once.
# The wheels are downloaded on this host with pip for the base's Python, and the model comes from a
# local folder (MODEL_DIR, by default the bundled all-MiniLM-L6-v2 with its ONNX export): the build runs with
# `--network none`. Dangling images left by earlier builds are pruned afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-embeddings-service:latest}
BASE_IMAGE=${BASE_IMAGE:-public.ecr.aws/lambda/python:3.12}
LOCAL_BASE=${LOCAL_BASE:-localhost/lambda-python-base:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
PYTHON=${PYTHON:-.venv/bin/python}
MODEL_ID=${MODEL_ID:-sentence-transformers/all-MiniLM-L6-v2}
BUILD_DIR=build/image

say() { printf '==> %s\n' "$*" >&2; }
fail() { printf 'make image: %s\n' "$*" >&2; exit 1; }

install_debian_packages() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
    || fail "needs $* (Debian/Ubuntu: sudo apt-get install $*), or Docker with its daemon running"
  say "installing $* from Debian's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# podman with runc and cgroupfs: crun fails on kernels with hybrid cgroups, and no systemd runs here.
configure_podman() {
  [ -e /etc/containers/containers.conf ] && return
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'EOF'
# Written by `make image` (image/build.sh) when it installed podman.
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
}

choose_engine() {
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    echo docker
    return
  fi
  if ! command -v podman >/dev/null; then
    install_debian_packages podman runc
    configure_podman
  fi
  echo podman
}

# A Debian bookworm root file system with Python, pip and jemalloc: what the Dockerfile needs of a
# base (README: The image). debootstrap needs root.
build_local_base() {
  command -v debootstrap >/dev/null || install_debian_packages debootstrap
  local root
  root="$(mktemp -d "${TMPDIR:-/tmp}/lambda-base.XXXXXX")"
  say "building ${LOCAL_BASE} with debootstrap from ${DEBIAN_MIRROR} (once)"
  debootstrap --variant=minbase --include=python3,python3-pip,libjemalloc2,ca-certificates \
    bookworm "${root}" "${DEBIAN_MIRROR}" >"${BUILD_DIR}/debootstrap.log" 2>&1 \
    || fail "debootstrap failed: see ${BUILD_DIR}/debootstrap.log"
  rm -rf "${root}"/var/cache/apt/archives/*.deb "${root}"/var/lib/apt/lists/* \
    "${root}"/usr/share/doc/* "${root}"/usr/share/man/* "${root}"/usr/share/locale/*
  tar -C "${root}" -c . | "${ENGINE}" import --quiet --change 'CMD ["python3"]' - "${LOCAL_BASE}" >/dev/null
  rm -rf "${root}"
}

choose_base() {
  if "${ENGINE}" image inspect "${BASE_IMAGE}" >/dev/null 2>&1 \
    || timeout 600 "${ENGINE}" pull -q "${BASE_IMAGE}" >/dev/null 2>&1; then
    echo "${BASE_IMAGE}"
    return
  fi
  say "${BASE_IMAGE} cannot be pulled: using ${LOCAL_BASE}, a Lambda-like Debian base"
  "${ENGINE}" image inspect "${LOCAL_BASE}" >/dev/null 2>&1 || build_local_base
  echo "${LOCAL_BASE}"
}

# The lock's wheels (every hash checked) and torch's CPU wheel, for the base's Python, C library and
# architecture (whatever this machine's are); downloaded again only when a requirements file changes.
fetch_wheels() {
  local python_version=$1 wheels="${BUILD_DIR}/wheels-py$1-manylinux_$2_$3_$4" platforms=() minor
  # pip takes each platform a wheel may name: manylinux_2_17 (2014) up to the base's glibc.
  for ((minor = $3; minor >= 17; minor--)); do platforms+=(--platform "manylinux_$2_${minor}_$4"); done
  if [ -e "${wheels}/.complete" ] && [ "${wheels}/.complete" -nt requirements.txt ] \
    && [ "${wheels}/.complete" -nt requirements-torch.txt ]; then
    echo "${wheels}"
    return
  fi
  say "downloading wheels for Python ${python_version} into ${wheels}"
  rm -rf "${wheels}" && mkdir -p "${wheels}"
  local download=("${PYTHON}" -m pip download --quiet --no-deps --only-binary=:all:
    --python-version "${python_version}" "${platforms[@]}" --platform "manylinux2014_$4" --dest "${wheels}")
  "${download[@]}" --extra-index-url "${TORCH_INDEX_URL}" -r requirements-torch.txt >&2
  "${download[@]}" --require-hashes -r requirements.txt >&2
  touch "${wheels}/.complete"
  echo "${wheels}"
}

model_dir() {
  if [ -n "${MODEL_DIR:-}" ]; then
    [ -f "${MODEL_DIR}/modules.json" ] || fail "MODEL_DIR=${MODEL_DIR} is not a sentence-transformers model folder"
    echo "${MODEL_DIR}"
    return
  fi
  local bundled exported=.cache/models/all-MiniLM-L6-v2-onnx
  bundled="$("${PYTHON}" -c 'from embedding_engine.settings import bundled_model_path as p; print(p() or "")')"
  [ -n "${bundled}" ] || fail "no model folder: set MODEL_DIR (and MODEL_ID), or make install for the bundled one"
  # With onnx/model.onnx beside the weights, the image serves either backend (BACKEND=onnx).
  if [ ! -f "${exported}/onnx/model.onnx" ] || [ "${bundled}/modules.json" -nt "${exported}/onnx/model.onnx" ]; then
    say "exporting the bundled model to ONNX into ${exported}"
    rm -rf "${exported}"
    "${PYTHON}" -m embedding_engine.onnx_export "${bundled}" "${exported}" >&2
  fi
  echo "${exported}"
}

mkdir -p "${BUILD_DIR}"
ENGINE="$(choose_engine)"
BASE="$(choose_base)"
# The base's Python version and C library, and its architecture, such as "3.11 2 36 x86_64".
read -r PYTHON_VERSION GLIBC_MAJOR GLIBC_MINOR ARCH <<<"$("${ENGINE}" run --rm --network none \
  --entrypoint python3 "${BASE}" -c 'import platform, sys
print("%d.%d" % sys.version_info[:2], *platform.libc_ver()[1].split(".")[:2], platform.machine())')"
WHEELS="$(fetch_wheels "${PYTHON_VERSION}" "${GLIBC_MAJOR}" "${GLIBC_MINOR}" "${ARCH}")"
MODEL="$(model_dir)"
build=("${ENGINE}" build --network none
  --build-arg BASE_IMAGE="${BASE}"
  --build-arg WHEELS_SOURCE=context --build-context wheels="${WHEELS}"
  --build-arg MODEL_SOURCE=context --build-context model="${MODEL}" --build-arg MODEL_ID="${MODEL_ID}")
say "building ${IMAGE} with ${ENGINE}: base ${BASE} (Python ${PYTHON_VERSION}), model ${MODEL_ID} from ${MODEL}"
# The dependencies' stage is tagged too, so that pruning keeps it: the next build reuses it unless a
# requirements file changed, and rebuilds only the code's layers.
"${build[@]}" --target deps --tag "${IMAGE%:*}-deps:cache" .
"${build[@]}" --tag "${IMAGE}" .
"${ENGINE}" image prune --force >/dev/null
"${ENGINE}" image ls "${IMAGE}"
