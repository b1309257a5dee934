#!/usr/bin/env bash
# benchmarks/pi/emulated.sh: inside the emulated 64-bit Raspberry Pi OS of ../shared/pi,
#   1. try `pip install librosa` in fresh venvs, with --only-binary=:all: and with pip's defaults,
#      and record what happens (logs, wall time, size),
#   2. time the cold start of `ser-edge classify` and of the librosa + scikit-learn way side by
#      side in one run (benchmarks/pi/coldstart.py, alternating), and size both venvs.
# Needs the runtime venv that .ci/pi-check leaves in $SER_EDGE_CACHE/pi-check/pi-venv (run it
# first).  Emulated times say nothing about a real Pi's speed; ratios within one run do.
#
# usage: benchmarks/pi/emulated.sh [RUNS]          (root; default 5 runs each, cortex-a72)
# env: SER_EDGE_SHARED, SER_EDGE_DATA, SER_EDGE_CACHE, PI_ROOTFS as for .ci/pi-check;
#      PI_CPU (cortex-a72), PI_BENCH_TIMEOUT (900 s per pip install), PI_BENCH_CLIP,
#      PI_BENCH_SKIP_INSTALL=1 (reuse the librosa venvs of an earlier run),
#      PI_BENCH_MODEL (an ONNX model for ser-edge instead of the bundled one).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUNS="${1:-5}"
SHARED="${SER_EDGE_SHARED:-$ROOT/../shared}"
PI_DIR="$(realpath "$SHARED/pi")"
DATA="$(realpath "${SER_EDGE_DATA:-$SHARED/data}")"
CACHE="$(realpath "${SER_EDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ser-edge}")"
export PI_ROOTFS="${PI_ROOTFS:-$CACHE/pi-rootfs}"
export PI_CPU="${PI_CPU:-cortex-a72}"
LIMIT="${PI_BENCH_TIMEOUT:-900}"
CLIP="${PI_BENCH_CLIP:-$DATA/ravdess/Actor_14/03-01-05-02-01-02-14.flac}"
PV="$CACHE/pi-check/pi-venv"
B="$CACHE/pi-bench"
PIPCACHE="$CACHE/pi-pip-cache"
mkdir -p "$B" "$PIPCACHE"
inpi() { "$PI_DIR/run-in-pi.sh" -d "$B" -d "$PIPCACHE" -e PIP_CACHE_DIR="$PIPCACHE" "$@"; }

# try_install NAME PIP_ARGS...: fresh venv $B/NAME, pip install PIP_ARGS librosa, time-limited.
try_install() {
  local name="$1" s=$SECONDS rc=0; shift
  rm -rf --one-file-system -- "${B:?}/$name"
  echo "[pi-bench] $name: pip install $* librosa (limit ${LIMIT}s)" >&2
  timeout --kill-after=30 "$LIMIT" "$PI_DIR/run-in-pi.sh" -d "$B" -d "$PIPCACHE" \
    -e PIP_CACHE_DIR="$PIPCACHE" -- /bin/sh -c \
    'v="$1"; shift; /usr/bin/python3 -m venv "$v" && "$v/bin/pip" install "$@" librosa' \
    _ "$B/$name" "$@" > "$B/$name.log" 2>&1 || rc=$?
  {
    echo "exit status $rc after $((SECONDS - s)) s"
    grep -E '^(Successfully installed|ERROR|error:)' "$B/$name.log" || true
    [ -d "$B/$name/lib" ] && du -sh "$B/$name/lib/python3.11/site-packages"
  } | tee "$B/$name.summary" >&2
  return "$rc"
}

rc_bin=0; rc_def=0
if [ "${PI_BENCH_SKIP_INSTALL:-0}" = 1 ]; then    # reuse the venvs of an earlier run
  [ -x "$B/librosa-binary/bin/python" ] || rc_bin=1
  [ -x "$B/librosa-default/bin/python" ] || rc_def=1
else
  try_install librosa-binary --only-binary=:all: || rc_bin=$?
  try_install librosa-default || rc_def=$?
fi
[ -x "$PV/bin/ser-edge" ] || { echo "no $PV: run .ci/pi-check first" >&2; exit 1; }

LV=""
if [ "$rc_bin" = 0 ]; then LV="$B/librosa-binary"; elif [ "$rc_def" = 0 ]; then LV="$B/librosa-default"; fi
args=(--clip "$CLIP" --ser-edge "$PV/bin/ser-edge" --runs "$RUNS")
sites=("$PV/lib/python3.11/site-packages")
dirs=(-d "$ROOT" -d "$CACHE/pi-check" -d "$(dirname "$CLIP")" -d "$B")
model_arg=()
if [ -n "${PI_BENCH_MODEL:-}" ]; then
  model_arg=(--model "$(realpath "$PI_BENCH_MODEL")")
  args+=("${model_arg[@]}"); dirs+=(-d "$(dirname "$(realpath "$PI_BENCH_MODEL")")")
fi
if [ -n "$LV" ]; then
  echo "[pi-bench] pickling a Pipeline(StandardScaler, MLPClassifier) inside, with $LV" >&2
  # Both sides compute the same features: the model's configuration beside the pickle.
  inpi -d "$CACHE/pi-check" "${dirs[@]}" -- "$PV/bin/ser-edge" features "${model_arg[@]}" "$CLIP" \
    | /usr/bin/env python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["feature_config"]))' \
    > "$B/model.json"
  inpi -d "$ROOT" -- "$LV/bin/python" "$ROOT/benchmarks/pi/make_pickle.py" "$B/model.pkl"
  args+=(--librosa-python "$LV/bin/python" --librosa-model "$B/model.pkl")
  sites+=("$LV/lib/python3.11/site-packages")
fi
args+=(--site-packages "${sites[@]}")
echo "[pi-bench] cold start, $RUNS runs each, QEMU_CPU=$PI_CPU" >&2
# The librosa venv stays writable: numba caches its compiled helpers in librosa's __pycache__,
# as in a user's venv.  The first run of each side is reported apart.
"$PI_DIR/run-in-pi.sh" "${dirs[@]}" -- \
  /usr/bin/python3 "$ROOT/benchmarks/pi/coldstart.py" "${args[@]}" | tee "$B/coldstart-$PI_CPU.txt"
