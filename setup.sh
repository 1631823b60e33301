#!/usr/bin/env bash
# One-shot set-up on a fresh machine (Python 3.11 + pip): the CPU build of PyTorch first and pinned
# (an unpinned torch pulls several GB of CUDA wheels), then everything else, then Chromium for the
# browser test when apt-get is available. The engine is installed editable (`pip install -e .`).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
"$PY" -m pip install --quiet torch==2.13.0
"$PY" -m pip install --quiet -r requirements-dev.txt
"$PY" -m pip install --quiet -e .   # the engine as a package: `import vaecore` anywhere, the `vaecore` command
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
    || echo "setup.sh: could not install chromium; the browser test will be skipped" >&2
fi
echo "setup.sh: done"
