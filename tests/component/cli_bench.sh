#!/usr/bin/env bash
# `diampool bench` end to end: the load generator against its own embedded peers (a child
# process) and against a refused port. Checks counts, the JSON report, connections per peer,
# that --duration ends the run, and the exit status and message of each kind of bad input.
# No timing is asserted beyond "the run lasted at least --duration": the machine is shared.
set -uo pipefail
diampool=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Every run is bounded: a hung bench fails the test instead of stalling it.
bench() { timeout 120 "$diampool" bench "$@"; }

# json_check FILE PYTHON-EXPRESSION...: each expression, with `j` the JSON object, is true.
json_check() {
  local file=$1
  shift
  python3 - "$file" "$@" <<'EOF' || fail "JSON checks on $file: $(head -c 2000 "$file")"
import json, sys
with open(sys.argv[1]) as f:
    text = f.read()
j = json.loads(text)  # the whole of stdout is one JSON object
bad = [e for e in sys.argv[2:] if not eval(e, {"j": j})]
for e in bad:
    print("  not true:", e)
sys.exit(1 if bad else 0)
EOF
}

# expect CODE PATTERN -- command...: exit status CODE and PATTERN in stdout+stderr.
expect() {
  local code=$1 pattern=$2
  shift 3
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  [ "$rc" = "$code" ] || fail "'$*' exited $rc, expected $code: $out"
  grep -q -- "$pattern" <<<"$out" || fail "'$*' output lacks '$pattern': $out"
}

# 1. 20,000 requests, 64 in flight, one embedded peer: all answered with 2001.
bench --requests 20000 --inflight 64 --json > "$work/one.json" 2> "$work/one.err"
rc=$?
[ "$rc" = 0 ] || fail "bench --requests 20000 exited $rc: $(cat "$work/one.err")"
json_check "$work/one.json" \
  'j["requests"] == 20000' 'j["answers"] == 20000' 'j["answers_2001"] == 20000' \
  'j["errors"] == 0' 'j["errors_by_kind"] == {}' 'j["diameter_errors"] == 0' \
  'j["latency_us"]["count"] == 20000' \
  '0 < j["latency_us"]["p50"] <= j["latency_us"]["p90"] <= j["latency_us"]["p99"] <= j["latency_us"]["p99_9"] <= j["latency_us"]["max"]' \
  'j["latency_us"]["min"] <= j["latency_us"]["mean"] <= j["latency_us"]["max"]' \
  'j["answers_per_second"] > 0' 'j["client_cpu_seconds"] > 0' 'j["peer_cpu_seconds"] > 0' \
  'j["embedded_peers"] == 1' 'len(j["addresses"]) == 1' 'j["inflight"] == 64' \
  'j["pool"]["connections_created"] == 1' 'j["pool"]["failed_establishments"] == 0' \
  'j["pool"]["reconnect_attempts"] == 0' 'j["pool"]["unmatched_answers"] == 0' \
  'j["pool"]["messages_received"] >= 20000' 'j["pool"]["bytes_sent"] >= 20000 * j["request_bytes"]'

# 2. Three peers: one connection each, the load spread over them.
bench --peers 3 --requests 3000 --inflight 16 --json > "$work/three.json" 2> "$work/three.err"
rc=$?
[ "$rc" = 0 ] || fail "bench --peers 3 exited $rc: $(cat "$work/three.err")"
json_check "$work/three.json" \
  'j["answers"] == 3000' 'j["errors"] == 0' 'len(set(j["addresses"])) == 3' \
  'j["embedded_peers"] == 3' 'j["pool"]["connections_created"] == 3'

# Fewer in flight than peers: every peer still gets a connection and requests.
bench --peers 5 --requests 500 --inflight 2 --json > "$work/five.json" 2> "$work/five.err"
rc=$?
[ "$rc" = 0 ] || fail "bench --peers 5 --inflight 2 exited $rc: $(cat "$work/five.err")"
json_check "$work/five.json" 'j["answers"] == 500' 'j["pool"]["connections_created"] == 5' \
  'j["pool"]["messages_sent"] >= 500 + 2 * 5'

# 3. --duration ends the run (the bench is killed after 120 s otherwise), and lasts it.
bench --duration 1 --inflight 8 --json > "$work/duration.json" 2> "$work/duration.err"
rc=$?
[ "$rc" = 0 ] || fail "bench --duration 1 exited $rc: $(cat "$work/duration.err")"
json_check "$work/duration.json" 'j["requests"] > 0' 'j["answers"] == j["requests"]' \
  'j["wall_seconds"] >= 1.0' 'j["errors"] == 0'

# --requests and --duration together: whichever ends first (here the count).
bench --requests 200 --duration 60 --json > "$work/both.json" 2> "$work/both.err"
json_check "$work/both.json" 'j["requests"] == 200' 'j["answers"] == 200'

