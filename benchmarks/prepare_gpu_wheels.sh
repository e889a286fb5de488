#!/usr/bin/env bash
# Download the wheels that benchmarks/gpu_check.sh needs on an offline GPU
# node, on a machine whose pip reaches a package index.
#
# The node is assumed to have Python 3.12 with a CUDA PyTorch and numpy,
# scipy, OpenCV (e.g. opencv-python-headless), matplotlib (so Pillow and
# packaging), but no OpenMMLab package and no network. This script fetches
# the rest as Python 3.12 manylinux x86_64 wheels (about 16 MiB, most of it
# decord), at the versions of requirements/lock.txt:
#   mmengine, mmaction2, mmcv-lite (mmcv without compiled ops, of the locked
#   mmcv version: the check uses no mmcv op), decord, and what their imports
#   need: addict, yapf, platformdirs, termcolor, rich, markdown-it-py, mdurl,
#   pygments, pyyaml, einops, importlib-metadata, zipp, lazy-importer.
# Copy DIR next to the repository on the node and run
#   WHEELS=DIR bash benchmarks/gpu_check.sh
# which installs them with `pip install --no-index --no-deps --target`.
#
# Usage: bash benchmarks/prepare_gpu_wheels.sh [DIR]   (default gpu_wheels)
# Environment: PYTHON (the pip to use, default python), PYTHON_VERSION
# (3.12), PLATFORM (manylinux_2_17_x86_64).
set -euo pipefail

cd "$(dirname "$0")/.."
DIR=${1:-gpu_wheels}
PYTHON=${PYTHON:-python}
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
PLATFORM=${PLATFORM:-manylinux_2_17_x86_64}
LOCK=requirements/lock.txt

locked() {  # NAME [LOCKED-NAME] -> NAME==version from the lock file
    local version
    version=$(grep -i "^${2:-$1}==" "$LOCK" | head -n 1 | cut -d= -f3)
    if [ -z "$version" ]; then
        echo "prepare_gpu_wheels: ${2:-$1} is not in $LOCK" >&2
        exit 1
    fi
    echo "$1==$version"
}

PACKAGES=(
    "$(locked mmengine)" "$(locked mmaction2)" "$(locked mmcv-lite mmcv)"
    "$(locked decord)" "$(locked addict)" "$(locked yapf)"
    "$(locked platformdirs)" "$(locked termcolor)" "$(locked rich)"
    "$(locked markdown-it-py)" "$(locked mdurl)" "$(locked pygments)"
    "$(locked pyyaml)" "$(locked einops)" "$(locked importlib-metadata)"
    "$(locked zipp)" "$(locked lazy-importer)"
)

mkdir -p "$DIR"
"$PYTHON" -m pip download --no-deps --only-binary=:all: \
    --python-version "$PYTHON_VERSION" --implementation cp \
    --platform "$PLATFORM" --platform manylinux2014_x86_64 \
    --platform manylinux2010_x86_64 --dest "$DIR" "${PACKAGES[@]}"
echo "prepare_gpu_wheels: $(ls "$DIR"/*.whl | wc -l) wheels," \
    "$(du -sh "$DIR" | cut -f1) in $DIR"
