#!/usr/bin/env bash
# One GPU session, prepared so that a short lease is spent measuring, not installing:
#   bench/gpu_session.sh prepare   # here, with package-registry access: wheels for the GPU machine -> .whl/
#   bench/gpu_session.sh run       # on the GPU machine (offline): results and logs under $OUT (default ./gpu-out)
#
# `run`, in order, each step under its own time limit so that one slow step cannot eat the others:
#   1. the server's tests on the GPU: REFERENCE_TEST_DEVICE=cuda REFERENCE_TEST_DTYPE=bfloat16 pytest tests/server
#      (the session engine runs on CUDA in bf16: CUDA graphs, compiled pieces, batched prefill) -> junit XML;
#   2. python -m bench.gpu_decode: the engine in each decode mode vs the bandwidth limit (~1B random Llama);
#   3. python -m bench --device cuda: the server at concurrency 1 and 64 against raw generate and the peer.
# The GPU machine needs torch (CUDA) and transformers already; `prepare` fetches the rest as wheels for
# PY (default 3.12) and `run` installs them into a private folder (nothing is downloaded there).
# Limits (seconds): TESTS_TIMEOUT (240), DECODE_TIMEOUT (150), BENCH_TIMEOUT (200); SKIP_TESTS=1,
# SKIP_DECODE=1, SKIP_BENCH=1 skip a step; TEST_DEVICE / TEST_DTYPE (cuda, bfloat16) change step 1's device.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS="${WHEELS:-.whl}"

prepare() {
  local py="${PY:-3.12}"
  mkdir -p "$WHEELS"
  # The project's runtime and test dependencies that a CUDA image with torch + transformers lacks.
  pip download -q -d "$WHEELS" --python-version "$py" --only-binary=:all: --no-deps \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    fastapi starlette uvicorn h11 pydantic pydantic-core annotated-types typing-inspection typing-extensions \
    anyio sniffio idna certifi httpx httpcore httpx2 httpcore2 truststore openai jiter distro \
    opentelemetry-api jsonschema jsonschema-specifications referencing rpds-py attrs pyyaml jinja2 markupsafe \
    rich markdown-it-py mdurl pygments psutil hypothesis sortedcontainers pytest pluggy iniconfig packaging \
    pytest-timeout aiohttp aiohappyeyeballs aiosignal frozenlist multidict yarl propcache
  ls "$WHEELS" | wc -l | xargs echo "wheels in $WHEELS:"
}

step() {  # step NAME LIMIT COMMAND...: run with a time limit, log to $OUT/NAME.log, never stop the session
  local name="$1" limit="$2"
  shift 2
  echo "== $name (limit ${limit}s) $(date -u +%T)"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  grep -v "Loading weights\|Writing model\|^\s*$" "$OUT/$name.log" | tail -60
  echo "== $name: exit $rc $(date -u +%T)"
}

run() {
  OUT="${OUT:-$PWD/gpu-out}"
  mkdir -p "$OUT"
  if compgen -G "$WHEELS/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$WHEELS"/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
  else
    export PYTHONPATH="$PWD"
  fi
  export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$OUT/device.txt"
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/device.txt"
  [ -n "${SKIP_TESTS:-}" ] || step "server-tests-${TEST_DEVICE:-cuda}" "${TESTS_TIMEOUT:-240}" \
    env REFERENCE_TEST_DEVICE="${TEST_DEVICE:-cuda}" REFERENCE_TEST_DTYPE="${TEST_DTYPE:-bfloat16}" python3 -m pytest -q -p no:cacheprovider \
    --junitxml "$OUT/server-tests-${TEST_DEVICE:-cuda}.xml" tests/server
  [ -n "${SKIP_DECODE:-}" ] || step gpu-decode "${DECODE_TIMEOUT:-150}" \
    python3 -m bench.gpu_decode --model-dir /tmp/llama1b --out "$OUT/gpu-decode.json"
  [ -n "${SKIP_BENCH:-}" ] || step gpu-bench "${BENCH_TIMEOUT:-200}" \
    python3 -m bench --device cuda --model-dir /tmp/llama1b --concurrency 1 64 --rounds 1 --no-suite \
    --no-raw-static --level-budget 15 --out "$OUT/gpu-bench.json"
  ls -la "$OUT"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: bench/gpu_session.sh prepare|run" >&2; exit 2 ;;
esac
