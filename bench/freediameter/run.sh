#!/usr/bin/env bash
# bench/freediameter/run.sh: `diampool bench` against a freeDiameter 1.2.1 server, next to
# freeDiameter's own benchmark client (its test_app extension in benchmark mode) against the
# same server, in the same run, with the client CPU time per answered request of each.
#
#   bench/freediameter/run.sh [BUILD_DIR]   (as root; BUILD_DIR default build-bench, relative
#                                            to the repository; needs diampool_cli there)
# Environment:
#   RUNS=3            rounds; each round runs every client once, in an order that rotates
#   DURATION=10       seconds of load per client run
#   INFLIGHT=100      requests in flight for every client (test_app: `Benchmark DURATION N;`)
#   CLIENT_CPU=0      vCPU of the client under test (taskset)
#   SERVER_CPU=1      vCPU of the freeDiameter server (taskset)
#   FD_BENCH_CACHE=/tmp/diampool-fd-bench   test_app's source and build, kept between runs
#   FD_BENCH_MIRROR=http://deb.debian.org/debian   where the Debian source package comes from
#
# Steps:
#   1. outside any namespace: installs the Debian packages that are missing (freediameterd,
#      freediameter-extensions, libfreediameter-dev, flex, bison, gcc, dpkg-dev, xz-utils, jq,
#      iproute2, util-linux); if FD_BENCH_CACHE has no test_app.fdx for the installed
#      freediameterd version, fetches the Debian source package `freediameter` of that version
#      with apt-get source (through a private apt state under FD_BENCH_CACHE: the system's apt
#      sources stay as they are) and builds extensions/test_app as freeDiameter's CMake does
#      (bison/flex with the ta_conf prefix, -O2 -g, a shared object named test_app.fdx);
#   2. re-executes itself under `unshare --net`: freeDiameter binds 0.0.0.0 whatever ListenOn
#      says, so everything runs in a private network namespace with `lo` up and a veth pair
#      holding 198.18.0.1/32 (freeDiameter refuses to start with loopback only); every
#      connection is to 127.0.0.1 in that namespace, and the namespace goes away with the
#      last process in it;
#   3. starts the server, pinned to SERVER_CPU: freeDiameterd, Identity server.example.net,
#      Realm example.net, plain TCP on 3868 (TLS off: SecPort 0, no TLS_Cred), acl_wl
#      admitting *.example.com, dbg_msg_dumps with every dump off, test_app in server mode
#      with the `Benchmark` keyword (silent echo; without it test_app writes four unbuffered
#      lines to stderr per request);
#   4. starts two benchmark clients pinned to CLIENT_CPU, each a freeDiameterd (realm
#      example.com, NoRelay) with test_app in client benchmark mode (`Benchmark DURATION
#      INFLIGHT;`) connected to the server; a benchmark starts when the process gets SIGUSR1
#      and sends Test-Requests (Application-Id 16777215, Vendor-Id 999999, Command-Code
#      16777214, Session-Id, Destination-Realm, Origin-Host, Origin-Realm, Test-AVP) for
#      DURATION seconds, at most INFLIGHT unanswered:
#        fd-echo  Destination-Realm example.net: the server's test_app echoes Test-AVP, 2001;
#        fd-3002  the same plus Destination-Host nowhere.example.net: no peer has that
#                 identity, so the server's routing answers 3002 (E bit), as for diampool;
#   5. RUNS rounds of: fd-echo, fd-3002 (SIGUSR1, then wait for "Test Complete" in its log)
#      and `diampool bench --to 127.0.0.1:3868 --inflight INFLIGHT --duration DURATION
#      --threads 1 --json` pinned to CLIENT_CPU. diampool bench always sends its own
#      Credit-Control-Request (Application-Id 4, Destination-Host peer.example.net): the
#      server has no route for it and answers 3002 (E bit);
#   6. prints one line per run and, per client, the medians of answers/s, client CPU us per
#      answered request, server CPU us per answer, and the request and answer sizes; then the
#      ratios of freeDiameter's client CPU per answer to diampool's.
#
# Measured: the client CPU of freeDiameter's client is utime+stime of its freeDiameterd
# (/proc/PID/stat, all threads) from just before SIGUSR1 to "Test Complete" in its log (that
# span includes about one idle second after the last answer: test_app polls for the tail once
# a second). diampool's is its own client_cpu_seconds: getrusage(RUSAGE_SELF) from the first
# request of the load to the last answer (each run's line also shows the CPU of the whole
# diampool process, start-up and connection included, from bash `times`). Answered = answers
# with any Result-Code (test_app's "answer(s)" are 2001, its "error(s)" every other answer).
# Answers/s: answered / DURATION for test_app, answers / wall_seconds for diampool. Server
# CPU: /proc/PID/stat of the server around each run. Sizes: bytes on the client's socket (ss)
# or diampool's own byte counters, divided by messages.
#
# Everything started here is stopped by PID on exit (trap) and also gets SIGKILL from the
# kernel if this script dies (setpriv --pdeathsig). Exit status: 0 when every client run got
# answers, 1 otherwise or when something could not be set up.
set -euo pipefail