# 4. --size pads the request; the peer still answers it.
bench --requests 1000 --size 1000 --json > "$work/size.json" 2> "$work/size.err"
rc=$?
[ "$rc" = 0 ] || fail "bench --size 1000 exited $rc: $(cat "$work/size.err")"
json_check "$work/size.json" 'j["request_bytes"] == 1000' 'j["answers"] == 1000' \
  'j["pool"]["bytes_sent"] >= 1000 * 1000'

# 5. A refused port: exit 1, every request an error, counted by kind. (--timeout 1: shorter
# than the pool's first reconnection delay, so requests fail at once instead of waiting.)
closed_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
bench --to "127.0.0.1:$closed_port" --requests 200 --timeout 1 --json > "$work/refused.json" 2> "$work/refused.err"
rc=$?
[ "$rc" = 1 ] || fail "bench to a refused port exited $rc, expected 1: $(cat "$work/refused.err")"
json_check "$work/refused.json" 'j["requests"] == 200' 'j["answers"] == 0' 'j["errors"] == 200' \
  'j["errors_by_kind"] == {"connection_refused": 200}' \
  '"refused" in j["error_messages"]["connection_refused"].lower()' \
  'j["pool"]["connections_created"] == 0' 'j["pool"]["failed_establishments"] >= 1' \
  'j["peer_cpu_seconds"] is None' 'j["embedded_peers"] == 0'
expect 1 "connection_refused *200" -- "$diampool" bench --to "127.0.0.1:$closed_port" --requests 200 --timeout 1

# 6. The human-readable report.
bench --requests 2000 --inflight 16 > "$work/text.out" 2> "$work/text.err"
rc=$?
[ "$rc" = 0 ] || fail "bench (text) exited $rc: $(cat "$work/text.err")"
for line in '^diampool bench: embedded peers in a child process at 127\.0\.0\.1:[0-9]*, 16 in flight' \
  '^requests: *2000$' '^answers: *2000 (Result-Code 2001: 2000)$' '^answers/s: *[0-9]' \
  '^errors: *0$' '^diameter errors: *0$' \
  '^latency (us): *p50 [0-9.]*  p90 [0-9.]*  p99 [0-9.]*  p99\.9 [0-9.]*  max [0-9.]*  mean [0-9.]*$' \
  '^wall time: *[0-9.]* s$' '^client CPU: *[0-9.]* s, [0-9.]* us per request$' \
  '^peer CPU: *[0-9.]* s, [0-9.]* us per request' \
  '^connections: *1 created, 0 reconnect attempts, 0 failed establishments$' \
  '^messages: *[0-9]* sent, [0-9]* received'; do
  grep -q -- "$line" "$work/text.out" || fail "text report lacks /$line/: $(cat "$work/text.out")"
done
# Not a terminal: no progress line on stderr.
[ ! -s "$work/text.err" ] || fail "stderr not empty without a terminal: $(cat "$work/text.err")"

# 6b. Options from a --config TOML file: top-level keys for the common options, a [bench]
# table for the subcommand's own.
printf 'log-level = "off"\n[bench]\nrequests = 3000\ninflight = 8\njson = true\n' > "$work/bench.toml"
timeout 120 "$diampool" --config "$work/bench.toml" bench > "$work/config.json" ||
  fail "bench with --config exited $?"
json_check "$work/config.json" 'j["answers"] == 3000' 'j["inflight"] == 8'

# 7. Bad arguments: exit 2 and a message naming the problem, before anything starts.
expect 2 "bad address 'host'" -- "$diampool" bench --to host
expect 2 "bad address '127.0.0.1:70000'" -- "$diampool" bench --to 127.0.0.1:70000
expect 2 "bad address '\[::1'" -- "$diampool" bench --to '[::1'
expect 2 "empty address" -- "$diampool" bench --to 127.0.0.1:3868,,127.0.0.1:3869
expect 2 "\-\-requests must be at least 1" -- "$diampool" bench --requests 0
expect 2 "\-\-requests expects a positive whole number, got '-5'" -- "$diampool" bench --requests -5
expect 2 "\-\-inflight must be at least 1" -- "$diampool" bench --inflight 0
expect 2 "\-\-inflight expects a positive whole number" -- "$diampool" bench --inflight many
expect 2 "\-\-threads must be at least 1" -- "$diampool" bench --threads 0
expect 2 "\-\-peers must be at least 1" -- "$diampool" bench --peers 0
expect 2 "\-\-duration must be above 0" -- "$diampool" bench --duration 0
expect 2 "\-\-duration must be above 0" -- "$diampool" bench --duration -1
expect 2 "\-\-timeout expects a number of seconds" -- "$diampool" bench --timeout soon
expect 2 "\-\-size must be at least" -- "$diampool" bench --size 100
expect 2 "\-\-size must be at most 65536" -- "$diampool" bench --size 100000
expect 2 "\-\-peers starts embedded peers: not with \-\-to" -- "$diampool" bench --to 127.0.0.1:3868 --peers 2

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "cli_bench: all checks passed"
