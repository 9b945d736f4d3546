#!/usr/bin/env bash
# Real-time events benchmarks (docs/BENCHMARKS.md): webhook deliveries, idle WebSocket connections, latency.
# Raises the open-files limit as far as this machine allows first: every WebSocket is a file descriptor on
# both ends. Usage: scripts/bench-events.sh [connections] (default: as many as the limit allows, up to 100000).
set -euo pipefail
cd "$(dirname "$0")/.."
hard=$(ulimit -Hn)
ulimit -n "$hard"
limit=$(ulimit -n)
want=${1:-100000}
# Leave room for the process's own files (database, listener, pipes).
max=$(( limit > 1000 ? limit - 1000 : limit / 2 ))
conns=$(( want < max ? want : max ))
echo "open-files limit: $limit (hard $hard); idle WebSocket connections: $conns" >&2
cargo build --release -p skingate-bench -p skingate-cli
./target/release/skingate-bench webhooks --events 20000 --rounds 3 --concurrency 32
./target/release/skingate-bench webhooks --events 20000 --rounds 3 --concurrency 64
./target/release/skingate-bench ws-idle --connections "$conns"
# The latency run holds both ends in one process: half the limit each.
per_side=$(( conns / 2 < 10000 ? conns / 2 : 10000 ))
./target/release/skingate-bench ws-latency --projects $(( per_side / 10 )) --per-project 10 --rate 1000 --seconds 10
