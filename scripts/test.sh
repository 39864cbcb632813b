#!/usr/bin/env bash
# Installs what is missing, builds the `ci` preset and runs every test (CTest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset ci
cmake --build --preset ci
ctest --preset ci "$@"
