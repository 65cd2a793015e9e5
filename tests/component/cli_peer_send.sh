#!/usr/bin/env bash
# `diampool peer` and `diampool send` end to end on loopback: peers started as processes (the
# port read from their first line), answers as AVP trees and as JSON, the exit status of each
# kind of outcome (2xxx, error answer, transport failure, bad arguments), the peer's event
# lines, and its orderly stop on SIGTERM / SIGINT (DPR to its clients, summary, status 0).
set -uo pipefail
diampool=$1
work=$(mktemp -d)
peer_pids=()
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# wait_pid PID: waits at most 10 s for the process to end (then KILLs it, a failure) and sets
# `status` to its exit status.
wait_pid() {
  local pid=$1
  for _ in $(seq 1 200); do # 200 x 50 ms = 10 s
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2> /dev/null; then
    fail "process $pid still running after 10 s"
    kill -KILL "$pid" 2> /dev/null || true
  fi
  wait "$pid" 2> /dev/null
  status=$?
}
# stop_pid PID SIGNAL: sends SIGNAL, then wait_pid.
stop_pid() {
  kill "-$2" "$1" 2> /dev/null || true
  wait_pid "$1"
}
cleanup() {
  for pid in "${peer_pids[@]}"; do
    if kill -0 "$pid" 2> /dev/null; then stop_pid "$pid" TERM; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

# wait_for_line FILE PATTERN: true once a line of FILE matches PATTERN (at most 10 s).
wait_for_line() {
  local file=$1 pattern=$2
  for _ in $(seq 1 500); do # 500 x 20 ms = 10 s
    grep -q -- "$pattern" "$file" 2> /dev/null && return 0
    sleep 0.02
  done
  return 1
}

# start_peer NAME ARGS...: starts `diampool peer --listen 127.0.0.1:0 ARGS` with its output in
# $work/NAME.out; reads its address from the first line into ${addr[NAME]} and its PID into
# ${pid[NAME]}.
declare -A addr pid
start_peer() {
  local name=$1
  shift
  "$diampool" peer --listen 127.0.0.1:0 "$@" > "$work/$name.out" 2> "$work/$name.err" &
  pid[$name]=$!
  peer_pids+=("$!")
}
read_address() {
  local name=$1 first
  if ! wait_for_line "$work/$name.out" "^listening on "; then
    fail "peer $name printed no 'listening on' line: $(cat "$work/$name.out" "$work/$name.err")"
    return 1
  fi
  first=$(head -n 1 "$work/$name.out")
  [[ "$first" =~ ^listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]] || fail "peer $name first line: '$first'"
  [ "${BASH_REMATCH[1]:-0}" != 0 ] || fail "peer $name listens on port 0"
  addr[$name]=${first#listening on }
}

# expect CODE PATTERN -- command...: exit status CODE and PATTERN in stdout+stderr; the
# output is left in $out.
expect() {
  local code=$1 pattern=$2
  shift 3
  local rc
  out=$("$@" 2>&1)
  rc=$?
  [ "$rc" = "$code" ] || fail "'$*' exited $rc, expected $code: $out"
  grep -q -- "$pattern" <<< "$out" || fail "'$*' output lacks '$pattern': $out"
}

start_peer ok --echo-avp 1 --echo-avp 55 --echo-avp 25 --echo-avp 257
start_peer busy --result-code 5012
start_peer refuse --cea-result-code 5010
start_peer silent --drop-every 1
for name in ok busy refuse silent; do
  read_address "$name" || exit 1
done
send=("$diampool" send --log-level off)

# ---- answers ----------------------------------------------------------------------------------

expect 0 "Result-Code (268) \[-M-\] Unsigned32: 2001 DIAMETER_SUCCESS" -- \
  "${send[@]}" --to "${addr[ok]}" --app 4 --cmd 272 --origin-host cli-text.example.com \
  --avp User-Name=alice --avp Event-Timestamp=2024-01-02T03:04:05+01:00 \
  --avp 25:OctetString=hex:0102ff --avp Host-IP-Address=::1
grep -q '^Command 272 Answer  flags=-P-- app=4 ' <<< "$out" || fail "answer header line: $out"
grep -q 'Session-Id (263) \[-M-\] UTF8String: "cli-text.example.com;[0-9]*;[0-9]*"' <<< "$out" ||
  fail "no Session-Id <origin-host>;<seconds>;<random> in: $out"
grep -q 'User-Name (1) \[-M-\] UTF8String: "alice"' <<< "$out" || fail "User-Name: $out"
grep -q 'Event-Timestamp (55) \[-M-\] Time: 2024-01-02T02:04:05Z' <<< "$out" ||
  fail "Event-Timestamp: $out"
grep -q 'Class (25) \[-M-\] OctetString: 0102ff' <<< "$out" || fail "Class: $out"
grep -q 'Host-IP-Address (257) \[-M-\] Address: ::1' <<< "$out" || fail "Host-IP-Address: $out"

# JSON: well formed (quotes, backslashes, newlines and UTF-8 in an echoed value) and complete.
"${send[@]}" --to "${addr[ok]}" --app 4 --cmd 272 --origin-host cli-json.example.com --json \
  --avp $'User-Name=a"b\\c\nd\xc3\xa9\x01' > "$work/ok.json" 2> "$work/ok.json.err"
rc=$?
[ "$rc" = 0 ] || fail "send --json exited $rc: $(cat "$work/ok.json.err")"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["command_code"] == 272, d
assert d["application_id"] == 4, d
assert d["flags"] == {"R": False, "P": True, "E": False, "T": False}, d["flags"]
assert isinstance(d["hop_by_hop"], int) and isinstance(d["end_to_end"], int), d
assert d["result_code"] == 2001, d
avps = {a["name"]: a for a in d["avps"]}
sid = d["avps"][0]
assert sid["name"] == "Session-Id" and sid["code"] == 263 and sid["vendor"] == 0, sid
parts = sid["value"].split(";")
assert parts[0] == "cli-json.example.com" and len(parts) == 3, sid
assert all(p.isdigit() for p in parts[1:]), sid
rc = avps["Result-Code"]
assert rc["value"] == 2001 and rc["value_name"] == "DIAMETER_SUCCESS", rc
assert rc["flags"] == {"V": False, "M": True, "P": False}, rc
assert avps["User-Name"]["value"] == "a\"b\\c\nd\u00e9\u0001", avps["User-Name"]
assert avps["Origin-Host"]["value"] == "peer.example.net", avps
' "$work/ok.json" || fail "send --json output: $(cat "$work/ok.json")"

# A command of the dictionary by name: its application (3) comes with it; Acct-Application-Id
# given with --avp replaces the default Auth-Application-Id.
expect 0 "ACA Accounting-Answer  flags=-P-- app=3" -- \
  "${send[@]}" --to "${addr[ok]}" --cmd ACR --origin-host cli-acr.example.com \
  --avp Accounting-Record-Type=EVENT_RECORD --avp Accounting-Record-Number=0 \
  --avp Acct-Application-Id=3

# ---- error answers and transport failures -----------------------------------------------------

expect 3 "Result-Code 5012 DIAMETER_UNABLE_TO_COMPLY" -- \
  "${send[@]}" --to "${addr[busy]}" --app 4 --cmd 272
"${send[@]}" --to "${addr[busy]}" --app 4 --cmd 272 --json > "$work/busy.json" 2> /dev/null
rc=$?
[ "$rc" = 3 ] || fail "send --json to the 5012 peer exited $rc"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["result_code"] == 5012 and d["flags"]["E"] is False, d
' "$work/busy.json" || fail "send --json 5012 output: $(cat "$work/busy.json")"

expect 4 "capabilities exchange (CER/CEA) failed (${addr[refuse]}): CEA Result-Code 5010" -- \
  "${send[@]}" --to "${addr[refuse]}" --app 4 --cmd 272
expect 4 "diampool send: connection refused (127.0.0.1:1)" -- \
  "${send[@]}" --to 127.0.0.1:1 --app 4 --cmd 272
expect 4 "diampool send: request timed out after 0.3 s (${addr[silent]})" -- \
  "${send[@]}" --to "${addr[silent]}" --app 4 --cmd 272 --timeout 0.3

# ---- bad arguments: exit 2 before any traffic -------------------------------------------------

to=(--to "${addr[ok]}" --app 4 --cmd 272)
expect 2 "unknown AVP name 'No-Such-Avp'" -- "${send[@]}" "${to[@]}" --avp No-Such-Avp=1
expect 2 "did you mean 'User-Name'" -- "${send[@]}" "${to[@]}" --avp user-name=x
expect 2 "bad value 'abc' for Result-Code (Unsigned32)" -- \
  "${send[@]}" "${to[@]}" --avp Result-Code=abc
expect 2 "bad value 'yesterday' for Event-Timestamp (Time)" -- \
  "${send[@]}" "${to[@]}" --avp Event-Timestamp=yesterday
expect 2 "bad value '1.2.3' for Host-IP-Address (Address)" -- \
  "${send[@]}" "${to[@]}" --avp Host-IP-Address=1.2.3
expect 2 "bad value 'NO_SUCH' for Accounting-Record-Type (Enumerated)" -- \
  "${send[@]}" "${to[@]}" --avp Accounting-Record-Type=NO_SUCH
expect 2 "Proxy-Info is a Grouped AVP" -- "${send[@]}" "${to[@]}" --avp Proxy-Info=x
expect 2 "expected NAME=VALUE" -- "${send[@]}" "${to[@]}" --avp User-Name
expect 2 "AVP code 9999 is not in the dictionary" -- "${send[@]}" "${to[@]}" --avp 9999=1
expect 2 "invalid --to address '127.0.0.1'" -- "${send[@]}" --to 127.0.0.1 --app 4 --cmd 272
expect 2 "invalid --to address '\[::1'" -- "${send[@]}" --to '[::1' --app 4 --cmd 272
expect 2 "invalid --to address '127.0.0.1:70000'" -- \
  "${send[@]}" --to 127.0.0.1:70000 --app 4 --cmd 272
expect 2 "--to is required" -- "${send[@]}" --app 4 --cmd 272
expect 2 "--cmd is required" -- "${send[@]}" --to "${addr[ok]}" --app 4
expect 2 "--app 'four'" -- "${send[@]}" --to "${addr[ok]}" --app four --cmd 272
expect 2 "--timeout '-1'" -- "${send[@]}" "${to[@]}" --timeout -1

# ---- --metrics-listen: the peer's counters scraped over HTTP in the Prometheus format ----------

start_peer metered --metrics-listen 127.0.0.1:0
read_address metered
if wait_for_line "$work/metered.out" "^metrics on http://"; then
  url=$(sed -n 's/^metrics on //p' "$work/metered.out" | head -n 1)
  "${send[@]}" --to "${addr[metered]}" --app 4 --cmd 272 --origin-host cli-metrics.example.com \
    > /dev/null 2>&1 || fail "send to the metered peer exited $?"
  scrape=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$url") ||
    fail "no answer from $url"
  grep -q '^# TYPE diampool_peer_requests_total counter$' <<< "$scrape" ||
    fail "no diampool_peer_requests_total family in: $scrape"
  grep -q '^diampool_peer_requests_total 1$' <<< "$scrape" ||
    fail "the metered peer does not count the request: $(grep requests <<< "$scrape")"
  grep -q '^diampool_peer_cers_total 1$' <<< "$scrape" || fail "no CER counted"
else
  fail "the metered peer printed no 'metrics on' line: $(cat "$work/metered.out" "$work/metered.err")"
fi
stop_pid "${pid[metered]}" TERM

# ---- bad peer options -------------------------------------------------------------------------

expect 2 "invalid --listen address '127.0.0.1'" -- "$diampool" peer --listen 127.0.0.1
expect 1 "cannot listen on ${addr[ok]}" -- "$diampool" peer --listen "${addr[ok]}"
expect 2 "--listen is required" -- "$diampool" peer
expect 2 "not expected: --no-such-option" -- \
  "$diampool" peer --listen 127.0.0.1:0 --no-such-option

# ---- a peer stopped while a client waits: DPR to the client, which fails its request ----------

"${send[@]}" --to "${addr[silent]}" --app 4 --cmd 272 --timeout 20 \
  > "$work/waiting.out" 2>&1 &
waiting_pid=$!
# The second connection of `silent` (the first one timed out above) has its CER handled.
wait_for_line "$work/silent.out" "^connection 2 CER from" || fail "no second CER: $(cat "$work/silent.out")"
stop_pid "${pid[silent]}" TERM
[ "$status" = 0 ] || fail "peer silent exited $status on SIGTERM"
wait_pid "$waiting_pid" # the DPR ends its request
[ "$status" = 4 ] || fail "send waiting on the stopped peer exited $status: $(cat "$work/waiting.out")"
grep -q "(${addr[silent]})" "$work/waiting.out" || fail "send output: $(cat "$work/waiting.out")"
grep -q "^connection 2 closed: DPA received" "$work/silent.out" ||
  fail "silent did not close after DPR/DPA: $(cat "$work/silent.out")"
grep -q "^  dprs_sent 1$" "$work/silent.out" || fail "silent summary: $(cat "$work/silent.out")"

# ---- event lines and the summary on SIGTERM / SIGINT ------------------------------------------

stop_pid "${pid[ok]}" TERM
[ "$status" = 0 ] || fail "peer ok exited $status on SIGTERM"
log=$(cat "$work/ok.out")
for pattern in \
  "^connection 1 accepted from 127\.0\.0\.1:[0-9]*$" \
  "^connection 1 CER from cli-text\.example\.com: CEA 2001 DIAMETER_SUCCESS$" \
  "^connection 1 DPR from cli-text\.example\.com, Disconnect-Cause 0 REBOOTING$" \
  "^connection 1 closed: closed by the client (cli-text\.example\.com)$" \
  "^connection 2 CER from cli-json\.example\.com: CEA 2001" \
  "^received SIGTERM, stopping$" \
  "^summary:$" \
  "^  connections_accepted 3$" \
  "^  connections_closed 3$" \
  "^  cers 3$" \
  "^  requests 3$" \
  "^  answers_sent 3$" \
  "^  dprs 3$"; do
  grep -q -- "$pattern" <<< "$log" || fail "peer ok output lacks '$pattern': $log"
done
[ "$(grep -c '^connection [0-9]* closed: ' <<< "$log")" = 3 ] || fail "closed lines: $log"
[ -s "$work/ok.err" ] && fail "peer ok wrote to stderr: $(cat "$work/ok.err")"

stop_pid "${pid[busy]}" INT
[ "$status" = 0 ] || fail "peer busy exited $status on SIGINT"
grep -q "^received SIGINT, stopping$" "$work/busy.out" || fail "busy: $(cat "$work/busy.out")"
grep -q "^  requests 2$" "$work/busy.out" || fail "busy summary: $(cat "$work/busy.out")"

stop_pid "${pid[refuse]}" TERM
[ "$status" = 0 ] || fail "peer refuse exited $status on SIGTERM"
grep -q "^connection 1 CER from diampool\.example\.com: CEA 5010 DIAMETER_NO_COMMON_APPLICATION$" \
  "$work/refuse.out" || fail "refuse: $(cat "$work/refuse.out")"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "cli_peer_send: all checks passed"
