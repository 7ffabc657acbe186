#!/usr/bin/env bash
# The replicated write path through the API, side by side with etcd (the reference for
# replicated writes), with one HTTP client for both (bench/http_write_bench.py):
#   - callgrid: `callgrid cluster local` (three nodes on loopback, QUIC mutual TLS, RocksDB
#     with fsync), POST /api/v1/orders on the leader;
#   - etcd: three members on loopback (fsync on, default settings), PUT through its v3 HTTP
#     gateway;
#   - the client's own ceiling: the same client against bench/null_http_server.py (answers
#     201 at once, does nothing else): no server can be measured faster than this with this
#     client on this machine;
#   two clients send the same requests: the shared harness bench/http_write_bench.py (Python:
#   its threads share one interpreter lock, and it costs about as much CPU per write as the
#   servers it measures) and http-write-bench (Rust, bench/src/main.rs: one keep-alive
#   connection per thread, 25–50 µs of CPU per write), whose rows are labelled `_rust`; its
#   concurrent phase sends RUST_WRITES writes (default 20000: a second or more for each server;
#   the Python harness sends 2 × N);
#   one client sequential (p50/p99) and CONC clients concurrent (writes/s, p50/p99), the
#   systems alternating ROUNDS times in one sitting (the machine is shared and noisy). Both
#   callgrid and etcd acknowledge a write only once a quorum has it on disk.
#
#   scripts/bench-write-path.sh [N] [CONC] [ROUNDS]     defaults: 2000 64 3
#   CALLGRID_BINARY=target/release/callgrid (default) ETCD_BINARY=etcd
#   BENCH_BINARY=target/release/http-write-bench (default; cargo build --release -p callgrid-bench)
#   BENCH_CLIENTS="python rust" (default: both) RUST_WRITES=20000
# Needs python3 and etcd (Debian: apt-get install etcd-server). Leaves nothing running; data
# goes to a temp directory that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

n="${1:-2000}"
conc="${2:-64}"
rounds="${3:-3}"
binary="${CALLGRID_BINARY:-target/release/callgrid}"
etcd_binary="${ETCD_BINARY:-etcd}"
bench_binary="${BENCH_BINARY:-target/release/http-write-bench}"
bench_clients="${BENCH_CLIENTS:-python rust}"
rust_writes="${RUST_WRITES:-20000}"
case " $bench_clients " in
  *" rust "*) [ -x "$bench_binary" ] || { echo "bench-write-path: no client at $bench_binary (cargo build --release -p callgrid-bench)" >&2; exit 1; } ;;
esac
[ -x "$binary" ] || { echo "bench-write-path: no callgrid binary at $binary (cargo build --release -p callgrid-node)" >&2; exit 1; }
command -v "$etcd_binary" >/dev/null || { echo "bench-write-path: no etcd (apt-get install etcd-server)" >&2; exit 1; }

work="$(mktemp -d)"
etcd_pids=()
callgrid_dir=""
null_pid=""
stop_null() {
  if [ -n "$null_pid" ]; then
    kill "$null_pid" 2>/dev/null || true
    wait "$null_pid" 2>/dev/null || true
    null_pid=""
  fi
}
stop_etcd() {
  for pid in "${etcd_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${etcd_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  etcd_pids=()
}
stop_callgrid() {
  if [ -n "$callgrid_dir" ]; then
    "$binary" cluster local stop --dir "$callgrid_dir" >/dev/null 2>&1 || true
    callgrid_dir=""
  fi
}
cleanup() {
  stop_null
  stop_etcd
  stop_callgrid
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# measure TARGET URL [TOKEN]: each client in turn, rows appended to the results. The null
# target sends callgrid's requests.
measure() {
  local target="$1" url="$2" token="${3:-}" client
  for client in $bench_clients; do
    case "$client" in
      python)
        local mode="$target"
        [ "$target" = null ] && mode=callgrid
        python3 bench/http_write_bench.py "$mode" "$url" "$n" "$conc" ${token:+"$token"} \
          | sed "s/^$mode /$target /" | tee -a "$work/results" ;;
      rust)
        "$bench_binary" "$target" "$url" --requests "$n" --clients "$conc" \
          --concurrent-requests "$rust_writes" ${token:+--token "$token"} \
          | sed "s/^$target /${target}_rust /" | tee -a "$work/results" ;;
      *) echo "bench-write-path: unknown client $client (python, rust)" >&2; exit 1 ;;
    esac
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

run_etcd() {
  local round="$1" cluster="" ports=() peers=()
  for i in 1 2 3; do ports+=("$(free_port)"); peers+=("$(free_port)"); done
  for i in 0 1 2; do cluster+="${cluster:+,}e$i=http://127.0.0.1:${peers[$i]}"; done
  for i in 0 1 2; do
    "$etcd_binary" --name "e$i" --data-dir "$work/etcd-$round/e$i" \
      --listen-peer-urls "http://127.0.0.1:${peers[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${peers[$i]}" \
      --listen-client-urls "http://127.0.0.1:${ports[$i]}" --advertise-client-urls "http://127.0.0.1:${ports[$i]}" \
      --initial-cluster "$cluster" --initial-cluster-state new --log-level error >"$work/etcd-$round-e$i.log" 2>&1 &
    etcd_pids+=($!)
  done
  local url="http://127.0.0.1:${ports[0]}"
  for _ in $(seq 1 100); do
    curl -fs -X POST -d '{}' "$url/v3/maintenance/status" >/dev/null 2>&1 && break
    sleep 0.2
  done
  measure etcd "$url"
  stop_etcd
}

