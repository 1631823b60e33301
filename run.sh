#!/usr/bin/env bash
# VAE Explorer in one command. Needs Python >= 3.11 with pip (and venv); everything is installed into ./.venv.
#
#   bash run.sh app  [streamlit options]   set up, then start the app on http://localhost:8501
#   bash run.sh test [pytest options]      set up, then run the test suite
#   bash run.sh lint                       set up, then ruff
#   bash run.sh setup                      set up only
#   bash run.sh <command> [args]           set up, then run a command in the virtualenv (`bash run.sh vaecore list-models`)
#
# Set-up is idempotent: the pinned CPU build of torch first (the default PyPI wheel of torch pulls several GB of CUDA
# libraries), then requirements-dev.txt (the app's and the tests' pins), then the engine editable (`pip install -e .`),
# and for the tests Chromium via apt-get when running as root without it (the browser tests skip otherwise). A stamp
# keyed on the hash of the requirement files, pyproject.toml and this script makes a second run skip all of that.
# Environment: PYTHON (the interpreter to build .venv from, default python3), VAE_VENV (default .venv),
# VAE_TORCH_INDEX (where the CPU torch comes from unless pip already finds the pinned wheel without an index).
set -euo pipefail
cd "$(dirname "$0")"
TORCH=torch==2.13.0
VENV=${VAE_VENV:-.venv}
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
PY="$VENV/bin/python"

say() { echo "run.sh: $*" >&2; }

make_venv() {
  local base=${PYTHON:-python3}
  command -v "$base" >/dev/null || { say "no '$base' on PATH: install Python >= 3.11 or set PYTHON=/path/to/python3.11"; exit 1; }
  "$base" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { say "$("$base" --version 2>&1) is too old: Python >= 3.11 is needed (set PYTHON=...)"; exit 1; }
  say "creating the virtualenv $VENV"
  [ -f "$VENV/pyvenv.cfg" ] && rm -rf "$VENV"  # a broken one (e.g. left without pip by a failed first try)
  "$base" -m venv "$VENV" && "$PY" -m pip --version >/dev/null 2>&1 \
    || { say "could not create $VENV with pip in it (Debian/Ubuntu: apt-get install python3-venv)"; exit 1; }
}

setup_key() {
  "$PY" - requirements.txt requirements-dev.txt pyproject.toml run.sh <<'EOF'
import hashlib, sys
h = hashlib.sha256()
for name in sys.argv[1:]:
    h.update(open(name, "rb").read())
print(h.hexdigest())
EOF
}

setup_python() {
  { [ -x "$PY" ] && "$PY" -m pip --version >/dev/null 2>&1; } || make_venv
  local stamp="$VENV/.vae-setup" key
  key=$(setup_key)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
    return 0
  fi
  local pip=("$PY" -m pip install --quiet --disable-pip-version-check)
  if "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('torch').split('+')[0] != '${TORCH#torch==}')" \
      2>/dev/null; then
    :  # the pinned torch is already in the virtualenv
  elif "${pip[@]}" --dry-run --no-deps --no-index "$TORCH" >/dev/null 2>&1; then
    say "installing $TORCH (a wheel this machine's pip finds locally)"
    "${pip[@]}" "$TORCH"
  else
    say "installing $TORCH, the CPU build (several minutes the first time)"
    "${pip[@]}" --index-url "${VAE_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" "$TORCH"
  fi
  say "installing requirements-dev.txt and the engine (pip install -e .)"
  "${pip[@]}" -r requirements-dev.txt
  "${pip[@]}" -e .
  echo "$key" > "$stamp"
}

setup_chromium() {  # the browser tests drive /usr/bin/chromium; they skip without it
  if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing chromium for the browser tests (apt-get)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
      || say "could not install chromium; the browser tests will be skipped"
  fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
export PATH="$VENV/bin:$PATH"  # whatever these commands start by name (streamlit, torchrun, vaecore) is the venv's
case "$cmd" in
  app)   setup_python; exec "$PY" -m streamlit run app.py "$@" ;;
  test)  setup_python; setup_chromium; exec "$PY" -m pytest -q "$@" ;;
  lint)  setup_python; exec "$PY" -m ruff check . "$@" ;;
  setup) setup_python; setup_chromium; say "set up in $VENV" ;;
  ""|-h|--help|help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; [ -n "$cmd" ] ;;
  *)     setup_python; exec "$cmd" "$@" ;;
esac
