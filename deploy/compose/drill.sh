#!/usr/bin/env bash
# The three-city compose drill, as CI runs it (scripts/ci-drills.sh):
#   1. an order taken at one city is read at the other two;
#   2. one city's container is killed (SIGKILL): the other two keep taking orders;
#   3. it is started again and catches up (lists the order taken while it was down);
#   4. rolling upgrade (when CALLGRID_UPGRADE_BINARY is given): each node in turn is replaced
#      by a container of the upgraded binary on the same volume — it replays its old log and
#      serves the orders; once all run it, a new order (written in the new codec version) is
#      read everywhere and a restarted node replays the mixed log.
# Everything it starts — containers, the network, volumes, the image tags, temp files — is
# removed on exit, failed or not. The project name, tags and host ports are unique per run,
# so two drills (or a lab cluster from up.sh) run side by side.
#
#   CALLGRID_BINARY=target/release/callgrid deploy/compose/drill.sh
#   CALLGRID_UPGRADE_BINARY=target/codec-next/release/callgrid ... (optional, step 4)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
: "${CALLGRID_BINARY:?set CALLGRID_BINARY to a release callgrid binary (scripts/ci-drills.sh builds it)}"
upgrade_binary="${CALLGRID_UPGRADE_BINARY:-}"
for tool in docker curl jq python3; do
  command -v "$tool" >/dev/null || { echo "drill: $tool is not installed" >&2; exit 1; }
done

run_id="cgdrill-$(date +%s)-$$"
export CALLGRID_PROJECT="$run_id" CALLGRID_TAG="$run_id"
work="$(mktemp -d)"
export CALLGRID_CERTS="$work/certs"
started=$(date +%s)
say() { printf '[drill %3ds] %s\n' "$(( $(date +%s) - started ))" "$*"; }
compose() { "$here/compose.sh" "$@"; }

teardown() {
  local status=$?
  trap - EXIT INT TERM
  if [ "$status" -ne 0 ]; then
    say "FAILED (exit $status); the sites' last log lines:"
    compose logs --no-color --tail 30 2>/dev/null || true
  fi
  compose down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
  docker image rm -f "callgrid:$run_id" "callgrid:$run_id-next" >/dev/null 2>&1 || true
  rm -rf "$work"
  say "torn down (project $run_id)"
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# Free TCP ports on loopback for the three APIs.
read -r port_msk port_ekb port_nsk < <(python3 -c '
import socket
sockets = [socket.socket() for _ in range(3)]
for s in sockets: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in sockets])')
export CALLGRID_PORT_MSK="$port_msk" CALLGRID_PORT_EKB="$port_ekb" CALLGRID_PORT_NSK="$port_nsk"
declare -A url=([msk]="http://127.0.0.1:$port_msk" [ekb]="http://127.0.0.1:$port_ekb" [nsk]="http://127.0.0.1:$port_nsk")
declare -A token=()

say "image callgrid:$run_id from $CALLGRID_BINARY"
"$root/deploy/image/build.sh" "$run_id"
if [ -n "$upgrade_binary" ]; then
  CALLGRID_BINARY="$upgrade_binary" "$root/deploy/image/build.sh" "$run_id-next"
fi
"$here/certs.sh" "$CALLGRID_CERTS" "$CALLGRID_BINARY"

wait_ready() { # site [seconds]
  local site="$1" deadline=$(( $(date +%s) + ${2:-180} ))
  until curl -fsS -o /dev/null "${url[$site]}/readyz" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || { say "$site is not ready"; return 1; }
    sleep 1
  done
}
admin_token() { # site: the token the site printed once on its first start
  compose logs --no-color "$1" | sed -n 's/.*admin token (shown once, keep it): \([^ ]*\).*/\1/p' | tail -1
}
api() { # site method path [json]: prints the body, returns 0 on 2xx
  local site="$1" method="$2" path="$3" body="${4:-}" out status
  out="$(mktemp -p "$work")"
  status="$(curl -sS -o "$out" -w '%{http_code}' -X "$method" \
    -H "Authorization: Bearer ${token[$site]}" -H 'Content-Type: application/json' \
    ${body:+--data "$body"} "${url[$site]}$path" || echo 000)"
  cat "$out"
  rm -f "$out"
  [ "${status:0:1}" = 2 ]
}
eventually() { # seconds command...: retries until it succeeds
  local deadline=$(( $(date +%s) + $1 ))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 1
  done
}
order_json() {
  printf '{"caller":"%s","items":[{"sku":"NUR-200","name":"Nurofen 200 mg","quantity":2,"unit_price_minor":25050}],"fulfilment":{"pickup":{"pharmacy":"apteka-7"}},"payment":"card"}' "$1"
}
take_order() { # site caller: prints the new order's id
  local body
  body="$(api "$1" POST /api/v1/orders "$(order_json "$2")")" || return 1
  jq -er .order <<<"$body"
}
order_is() { # site id caller
  local body
  body="$(api "$1" GET "/api/v1/orders/$2")" || return 1
  [ "$(jq -r .caller <<<"$body")" = "$3" ]
}
expect_order_everywhere() { # id caller sites...
  local id="$1" caller="$2"
  shift 2
  for site in "$@"; do
    eventually 60 order_is "$site" "$id" "$caller" || { say "order $id is not readable at $site"; return 1; }
  done
}

say "up: msk ekb nsk (project $run_id, API ports $port_msk $port_ekb $port_nsk)"
compose up -d
for site in msk ekb nsk; do
  wait_ready "$site"
  token[$site]="$(admin_token "$site")"
  [ -n "${token[$site]}" ] || { say "no admin token in $site's log"; exit 1; }
done

say "1. an order taken at msk is read at ekb and nsk"
first="$(eventually 60 take_order msk +79160001001)"
expect_order_everywhere "$first" +79160001001 ekb nsk

say "2. msk killed: ekb and nsk keep taking orders"
compose kill msk >/dev/null
second="$(eventually 60 take_order ekb +79160001002)"
expect_order_everywhere "$second" +79160001002 nsk

say "3. msk started again: it catches up"
compose start msk >/dev/null
wait_ready msk
expect_order_everywhere "$second" +79160001002 msk
expect_order_everywhere "$first" +79160001001 msk

if [ -n "$upgrade_binary" ]; then
  override="$work/upgrade.yml"
  printf 'services:\n' >"$override"
  export CALLGRID_COMPOSE_OVERRIDE="$override"
  for site in nsk ekb msk; do
    say "4. rolling upgrade: $site replaced by callgrid:$run_id-next on its volume"
    printf '  %s:\n    image: callgrid:%s-next\n' "$site" "$run_id" >>"$override"
    compose up -d --no-deps "$site" >/dev/null
    wait_ready "$site"
    expect_order_everywhere "$first" +79160001001 "$site"
    expect_order_everywhere "$second" +79160001002 "$site"
  done
  say "4. all upgraded: an order in the new codec version is read everywhere"
  third="$(eventually 60 take_order nsk +79160001003)"
  expect_order_everywhere "$third" +79160001003 msk ekb
  say "4. ekb restarted: replays the log holding both versions"
  compose restart ekb >/dev/null
  wait_ready ekb
  expect_order_everywhere "$first" +79160001001 ekb
  expect_order_everywhere "$third" +79160001003 ekb
fi

say "passed"
