#!/usr/bin/env bash
# Regenerates the exact locks from pyproject.toml's extras: requirements/cpu.txt and
# requirements/gpu.txt, for Linux x86-64, CPython 3.11. Run it after changing a dependency:
#   bash requirements/lock.sh
# It uses uv (installed into a throwaway venv when it is not on PATH); `uv pip compile`
# resolves from the package index's metadata, without installing anything.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=$(command -v uv || true)
if [ -z "$uv" ]; then
  tools=$(mktemp -d)
  python3 -m venv "$tools" && "$tools/bin/pip" install -q uv
  uv="$tools/bin/uv"
fi
extras=(--extra weights --extra fast --extra test --extra ray --extra remote)
target=(--python-version 3.11 --python-platform x86_64-manylinux_2_28)
"$uv" pip compile -q pyproject.toml "${extras[@]}" -c requirements/pins.in "${target[@]}" \
  --custom-compile-command "bash requirements/lock.sh" -o requirements/cpu.txt
"$uv" pip compile -q pyproject.toml requirements/gpu.in "${extras[@]}" -c requirements/pins.in \
  --override requirements/gpu-overrides.txt "${target[@]}" \
  --custom-compile-command "bash requirements/lock.sh" -o requirements/gpu.txt
echo "wrote requirements/cpu.txt and requirements/gpu.txt"
