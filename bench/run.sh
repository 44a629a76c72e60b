#!/usr/bin/env bash
# Gatehouse benchmarks. Usage: bench/run.sh [all|proxy|https|propagation|scale|rotation|smoke]
#   proxy        gatehouse-dp vs nginx vs HAProxy, each presenting client certificate A to an
#                nginx backend that requires it (wrk; proxy pinned to CPU 1, the rest to CPU 0)
#   https        the same with HTTPS from the clients to the proxy (TLS 1.3, keep-alive), and a
#                handshake-rate run (a new TLS connection per request)
#   propagation  credential switch to 1, 10 and 50 data planes (100 switches each)
#   scale        10,000 APIs and 1,000 certificates
#   rotation     wrk-style load through two data planes while A <-> B flips every 100 ms
#   smoke        every suite for a few seconds (what CI runs to keep the harness alive)
# Installs what it needs (nginx, haproxy, wrk from Debian) and only talks to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
suite="${1:-all}"
profile=release
if [ "$suite" = smoke ]; then profile=debug; fi
if [ "$profile" = release ]; then
  cargo build --release --workspace --quiet
else
  cargo build --workspace --quiet
fi
exec python3 bench/bench.py "$suite" "target/$profile"
