#!/usr/bin/env bash
# Gatehouse benchmarks. Usage: bench/run.sh [all|proxy|https|routes|propagation|scale|fanout|rotation|ha|smoke]
#   proxy        gatehouse-dp vs nginx vs HAProxy, each presenting client certificate A to an
#                nginx backend that requires it (wrk; proxy pinned to CPU 1, the rest to CPU 0)
#   https        the same with HTTPS from the clients to the proxy (TLS 1.3, keep-alive), and a
#                handshake-rate run (a new TLS connection per request)
#   routes       req/s through a data plane holding 1 API beside one holding 10,000 (routing cost)
#   propagation  credential switch to 1, 10 and 50 data planes (100 switches each)
#   scale        10,000 APIs and 1,000 certificates
#   fanout       500 to 4,000 simulated data-plane sync streams on one control plane
#   rotation     wrk-style load through two data planes while A <-> B flips every 100 ms
#   ha           several control planes on etcd: PutApi on sled vs etcd (1 and 3 members),
#                failover when a control plane is SIGKILLed, propagation over two control planes
#   smoke        every suite for a few seconds (what CI runs to keep the harness alive)
# Installs what it needs (nginx, haproxy, wrk from Debian) and only talks to 127.0.0.1. The ha
# suite needs Debian's etcd-server and protoc (the etcd client's build); .ci/deps installs both.
set -euo pipefail
cd "$(dirname "$0")/.."
suite="${1:-all}"
profile=release
if [ "$suite" = smoke ]; then profile=debug; fi
build=(cargo build --workspace --quiet)
if [ "$profile" = release ]; then build+=(--release); fi
if command -v protoc >/dev/null; then
  build+=(--features gatehouse-tests/etcd,gatehouse-control-plane/etcd)
else
  echo "protoc is missing: building without etcd support, so the ha suite will be skipped"
  export GATEHOUSE_BENCH_NO_ETCD="protoc is missing (Debian's protobuf-compiler; bash .ci/deps installs it), so gatehouse-cp was built without etcd support"
fi
"${build[@]}"
# The binaries are where cargo put them: CARGO_TARGET_DIR when it is set.
exec python3 bench/bench.py "$suite" "${CARGO_TARGET_DIR:-target}/$profile"