run_callgrid() {
  local round="$1"
  callgrid_dir="$work/callgrid-$round"
  "$binary" cluster local --detach --json --dir "$callgrid_dir" >"$work/local.json"
  # The leader's URL: POST /api/v1/orders is answered there without a forward.
  local url token
  read -r url token < <(python3 - "$work/local.json" <<'EOF'
import json, sys, time, urllib.request
local = json.load(open(sys.argv[1]))
token = local["token"]
for _ in range(100):
    for site in local["sites"]:
        request = urllib.request.Request(site["url"] + "/api/v1/cluster/overview",
                                         headers={"authorization": "Bearer " + token})
        try:
            overview = json.load(urllib.request.urlopen(request, timeout=2))
        except Exception:
            continue
        leader = overview.get("cluster", overview).get("leader")
        for candidate in local["sites"]:
            if candidate["node_id"] == leader:
                print(candidate["url"], token)
                sys.exit(0)
    time.sleep(0.2)
sys.exit("bench-write-path: no leader within 20 s")
EOF
)
  measure callgrid "$url" "$token"
  # Where the 1-client time goes, with the same client: the HTTP round trip alone, and the
  # whole API path without replication (an order refused by validation after the token check
  # and the JSON parse).
  python3 - "$url" "$token" <<'EOF2' | tee -a "$work/breakdown"
import http.client, json, sys, time
from urllib.parse import urlparse
u = urlparse(sys.argv[1]); token = sys.argv[2]
conn = http.client.HTTPConnection(u.hostname, u.port)
def timed(method, path, body, expect):
    samples = []
    for _ in range(1000):
        t = time.perf_counter()
        conn.request(method, path, body, {"content-type": "application/json", "authorization": f"Bearer {token}"})
        r = conn.getresponse(); r.read()
        samples.append(time.perf_counter() - t)
        assert r.status == expect, r.status
    return sorted(samples)[len(samples) // 2] * 1e3
bad = json.dumps({"caller": "not a phone", "items": [], "fulfilment": {"pickup": {"pharmacy": "msk-001"}}, "payment": "card"})
print(f"callgrid breakdown: GET /healthz p50={timed('GET', '/healthz', None, 200):.3f} ms "
      f"POST /api/v1/orders refused before replication p50={timed('POST', '/api/v1/orders', bad, 400):.3f} ms")
EOF2
  stop_callgrid
}

run_null() {
  local port
  port="$(free_port)"
  python3 bench/null_http_server.py "$port" &
  null_pid=$!
  for _ in $(seq 1 100); do
    curl -fs -X POST -d '{}' "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  # The callgrid request (same bodies), against a server that does nothing.
  measure null "http://127.0.0.1:$port" null-token
  stop_null
}

for round in $(seq 1 "$rounds"); do
  echo "--- round $round of $rounds"
  run_callgrid "$round"
  run_etcd "$round"
  run_null
done

cat "$work/breakdown"
echo "--- medians over $rounds rounds (1 client p50 ms, $conc clients writes/s and p99 ms)"
python3 - "$work/results" "$conc" <<'EOF'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\w+) (\d+) clients?: p50=([\d.]+) ms p99=([\d.]+) ms ops/s=(\d+)", line)
    if m:
        rows.setdefault((m[1], m[2]), []).append((float(m[3]), float(m[4]), float(m[5])))
def med(system, clients, column):
    return statistics.median(r[column] for r in rows[(system, clients)])
conc = sys.argv[2]
for client, suffix in (("python harness", ""), ("rust client", "_rust")):
    if ("callgrid" + suffix, "1") not in rows:
        continue
    print(f"-- {client}")
    c, e, z = "callgrid" + suffix, "etcd" + suffix, "null" + suffix
    for system in (c, e, z):
        print(f"{system:14} 1 client p50 {med(system, '1', 0):.2f} ms p99 {med(system, '1', 1):.2f} ms | "
              f"{conc} clients {med(system, conc, 2):.0f} writes/s p50 {med(system, conc, 0):.2f} ms "
              f"p99 {med(system, conc, 1):.2f} ms")
    print(f"callgrid/etcd: 1-client p50 {med(c, '1', 0) / med(e, '1', 0):.2f}x, "
          f"{conc}-client writes/s {med(c, conc, 2) / med(e, conc, 2):.2f}x, "
          f"{conc}-client p99 {med(c, conc, 1) / med(e, conc, 1):.2f}x")
    print(f"the client's ceiling (null server): {conc}-client writes/s {med(z, conc, 2):.0f} = "
          f"{med(z, conc, 2) / med(e, conc, 2):.2f}x etcd's, 1-client p50 {med(z, '1', 0):.2f} ms")
EOF
