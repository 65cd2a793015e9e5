#!/usr/bin/env bash
# bench/compare.sh: `diampool bench` against the raw epoll baseline (bench/raw_client), in one
# run, against the same peer (bench/raw_peer: one single-threaded process, 100 listeners).
#
#   bench/compare.sh [BUILD_DIR]      (default build-bench; needs diampool_cli, raw_client and
#                                      raw_peer built there)
# Environment: RUNS (default 5) runs of each client per scenario, DURATION (default 4) seconds
# per run, CLIENT_CPU (default 0) and PEER_CPU (default 1) for taskset.
#
# Scenarios: (a) 1 connection, 256 in flight; (b) 100 addresses x 16 in flight (1600 in total,
# one connection per address); (c) 1 in flight, for latency. Within a scenario the two clients
# alternate (the first of each pair alternates too). For each it prints the medians of the
# runs: answers/s, client CPU us per answer (getrusage of the client), latency p50 and p99,
# and the peer's CPU us per answer (from /proc/PID/schedstat around the run); then
# diampool/raw. Every process started here is stopped by PID on exit.
set -euo pipefail

build=${1:-build-bench}
runs=${RUNS:-5}
duration=${DURATION:-4}
client_cpu=${CLIENT_CPU:-0}
peer_cpu=${PEER_CPU:-1}

raw_client=$build/bench/raw_client
raw_peer=$build/bench/raw_peer
diampool=$build/apps/diampool
[[ -d $diampool ]] && diampool=$diampool/diampool
for b in "$raw_client" "$raw_peer" "$diampool"; do
  if [[ ! -x $b ]]; then
    echo "compare.sh: $b not found; build it first:" >&2
    echo "  cmake --build $build -j2 --target diampool_cli raw_client raw_peer" >&2
    exit 2
  fi
done

tmp=$(mktemp -d)
peer_pid=
client_pid=
cleanup() {
  local pid
  for pid in $client_pid $peer_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The peer: 100 listeners in one process, on its own vCPU. (a) and (c) use the first one.
taskset -c "$peer_cpu" "$raw_peer" --listen 127.0.0.1:0 --count 100 >"$tmp/peer.out" 2>&1 &
peer_pid=$!
for _ in $(seq 50); do
  grep -q '^listening on' "$tmp/peer.out" && break
  sleep 0.1
done
all=$(sed -n 's/^listening on //p' "$tmp/peer.out")
[[ -n $all ]] || { echo "compare.sh: raw_peer did not start" >&2; cat "$tmp/peer.out" >&2; exit 1; }
first=${all%%,*}

peer_ns() { awk '{print $1}' "/proc/$peer_pid/schedstat"; }
field() { grep -o "\"$1\":[0-9.e+-]*" <<<"$2" | head -1 | cut -d: -f2; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {
  if (NR == 0) print "nan"; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2 }'; }

# One run of one client: appends "rate cpu p50 p99 peer_us errors" to $tmp/<name>.
run_one() {  # name, then the client's command line
  local name=$1 before after out status=0
  shift
  before=$(peer_ns)
  timeout -k 5 $((duration + 60)) taskset -c "$client_cpu" "$@" --duration "$duration" --json \
    >"$tmp/out.json" 2>"$tmp/err.txt" &
  client_pid=$!
  wait "$client_pid" || status=$?
  client_pid=
  after=$(peer_ns)
  out=$(cat "$tmp/out.json")
  local answers errors
  answers=$(field answers "$out")
  if [[ -z $answers || $answers == 0 ]]; then
    echo "compare.sh: $name failed (status $status): $(tail -3 "$tmp/err.txt")" >&2
    return
  fi
  errors=$(($(field errors "$out") + $(field diameter_errors "$out")))
  ((status == 0)) || echo "  ($name: exit status $status, $errors errors)" >&2
  echo "$(field answers_per_second "$out") $(field client_cpu_us_per_request "$out")" \
    "$(field p50 "$out") $(field p99 "$out")" \
    "$(awk -v d=$((after - before)) -v n="$answers" 'BEGIN {printf "%.3f", d / 1e3 / n}')" \
    "$errors" >>"$tmp/$name"
}

col() { awk -v c="$1" '{print $c}' "$tmp/$2" | median; }

scenario() {  # title, then the arguments common to both clients
  local title=$1
  shift
  rm -f "$tmp/raw" "$tmp/diampool"
  for ((r = 1; r <= runs; r++)); do
    if ((r % 2)); then
      run_one raw "$raw_client" "$@"
      run_one diampool "$diampool" bench "$@"
    else
      run_one diampool "$diampool" bench "$@"
      run_one raw "$raw_client" "$@"
    fi
  done
  echo "== $title: $runs runs of ${duration} s each, medians =="
  printf '%-14s %12s %12s %10s %10s %12s %7s\n' "" "answers/s" "CPU us/ans" "p50 us" \
    "p99 us" "peer us/ans" "errors"
  local n
  for n in raw diampool; do
    [[ -s $tmp/$n ]] || { echo "$n: no successful run"; return; }
    printf '%-14s %12.0f %12.2f %10.1f %10.1f %12.2f %7s\n' "$n" "$(col 1 $n)" "$(col 2 $n)" \
      "$(col 3 $n)" "$(col 4 $n)" "$(col 5 $n)" \
      "$(awk '{s += $6} END {print s}' "$tmp/$n")"
  done
  awk -v rr="$(col 1 raw)" -v rd="$(col 1 diampool)" -v cr="$(col 2 raw)" \
    -v cd="$(col 2 diampool)" -v p5r="$(col 3 raw)" -v p5d="$(col 3 diampool)" \
    -v p9r="$(col 4 raw)" -v p9d="$(col 4 diampool)" 'BEGIN {
      printf "%-14s %11.1f%% %11.2fx %+10.1f %+10.1f\n", "diampool/raw", 100 * rd / rr,
             cd / cr, p5d - p5r, p9d - p9r }'
  for n in raw diampool; do
    printf '  %-9s answers/s by run: %s\n' "$n" \
      "$(awk '{printf "%s%.0f", (NR > 1 ? " " : ""), $1}' "$tmp/$n")"
  done
  echo
}

echo "compare.sh: $(date -u +%FT%TZ), $(nproc) vCPUs ($(grep -m1 'model name' /proc/cpuinfo |
  cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "clients pinned to CPU $client_cpu, raw_peer (pid $peer_pid) to CPU $peer_cpu;" \
  "${runs} runs x ${duration} s per client and scenario; diampool/raw: answers/s as a" \
  "percentage, CPU per answer as a factor, p50/p99 as a difference in us"
echo

scenario "(a) 1 connection, 256 in flight" --to "$first" --inflight 256
scenario "(b) 100 addresses x 16 in flight" --to "$all" --inflight 1600
scenario "(c) 1 connection, 1 in flight (latency)" --to "$first" --inflight 1

kill "$peer_pid"
wait "$peer_pid" || true
peer_pid=
grep -v '^listening on' "$tmp/peer.out"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
