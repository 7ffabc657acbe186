#!/usr/bin/env bash
# Runs every command block of deploy/RUNBOOK.md, in order, against local `callgrid`
# processes, so the runbook cannot rot. The drill plays the world around the blocks:
#   - hosts: msk, ekb, nsk (nodes 1-3), later kzn; each is a directory standing for the
#     host's file system ($work/hosts/<host>/etc/callgrid, /var/lib/callgrid, ...), and a
#     block marked `@host` runs with that host's CONFIG, DATA, CERTS, BACKUPS and API;
#   - shims on PATH for what a host has and a laptop lacks: `systemctl` and `journalctl`
#     (one `callgrid node` process per host), `sudo` (runs the command), `scp` (host:/path
#     is the host's directory); `callgrid` is the binary under test;
#   - the failures the sections are about, injected before them: kill -9 (node down), SIGSTOP
#     (cut off: the node stops answering, as from the other side of a partition), a deleted
#     data directory (disk lost); and a check after each section.
# Host names in blocks (`ekb.callgrid.internal:7080`) are mapped to the local ports.
#
#   CALLGRID_BINARY=target/release/callgrid deploy/runbook-drill.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
binary="${CALLGRID_BINARY:-$root/target/debug/callgrid}"
[ -x "$binary" ] || { echo "runbook drill: no callgrid binary at $binary (set CALLGRID_BINARY)" >&2; exit 1; }
binary="$(readlink -f "$binary")"
for tool in curl jq openssl python3 sha256sum; do
  command -v "$tool" >/dev/null || { echo "runbook drill: $tool is not installed" >&2; exit 1; }
done