prog="bench/freediameter/run.sh"
die() {
  echo "$prog: $*" >&2
  exit 1
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${1:-build-bench}"
[[ $build == /* ]] || build="$repo/$build"
runs="${RUNS:-3}"
duration="${DURATION:-10}"
inflight="${INFLIGHT:-100}"
client_cpu="${CLIENT_CPU:-0}"
server_cpu="${SERVER_CPU:-1}"
cache="${FD_BENCH_CACHE:-/tmp/diampool-fd-bench}"
mirror="${FD_BENCH_MIRROR:-http://deb.debian.org/debian}"
for v in runs duration inflight client_cpu server_cpu; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((runs >= 1 && duration >= 1 && inflight >= 1)) || die "RUNS, DURATION and INFLIGHT must be >= 1"

# =============================================================================================
# Outside the namespace: packages, test_app, diampool; then re-execute under unshare --net.
if [[ ${DIAMPOOL_FD_BENCH_IN_NETNS:-} != 1 ]]; then
  [[ $(id -u) -eq 0 ]] || die "must run as root (apt-get, unshare --net, ip link)"

  # -- Debian packages: a file each provides -> its package. -----------------------------------
  declare -A provides=(
    [/usr/bin/freeDiameterd]=freediameterd
    [/usr/lib/freeDiameter/acl_wl.fdx]=freediameter-extensions
    [/usr/include/freeDiameter/extension.h]=libfreediameter-dev
    [/usr/bin/flex]=flex
    [/usr/bin/bison]=bison
    [/usr/bin/gcc]=gcc
    [/usr/bin/dpkg-source]=dpkg-dev
    [/usr/bin/xz]=xz-utils
    [/usr/bin/jq]=jq
    [/usr/bin/ss]=iproute2
    [/usr/bin/setpriv]=util-linux
  )
  missing=()
  for f in "${!provides[@]}"; do
    [[ -e $f ]] || missing+=("${provides[$f]}")
  done
  if ((${#missing[@]} > 0)); then
    echo "$prog: installing ${missing[*]}" >&2
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" > /dev/null || die "apt-get install ${missing[*]} failed"
  fi

  # -- test_app, built once per freediameterd version. -----------------------------------------
  version="$(dpkg-query -W -f='${source:Version}' freediameterd)"
  [[ -n $version ]] || die "cannot tell the source version of freediameterd"
  vdir="$cache/freediameter-$version"
  if [[ ! -f $vdir/test_app.fdx ]]; then
    echo "$prog: fetching and building test_app from the Debian source package" \
      "freediameter $version under $vdir" >&2
    rm -rf "$vdir"
    mkdir -p "$vdir/apt/lists/partial" "$vdir/apt/cache/archives/partial" "$vdir/apt/parts" \
      "$vdir/src" "$vdir/build"
    # shellcheck source=/dev/null
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
    [[ -n $codename ]] || die "no VERSION_CODENAME in /etc/os-release"
    echo "deb-src $mirror $codename main" > "$vdir/apt/sources.list"
    # A private apt state: only this deb-src line, lists and caches under $vdir.
    apt_opts=(-o "Dir::Etc::SourceList=$vdir/apt/sources.list"
      -o "Dir::Etc::SourceParts=$vdir/apt/parts"
      -o "Dir::State::Lists=$vdir/apt/lists"
      -o "Dir::Cache=$vdir/apt/cache"
      -o "APT::Sandbox::User=root")
    blog="$vdir/build.log"
    {
      apt-get "${apt_opts[@]}" update &&
        (cd "$vdir/src" && apt-get "${apt_opts[@]}" source --download-only \
          "freediameter=$version") &&
        dpkg-source -x "$vdir"/src/freediameter_*.dsc "$vdir/src/freediameter"
    } > "$blog" 2>&1 || {
      tail -n 20 "$blog" >&2
      die "could not fetch the source package freediameter=$version (log: $blog)"
    }
    ta="$vdir/src/freediameter/extensions/test_app"
    [[ -f $ta/ta_bench.c ]] || die "no extensions/test_app in the source package"
    # As freeDiameter's CMake builds it: parser symbols prefixed ta_conf, -D_GNU_SOURCE, -O2 -g
    # (Debian's flags), a module named test_app.fdx. -z defs: every symbol must resolve now.
    (
      cd "$vdir/build" &&
        bison --name-prefix=ta_conf --defines --output-file=ta_conf.tab.c "$ta/ta_conf.y" &&
        flex -Pta_conf -o lex.ta_conf.c "$ta/ta_conf.l" &&
        gcc -O2 -g -D_GNU_SOURCE -fPIC -shared -Wl,-z,defs -I. -I"$ta" -o test_app.fdx.tmp \
          "$ta/test_app.c" "$ta/ta_dict.c" "$ta/ta_cli.c" "$ta/ta_bench.c" "$ta/ta_serv.c" \
          ta_conf.tab.c lex.ta_conf.c -lfdcore -lfdproto -lpthread &&
        mv test_app.fdx.tmp "$vdir/test_app.fdx"
    ) >> "$blog" 2>&1 || {
      tail -n 20 "$blog" >&2
      die "could not build test_app (log: $blog)"
    }
  fi

  # -- diampool ---------------------------------------------------------------------------------
  diampool="$build/apps/diampool"
  [[ -d $diampool ]] && diampool="$diampool/diampool"
  if [[ ! -x $diampool ]]; then
    echo "$prog: building diampool_cli in $build" >&2
    cmake --build "$build" -j2 --target diampool_cli > /dev/null ||
      die "could not build diampool_cli in $build"
    diampool="$build/apps/diampool"
    [[ -d $diampool ]] && diampool="$diampool/diampool"
    [[ -x $diampool ]] || die "$diampool not found after building diampool_cli"
  fi

  unshare --net true 2> /dev/null || die "unshare --net failed (cannot create a network namespace)"
  export DIAMPOOL_FD_BENCH_IN_NETNS=1 DIAMPOOL_FD_BENCH_TEST_APP="$vdir/test_app.fdx"
  export DIAMPOOL_FD_BENCH_DIAMPOOL="$diampool" DIAMPOOL_FD_BENCH_VERSION="$version"
  exec unshare --net -- bash "$here/$(basename "${BASH_SOURCE[0]}")" "$@"
fi

# =============================================================================================
# Inside the private network namespace.
unset DIAMPOOL_FD_BENCH_IN_NETNS
test_app="$DIAMPOOL_FD_BENCH_TEST_APP"
diampool="$DIAMPOOL_FD_BENCH_DIAMPOOL"
if [[ $(readlink /proc/self/ns/net) == "$(readlink /proc/1/ns/net)" ]]; then
  die "not in a private network namespace; refusing to start freeDiameter"
fi
{
  ip link set lo up &&
    ip link add fdb-v0 type veth peer name fdb-v1 &&
    ip addr add 198.18.0.1/32 dev fdb-v0 &&
    ip link set fdb-v0 up &&
    ip link set fdb-v1 up
} || die "could not set up lo and the veth pair in the namespace"

tmp="$(mktemp -d /tmp/diampool-fd-bench-run.XXXXXX)"
server_pid=""
echo_pid=""
e3002_pid=""
client_pid=""

stop_pid() { # PID: TERM, then KILL after 5 s; reaps it
  local pid=$1
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2> /dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
}
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
  stop_pid "$client_pid"
  stop_pid "$echo_pid"
  stop_pid "$e3002_pid"
  stop_pid "$server_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

realm="example.net"
identity="server.example.net"
port=3868
echo "ALLOW_IPSEC *.example.com" > "$tmp/acl_wl.conf"

# -- server -----------------------------------------------------------------------------------
cat > "$tmp/ta_server.conf" << EOF
mode = server;
Benchmark;
EOF
cat > "$tmp/server.conf" << EOF
Identity = "$identity";
Realm = "$realm";
Port = $port;
SecPort = 0;
No_SCTP;
No_IPv6;
TwTimer = 30;
LoadExtension = "acl_wl.fdx" : "$tmp/acl_wl.conf";
LoadExtension = "dbg_msg_dumps.fdx" : "0x1111";
LoadExtension = "$test_app" : "$tmp/ta_server.conf";
EOF

# -- the two test_app benchmark clients -------------------------------------------------------
client_conf() { # name listen-port [dest-host]
  {
    echo "mode = client;"
    echo "dest-realm = \"$realm\";"
    [[ -z ${3:-} ]] || echo "dest-host = \"$3\";"
    echo "Benchmark $duration $inflight;"
  } > "$tmp/ta_$1.conf"
  cat > "$tmp/$1.conf" << EOF
Identity = "fdbench-$1.example.com";
Realm = "example.com";
Port = $2;
SecPort = 0;
No_SCTP;
No_IPv6;
NoRelay;
TwTimer = 30;
LoadExtension = "$test_app" : "$tmp/ta_$1.conf";
ConnectPeer = "$identity" { ConnectTo = "127.0.0.1"; No_TLS; Port = $port; };
EOF
}
client_conf echo 3870
client_conf e3002 3872 nowhere.example.net

# Started from this shell (not a subshell), so that it is our child: the parent-death signal
# follows this script, and `wait` can reap it.
start_fd() { # cpu name: freeDiameterd with $tmp/name.conf, log $tmp/name.log; PID in started
  taskset -c "$1" setpriv --pdeathsig KILL -- freeDiameterd -c "$tmp/$2.conf" \
    < /dev/null >> "$tmp/$2.log" 2>&1 &
  started=$!
}

started=""
start_fd "$server_cpu" server
server_pid=$started
for _ in $(seq 1 200); do # 10 s
  kill -0 "$server_pid" 2> /dev/null || break
  [[ -z $(ss -Hltn "sport = :$port") ]] || break
  sleep 0.05
done
if [[ -z $(ss -Hltn "sport = :$port") ]]; then
  tail -n 40 "$tmp/server.log" >&2
  die "the freeDiameter server did not listen on $port within 10 s"
fi

start_fd "$client_cpu" echo
echo_pid=$started
start_fd "$client_cpu" e3002
e3002_pid=$started
for name in echo e3002; do
  ok=0
  for _ in $(seq 1 300); do # 30 s: freeDiameter takes a few seconds to dial its ConnectPeer
    if grep -q -- "-> 'STATE_OPEN'" "$tmp/$name.log"; then
      ok=1
      break
    fi
    sleep 0.1
  done
  if ((ok == 0)); then
    tail -n 40 "$tmp/$name.log" >&2
    die "test_app client $name did not connect to the server within 30 s"
  fi
done

# -- measurement helpers ----------------------------------------------------------------------
hz="$(getconf CLK_TCK)"
cpu_ticks() { # PID: "utime stime" of the whole process (every thread), clock ticks
  local stat f
  stat="$(< "/proc/$1/stat")"
  stat="${stat##*) }"
  read -r -a f <<< "$stat"
  echo "${f[11]} ${f[12]}"
}
seconds() { # "utime stime" before, after: CPU seconds in between (both, or only "sys")
  awk -v a="$1" -v b="$2" -v hz="$hz" -v what="${3:-both}" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    user = what == "sys" ? 0 : y[1] - x[1]
    print (user + y[2] - x[2]) / hz }'
}
# bash `times`, second line: user and system time of this shell's reaped children. Must run in
# this shell, not in a $(...) subshell (which has children of its own).
children_times() { # FILE: writes "user sys" seconds to FILE
  times > "$1"
  awk 'NR == 2 {
    split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2], s[1] * 60 + s[2] }' \
    "$1" > "$1.parsed"
  mv "$1.parsed" "$1"
}
sock_bytes() { # PID: "sent received" summed over its established sockets to the server port
  ss -Htinp state established "( dport = :$port )" | awk -v pid="pid=$1," '
    /^[^ \t]/ { mine = index($0, pid) > 0; next }
    mine {
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^bytes_sent:/) { split($i, a, ":"); s += a[2] }
        if ($i ~ /^bytes_received:/) { split($i, a, ":"); r += a[2] }
      }
    }
    END { printf "%d %d\n", s, r }'
}
median() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) print "nan"
    else if (NR % 2) print v[(NR + 1) / 2]
    else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# name round answers seconds client_cpu_s server_cpu_s req_bytes ans_bytes client_sys_percent
results="$tmp/results"
: > "$results"
failures=0

record() { # the fields of $results, in order
  echo "$*" >> "$results"
}

report_run() { # name round detail
  awk -v name="$1" -v round="$2" -v detail="$3" '
    $1 == name && $2 == round {
      printf "  round %d  %-8s %8d answers in %5.2f s = %6.0f/s  client CPU %6.3f s = " \
        "%6.2f us/answer (%2.0f%% sys)  server %6.2f us/answer  %s\n", round, name, $3, $4,
        $3 / $4, $5, $5 * 1e6 / $3, $9, $6 * 1e6 / $3, detail
    }' "$results"
}

# One benchmark of a test_app client: SIGUSR1, then wait for "Test Complete".
run_test_app() { # name pid log round
  local name=$1 pid=$2 log=$3 round=$4
  local start done0 c0 c1 s0 s1 b0 b1 bs0 br0 bs1 br1
  : > "$tmp/server.log" # the server logs a line per 3002 answer: keep only this run's
  start="$(wc -l < "$log")"
  done0="$(grep -c 'Test Complete' "$log" || true)"
  b0="$(sock_bytes "$pid")"
  s0="$(cpu_ticks "$server_pid")"
  c0="$(cpu_ticks "$pid")"
  kill -USR1 "$pid"
  local waited=0
  until (($(grep -c 'Test Complete' "$log" || true) > done0)); do
    sleep 0.25
    waited=$((waited + 1))
    if ((waited > (duration + 30) * 4)); then
      echo "$prog: $name: no 'Test Complete' within $((duration + 30)) s" >&2
      failures=$((failures + 1))
      return 0
    fi
  done
  c1="$(cpu_ticks "$pid")"
  s1="$(cpu_ticks "$server_pid")"
  b1="$(sock_bytes "$pid")"
  # The last results block of this run (test_app prints one a second until all are answered).
  local sent errs oks
  read -r sent errs oks < <(tail -n +"$((start + 1))" "$log" | awk '
    /messages sent$/ { s = $(NF - 2) }
    /error\(s\) received$/ { e = $(NF - 2) }
    /answer\(s\) received$/ { a = $(NF - 2) }
    END { print s + 0, e + 0, a + 0 }')
  local answered=$((errs + oks))
  if ((answered == 0)); then
    echo "$prog: $name: no answer (sent $sent); its log:" >&2
    tail -n +"$((start + 1))" "$log" | tail -n 30 >&2
    failures=$((failures + 1))
    return 0
  fi
  read -r bs0 br0 <<< "$b0"
  read -r bs1 br1 <<< "$b1"
  local cpu sys
  cpu="$(seconds "$c0" "$c1")"
  sys="$(seconds "$c0" "$c1" sys)"
  record "$name" "$round" "$answered" "$duration" "$cpu" "$(seconds "$s0" "$s1")" \
    "$(awk -v b=$((bs1 - bs0)) -v n="$sent" 'BEGIN { printf "%.0f", b / n }')" \
    "$(awk -v b=$((br1 - br0)) -v n="$answered" 'BEGIN { printf "%.0f", b / n }')" \
    "$(awk -v s="$sys" -v c="$cpu" 'BEGIN { printf "%.0f", (c > 0 ? 100 * s / c : 0) }')"
  report_run "$name" "$round" "sent $sent, 2001: $oks, other Result-Codes: $errs"
}

# One run of diampool bench.
run_diampool() { # round
  local round=$1 s0 s1 t0 t1 status=0
  : > "$tmp/server.log"
  children_times "$tmp/times0"
  s0="$(cpu_ticks "$server_pid")"
  taskset -c "$client_cpu" setpriv --pdeathsig KILL -- \
    "$diampool" --log-level error bench --to "127.0.0.1:$port" \
    --inflight "$inflight" --duration "$duration" --threads 1 --json \
    > "$tmp/diampool.json" 2> "$tmp/diampool.err" &
  client_pid=$!
  wait "$client_pid" || status=$?
  client_pid=""
  s1="$(cpu_ticks "$server_pid")"
  children_times "$tmp/times1"
  t0="$(< "$tmp/times0")"
  t1="$(< "$tmp/times1")"
  local answers
  answers="$(jq -r '.answers // 0' "$tmp/diampool.json" 2> /dev/null || echo 0)"
  # Exit status 1 means "not every answer was 2001": expected here (3002).
  if ((status > 1 || answers == 0)); then
    echo "$prog: diampool bench failed (exit status $status, $answers answers):" >&2
    cat "$tmp/diampool.json" >&2 || true
    tail -n 20 "$tmp/diampool.err" >&2 || true
    failures=$((failures + 1))
    return 0
  fi
  local codes
  codes="$(jq -r '[.answers_2001 | tostring | "2001: " + .] +
      [.diameter_errors_by_result_code | to_entries[] | "\(.key): \(.value)"] +
      ["transport errors: \(.errors)"] | join(", ")' "$tmp/diampool.json")"
  record diampool "$round" "$answers" \
    "$(jq -r '.wall_seconds' "$tmp/diampool.json")" \
    "$(jq -r '.client_cpu_seconds' "$tmp/diampool.json")" \
    "$(seconds "$s0" "$s1")" \
    "$(jq -r '.pool.bytes_sent / .pool.messages_sent | round' "$tmp/diampool.json")" \
    "$(jq -r '.pool.bytes_received / .pool.messages_received | round' "$tmp/diampool.json")" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN {
      split(a, x, " "); split(b, y, " "); u = y[1] - x[1]; s = y[2] - x[2]
      printf "%.0f", (u + s > 0 ? 100 * s / (u + s) : 0) }')"
  local whole
  whole="$(awk -v a="$t0" -v b="$t1" 'BEGIN {
    split(a, x, " "); split(b, y, " "); printf "%.3f", y[1] - x[1] + y[2] - x[2] }')"
  report_run diampool "$round" "whole process ${whole} s CPU, latency p50 $(jq -r \
    '.latency_us.p50' "$tmp/diampool.json") us, $codes"
}

# -- the runs ---------------------------------------------------------------------------------
model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "$prog: $(date -u +%FT%TZ), $(nproc) vCPUs ($model)," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "freeDiameter $DIAMPOOL_FD_BENCH_VERSION server (pid $server_pid) on CPU $server_cpu;" \
  "clients on CPU $client_cpu, one at a time; $runs rounds x $duration s per client;" \
  "$inflight requests in flight; one TCP connection per client"
echo "  fd-echo   freeDiameter test_app benchmark client: Test-Request, echoed by the server's" \
  "test_app (2001)"
echo "  fd-3002   freeDiameter test_app benchmark client: Test-Request with an unknown" \
  "Destination-Host (the server answers 3002)"
echo "  diampool  diampool bench: its Credit-Control-Request (app 4, unknown Destination-Host:" \
  "the server answers 3002)"
echo
clients=(fd-echo fd-3002 diampool)
for ((round = 1; round <= runs; round++)); do
  for ((k = 0; k < ${#clients[@]}; k++)); do
    case "${clients[(k + round - 1) % ${#clients[@]}]}" in
      fd-echo) run_test_app fd-echo "$echo_pid" "$tmp/echo.log" "$round" ;;
      fd-3002) run_test_app fd-3002 "$e3002_pid" "$tmp/e3002.log" "$round" ;;
      diampool) run_diampool "$round" ;;
    esac
  done
done

# -- medians ----------------------------------------------------------------------------------
echo
echo "medians of $runs runs:"
printf '  %-9s %10s %16s %16s %12s %12s %12s\n' "client" "answers/s" "client us/answer" \
  "server us/answer" "req bytes" "answer bytes" "client sys %"
col() { # name metric: that metric of every run of that client, median
  awk -v name="$1" -v m="$2" '$1 == name {
    if (m == "rate") print $3 / $4
    else if (m == "client") print $5 * 1e6 / $3
    else if (m == "server") print $6 * 1e6 / $3
    else if (m == "req") print $7
    else if (m == "ans") print $8
    else if (m == "sys") print $9
  }' "$results" | median
}
for name in "${clients[@]}"; do
  if ! grep -q "^$name " "$results"; then
    printf '  %-9s no successful run\n' "$name"
    continue
  fi
  printf '  %-9s %10.0f %16.2f %16.2f %12.0f %12.0f %12.0f\n' "$name" "$(col "$name" rate)" \
    "$(col "$name" client)" "$(col "$name" server)" "$(col "$name" req)" "$(col "$name" ans)" \
    "$(col "$name" sys)"
done
dp="$(col diampool client)"
for name in fd-echo fd-3002; do
  fd="$(col "$name" client)"
  awk -v fd="$fd" -v dp="$dp" -v name="$name" 'BEGIN {
    if (fd == "nan" || dp == "nan" || dp == 0) exit
    printf "  client CPU per answer, %s / diampool: %.1fx\n", name, fd / dp }'
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
((failures == 0)) || die "$failures client run(s) failed"