work="$(mktemp -d)"
# Blocks' own temp dirs (mktemp -d) land inside the drill's directory and go with it.
export TMPDIR="$work/tmp"
mkdir -p "$TMPDIR"
started=$(date +%s)
say() { printf '[runbook %3ds] %s\n' "$(( $(date +%s) - started ))" "$*"; }
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pidfile in "$work"/hosts/*/run/callgrid.pid; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    kill -CONT "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for log in "$work"/hosts/*/var/log/callgrid.log; do
      [ -f "$log" ] && { echo "--- $log"; tail -n 15 "$log"; }
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the world: ports, CA, hosts, shims --------------------------------------------------
declare -A node_id=([msk]=1 [ekb]=2 [nsk]=3 [kzn]=4) http_port=() raft_port=()
for host in msk ekb nsk kzn; do
  read -r http_port[$host] raft_port[$host] < <(python3 -c '
import socket
t = socket.socket(); t.bind(("127.0.0.1", 0))
u = socket.socket(type=socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
print(t.getsockname()[1], u.getsockname()[1])')
done
TOKEN="drill-admin-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
token_sha256="$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)"
export TOKEN
export MSK="http://127.0.0.1:${http_port[msk]}" EKB="http://127.0.0.1:${http_port[ekb]}"
export NSK="http://127.0.0.1:${http_port[nsk]}" KZN="http://127.0.0.1:${http_port[kzn]}"
export CA_DIR="$work/ca" DRILL_HOSTS="$work/hosts"

shims="$work/bin"
mkdir -p "$shims"
ln -s "$binary" "$shims/callgrid"
cat >"$shims/sudo" <<'EOF'
#!/usr/bin/env bash
exec "$@"
EOF
cat >"$shims/scp" <<'EOF'
#!/usr/bin/env bash
# scp [-r] SOURCE... TARGET, where host:/path is that host's directory in the drill.
map() { case "$1" in *:/*) printf '%s/%s%s' "$DRILL_HOSTS" "${1%%:*}" "${1#*:}" ;; *) printf '%s' "$1" ;; esac; }
arguments=()
for argument in "$@"; do
  case "$argument" in -r) arguments+=(-rL) ;; -*) ;; *) arguments+=("$(map "$argument")") ;; esac
done
exec cp "${arguments[@]}"
EOF
cat >"$shims/systemctl" <<'EOF'
#!/usr/bin/env bash
# systemctl start|stop|restart|status|is-active callgrid, on the host $DRILL_HOST.
set -euo pipefail
root="$DRILL_HOSTS/$DRILL_HOST"
pidfile="$root/run/callgrid.pid"
# Alive and not a zombie (a killed node is not our child: whoever reaps orphans may be slow).
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]; }
running() { [ -f "$pidfile" ] && alive "$(cat "$pidfile")"; }
stop() {
  running || return 0
  local pid; pid="$(cat "$pidfile")"
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid"
  for _ in $(seq 1 450); do alive "$pid" || { rm -f "$pidfile"; return 0; }; sleep 0.1; done
  kill -KILL "$pid"; rm -f "$pidfile"
}
start() {
  running && return 0
  mkdir -p "$root/run" "$root/var/log"
  setsid callgrid node --config "$root/etc/callgrid/site.toml" >>"$root/var/log/callgrid.log" 2>&1 < /dev/null &
  echo $! >"$pidfile"
}
action=""
for argument in "$@"; do case "$argument" in -*) ;; callgrid|callgrid.service) ;; *) action="$argument" ;; esac; done
case "$action" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status|is-active)
    if running; then echo "callgrid.service: active (running), pid $(cat "$pidfile")"; else echo "callgrid.service: inactive (dead)"; exit 3; fi ;;
  *) echo "systemctl shim: unsupported: $*" >&2; exit 1 ;;
esac
EOF
cat >"$shims/journalctl" <<'EOF'
#!/usr/bin/env bash
lines=20
while [ $# -gt 0 ]; do case "$1" in -n) lines="$2"; shift 2 ;; *) shift ;; esac; done
tail -n "$lines" "$DRILL_HOSTS/$DRILL_HOST/var/log/callgrid.log" 2>/dev/null || true
EOF
chmod +x "$shims"/*
export PATH="$shims:$PATH"

callgrid certs init --dir "$CA_DIR" >/dev/null
host_dirs() { # host: creates the host's directories
  local r="$work/hosts/$1"
  mkdir -p "$r/etc/callgrid/certs" "$r/var/lib/callgrid" "$r/var/backups/callgrid" "$r/run" "$r/var/log"
}
write_config() { # host peers...: the host's site.toml (extra lines from stdin)
  local host="$1" r="$work/hosts/$1"
  shift
  {
    printf '[site]\nid = "%s"\ncity = "%s"\nnumber = %d\ndata_dir = "%s"\n\n' \
      "$host" "$host" "${node_id[$host]}" "$r/var/lib/callgrid"
    printf '[http]\nlisten = "127.0.0.1:%d"\ndrain_s = 1\n\n' "${http_port[$host]}"
    printf '[cluster]\nnode_id = %d\nlisten = "127.0.0.1:%d"\ncertificates_dir = "%s"\n' \
      "${node_id[$host]}" "${raft_port[$host]}" "$r/etc/callgrid/certs"
    # msk, ekb and nsk start the cluster; kzn joins it later.
    if [ "${node_id[$host]}" -le 3 ]; then echo 'bootstrap = "new"'; else echo 'bootstrap = "join"'; fi
    cat
    for peer in "$@"; do
      printf '[[cluster.peers]]\nid = %d\naddress = "127.0.0.1:%d"\n' "${node_id[$peer]}" "${raft_port[$peer]}"
    done
    printf '\n[[tokens]]\nname = "sre"\nrole = "admin"\nsha256 = "%s"\n' "$token_sha256"
  } >"$r/etc/callgrid/site.toml"
}
issue() { # host
  local host="$1" id="${node_id[$1]}" certs="$work/hosts/$1/etc/callgrid/certs"
  callgrid certs issue --dir "$CA_DIR" --node "$id" >/dev/null
  cp "$CA_DIR/ca.pem" "$CA_DIR/node-$id.pem" "$CA_DIR/node-$id.key" "$certs/"
  rm "$CA_DIR/node-$id.key"
}
on() { # host command...: runs on the host (its environment and systemctl)
  local host="$1" r="$work/hosts/$1"
  shift
  DRILL_HOST="$host" CONFIG="$r/etc/callgrid/site.toml" DATA="$r/var/lib/callgrid" \
    CERTS="$r/etc/callgrid/certs" BACKUPS="$r/var/backups/callgrid" \
    API="http://127.0.0.1:${http_port[$host]}" "$@"
}
pid_of() { cat "$work/hosts/$1/run/callgrid.pid"; }
api() { curl -fsS --max-time 10 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
wait_ready() { # host
  for _ in $(seq 1 120); do
    curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:${http_port[$1]}/readyz" 2>/dev/null && return 0
    sleep 0.5
  done
  say "$1 is not ready"; return 1
}
leader_id() { api "$MSK/api/v1/cluster/status" | jq -r .leader; }
order() { # url caller
  api -X POST "$1/api/v1/orders" --data "{\"caller\":\"$2\",\"items\":[{\"sku\":\"NUR-200\",\"name\":\"Nurofen 200 mg\",\"quantity\":1,\"unit_price_minor\":25050}],\"fulfilment\":{\"pickup\":{\"pharmacy\":\"apteka-7\"}},\"payment\":\"card\"}" | jq -er .order
}
eventually() { local deadline=$(( $(date +%s) + $1 )); shift; until "$@"; do [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 1; done; }

for host in msk ekb nsk; do host_dirs "$host"; issue "$host"; done
write_config msk ekb nsk </dev/null
write_config ekb msk nsk </dev/null
write_config nsk msk ekb </dev/null
for host in msk ekb nsk; do on "$host" systemctl start callgrid; done
for host in msk ekb nsk; do wait_ready "$host"; done
first_order="$(eventually 60 order "$MSK" +79160009001)"
say "three sites up, order $first_order taken"

# --- the runbook's blocks ------------------------------------------------------------------
blocks="$work/blocks"
python3 - "$here/RUNBOOK.md" "$blocks" <<'EOF'
import os, re, sys
text = open(sys.argv[1]).read()
os.makedirs(sys.argv[2])
section, count = None, 0
for match in re.finditer(r"^## (\d+)\. [^\n]*$|^```sh( @\w+)?\n(.*?)^```$", text, re.S | re.M):
    if match.group(1) is not None:
        section = int(match.group(1)); number = 0
        continue
    if section is None:
        sys.exit("a command block before the first section")
    number += 1; count += 1
    host = (match.group(2) or " @workstation")[2:]
    with open(f"{sys.argv[2]}/{section:02d}-{number:02d}-{host}.sh", "w") as f:
        f.write(match.group(3))
print(f"{count} blocks", file=sys.stderr)
EOF
prelude="$(cat "$blocks"/00-01-workstation.sh)"

run_section() { # number: every block of the section, in order
  local file host code
  for file in "$blocks/$(printf '%02d' "$1")"-*.sh; do
    host="$(basename "$file" .sh)"; host="${host#*-*-}"
    code="$(cat "$file")"
    # Host names of the example cluster → the drill's local cluster ports.
    for h in msk ekb nsk kzn; do code="${code//$h.callgrid.internal:7080/127.0.0.1:${raft_port[$h]}}"; done
    say "§$1 $(basename "$file") on $host"
    if [ "$host" = workstation ]; then
      bash -euo pipefail -c "$prelude"$'\n'"$code"
    elif [ "$host" = ca ]; then
      DRILL_HOST=ca bash -euo pipefail -c "$code"
    else
      on "$host" bash -euo pipefail -c "$code"
    fi
  done
}

section() { # number title
  say "=== §$1 $2"
}

section 1 "reading the state"
run_section 1

section 2 "a node is down (kill -9 ekb)"
kill -KILL "$(pid_of ekb)"
second_order="$(eventually 60 order "$NSK" +79160009002)"
run_section 2
eventually 60 bash -c "curl -fsS -H 'Authorization: Bearer $TOKEN' $EKB/api/v1/orders/$second_order >/dev/null"

section 3 "a city is cut off (ekb paused)"
kill -STOP "$(pid_of ekb)"
run_section 3
kill -CONT "$(pid_of ekb)"
wait_ready ekb

section 4 "move the leader away"
if [ "$(leader_id)" = 3 ]; then api -X POST "$MSK/api/v1/cluster/leader" --data '{"id": 1}' >/dev/null || true; fi
run_section 4
wait_ready msk
[ "$(leader_id)" = 3 ] || { say "leader is $(leader_id), not 3"; exit 1; }

section 5 "rotate ekb's certificate"
old_serial="$(openssl x509 -noout -serial -in "$work/hosts/ekb/etc/callgrid/certs/node-2.pem")"
run_section 5
new_serial="$(openssl x509 -noout -serial -in "$work/hosts/ekb/etc/callgrid/certs/node-2.pem")"
[ "$old_serial" != "$new_serial" ] || { say "ekb's certificate did not change"; exit 1; }
wait_ready ekb
third_order="$(eventually 60 order "$EKB" +79160009003)"

section 6 "take a backup (nsk)"
run_section 6
[ -f "$work/hosts/nsk/var/backups/callgrid/latest/manifest.json" ]

section 7 "disk lost: replace ekb (node 2 → 5)"
kill -KILL "$(pid_of ekb)"
rm -rf "$work/hosts/ekb/var/lib/callgrid" && mkdir -p "$work/hosts/ekb/var/lib/callgrid"
node_id[ekb]=5
run_section 7
status="$(api "$EKB/api/v1/cluster/status")"
jq -e '(.voters | index(5)) and (.voters | index(2) | not)' <<<"$status" >/dev/null ||
  { say "ekb is not voter 5: $status"; exit 1; }
api "$EKB/api/v1/orders/$third_order" >/dev/null

section 8 "check a backup restores"
run_section 8

section 9 "full cluster restart"
run_section 9
for host in msk ekb nsk; do wait_ready "$host"; done
for id in "$first_order" "$second_order" "$third_order"; do api "$MSK/api/v1/orders/$id" >/dev/null; done

section 10 "add kzn as a learner and promote it"
host_dirs kzn
printf 'learners = [4]\n' | write_config kzn msk nsk ekb
run_section 10
status="$(api "$KZN/api/v1/cluster/status")"
jq -e '.voters | index(4)' <<<"$status" >/dev/null || { say "kzn is not a voter: $status"; exit 1; }
for id in "$first_order" "$second_order" "$third_order"; do api "$KZN/api/v1/orders/$id" >/dev/null; done

section 11 "drain and undrain msk"
run_section 11

section 12 "cluster-wide tokens"
run_section 12

section 13 "majority lost: msk alone becomes the cluster"
for host in ekb nsk kzn; do kill -KILL "$(pid_of "$host")"; done
run_section 13
wait_ready msk
status="$(api "$MSK/api/v1/cluster/status")"
jq -e '.voters == [1]' <<<"$status" >/dev/null || { say "msk is not the only voter: $status"; exit 1; }
for id in "$first_order" "$second_order" "$third_order"; do api "$MSK/api/v1/orders/$id" >/dev/null; done
fourth_order="$(eventually 60 order "$MSK" +79160009004)"
say "msk alone kept every order and took $fourth_order"

say "passed: every section of RUNBOOK.md ran"
