#!/usr/bin/env bash
# Runs a command next to a throw-away freeDiameter 1.2.1 server, inside a private network
# namespace, and exits with the command's status.
#
#   run.sh [--conf-variant NAME] -- COMMAND ARGS...
#
# What it does (as root, on Debian 12 with freediameterd, freediameter-extensions, openssl,
# iproute2 and util-linux installed; scripts/bootstrap installs them):
#   1. re-executes itself under `unshare --net`: everything below happens in a fresh network
#      namespace that nothing outside can reach. freeDiameter 1.2.1 binds 0.0.0.0 whatever
#      ListenOn says, so this namespace is what keeps it off every real network;
#   2. brings `lo` up and adds a veth pair with 198.18.0.1/32 (benchmarking range; it exists
#      only inside the namespace): freeDiameter refuses to start when loopback is the only
#      local address ("Unable to find the address(es) of the local system");
#   3. in a temp dir, writes a throw-away CA, a server certificate (CN = the Identity), a
#      client certificate and a fixed ffdhe2048 DH file (no slow `openssl dhparam`), the
#      acl_wl allow-list and freeDiameter.conf for the chosen variant;
#   4. starts `freeDiameterd -c freeDiameter.conf` in the background (output in
#      freeDiameter.log; it dies with this script even on SIGKILL: parent-death signal) and
#      waits, at most 10 s, until it listens on port 3868 (and 3869 for tls);
#   5. exports the variables below and runs COMMAND (its stdin, stdout and stderr are ours);
#   6. stops freeDiameterd by its PID (TERM, then KILL after 5 s), prints the tail of its log
#      if COMMAND failed, removes the temp dir and exits with COMMAND's status. The same
#      clean-up runs from a trap on every exit path, so nothing is left running.
#
# Exported to COMMAND:
#   DIAMPOOL_FD_ADDRESS=127.0.0.1:3868    plain TCP listener (every variant)
#   DIAMPOOL_FD_HOST=server.example.net   its Diameter Identity (Origin-Host of its CEA)
#   DIAMPOOL_FD_REALM=example.net         its Realm
#   DIAMPOOL_FD_TW=6                      its TwTimer, seconds
#   DIAMPOOL_FD_VARIANT=NAME              the configuration variant in use
#   DIAMPOOL_FD_LOG=FILE                  freeDiameter's log (a test may read it)
#   DIAMPOOL_FD_DIR=DIR                   the temp dir (deleted afterwards)
#   DIAMPOOL_FD_PID=PID                   freeDiameterd's PID (a test may send it SIGTERM,
#                                         which makes it send DPR to its peers and exit)
#   DIAMPOOL_FD_CA_FILE, DIAMPOOL_FD_CLIENT_CERT, DIAMPOOL_FD_CLIENT_KEY
#                                         the test CA and a client certificate it signed
#                                         (CN client.example.com), PEM
#   DIAMPOOL_FD_TLS_ADDRESS=127.0.0.1:3869  only with --conf-variant tls
#
# Clients: any Origin-Host matching *.example.com is accepted over plain TCP (acl_wl
# `ALLOW_IPSEC *.example.com`); anything else gets CEA 3010. Use a distinct Origin-Host per
# concurrent connection: a second connection with an Origin-Host already connected gets 5012.
#
# Variants (--conf-variant, default plain):
#   plain  TLS off (no TLS_Cred, SecPort 0), TwTimer 6, relay on; dbg_msg_dumps logs errors
#          and peer state changes compactly, not every message
#   dump   plain, plus every message sent and received, compactly, in the log
#   quiet  plain without dbg_msg_dumps (least logging, for benchmarks)
#   tls    plain, plus the generated credentials and an RFC 6733 TLS-first listener on
#          SecPort 3869 (clients present DIAMPOOL_FD_CLIENT_CERT); freeDiameter checks its
#          own certificate against TLS_CA at start-up. Checked: `openssl s_client` with the
#          client certificate verifies the server (CN server.example.net) and a CER sent over
#          it gets CEA 2001 (the ALLOW_IPSEC line admits TLS peers too)
# DIAMPOOL_FD_EXTRA_CONF, if set in the environment, is appended verbatim to the config.
#
# Exit status: COMMAND's; 1 when the harness cannot run (not root, a tool missing,
# freeDiameter not listening within 10 s); 2 for a usage error.
set -euo pipefail

prog="run.sh"
usage() {
  echo "usage: $prog [--conf-variant plain|dump|quiet|tls] -- COMMAND ARGS..." >&2
  exit 2
}
die() {
  echo "$prog: $*" >&2
  exit 1
}

original_args=("$@")
variant="plain"
while [ $# -gt 0 ]; do
  case "$1" in
    --conf-variant) [ $# -ge 2 ] || usage; variant="$2"; shift 2 ;;
    --conf-variant=*) variant="${1#*=}"; shift ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
[ $# -gt 0 ] || usage
case "$variant" in
  plain | dump | quiet | tls) ;;
  *) echo "$prog: unknown --conf-variant '$variant'" >&2; usage ;;
esac

# ---------------------------------------------------------------------------------------------
# Outside: check what we need, then re-execute in a private network namespace.
if [ "${DIAMPOOL_FD_IN_NETNS:-}" != "1" ]; then
  [ "$(id -u)" -eq 0 ] || die "must run as root (it needs unshare --net and ip link)"
  for tool in unshare ip ss openssl freeDiameterd setpriv; do
    command -v "$tool" > /dev/null 2>&1 ||
      die "'$tool' not found; install freediameterd freediameter-extensions openssl iproute2 util-linux (scripts/bootstrap does)"
  done
  [ -e /usr/lib/freeDiameter/acl_wl.fdx ] ||
    die "/usr/lib/freeDiameter/acl_wl.fdx not found; install freediameter-extensions"
  unshare --net true 2> /dev/null ||
    die "unshare --net failed (no permission to create a network namespace here?)"
  export DIAMPOOL_FD_IN_NETNS=1
  exec unshare --net -- bash "$0" "${original_args[@]}"
fi

# ---------------------------------------------------------------------------------------------
# Inside the namespace.
unset DIAMPOOL_FD_IN_NETNS
# Never start freeDiameter in a shared namespace (e.g. if the guard variable leaked in).
if [ "$(readlink /proc/self/ns/net)" = "$(readlink /proc/1/ns/net)" ]; then
  die "not in a private network namespace; refusing to start freeDiameter"
fi

{
  ip link set lo up &&
    ip link add fd-v0 type veth peer name fd-v1 &&
    ip addr add 198.18.0.1/32 dev fd-v0 &&
    ip link set fd-v0 up &&
    ip link set fd-v1 up
} || die "could not set up lo and the veth pair in the namespace"

dir="$(mktemp -d /tmp/diampool-fd.XXXXXX)"
fd_pid=""

stop_freediameter() {
  if [ -n "$fd_pid" ]; then
    kill -TERM "$fd_pid" 2> /dev/null || true
    # freeDiameter's orderly shutdown takes well under a second; 5 s bound, then KILL.
    for _ in $(seq 1 50); do
      kill -0 "$fd_pid" 2> /dev/null || break
      sleep 0.1
    done
    kill -KILL "$fd_pid" 2> /dev/null || true
    wait "$fd_pid" 2> /dev/null || true
    fd_pid=""
  fi
}
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
  stop_freediameter
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

identity="server.example.net"
realm="example.net"

# -- credentials: EC keys are generated in milliseconds. ---------------------------------------
gen_cert() { # name CN: a key and a certificate signed by the test CA
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
    -keyout "$dir/$1.key" -out "$dir/$1.csr" 2> /dev/null
  openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 2 -out "$dir/$1.pem" 2> /dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=diampool throw-away test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2> /dev/null ||
  die "openssl could not make the test CA"
gen_cert server "$identity" || die "openssl could not make the server certificate"
gen_cert client "client.example.com" || die "openssl could not make the client certificate"
# RFC 7919 ffdhe2048, fixed (as `openssl genpkey -genparam -algorithm DH -pkeyopt
# group:ffdhe2048` writes it): generating DH parameters would cost seconds.
cat > "$dir/dh.pem" << 'EOF'
-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
EOF

# -- acl_wl: over plain TCP the line must say ALLOW_IPSEC (a bare pattern only admits TLS
# peers); `*` may only be the first label. ----------------------------------------------------
echo "ALLOW_IPSEC *.example.com" > "$dir/acl_wl.conf"

# -- freeDiameter.conf ------------------------------------------------------------------------
conf="$dir/freeDiameter.conf"
{
  echo "Identity = \"$identity\";"
  echo "Realm = \"$realm\";"
  echo "Port = 3868;"
  if [ "$variant" = "tls" ]; then
    echo "SecPort = 3869;"
    echo "TLS_Cred = \"$dir/server.pem\", \"$dir/server.key\";"
    echo "TLS_CA = \"$dir/ca.pem\";"
    echo "TLS_DH_File = \"$dir/dh.pem\";"
  else
    # SecPort 0 and no TLS_Cred: TLS off ("TLS is disabled, this is *NOT* a recommended
    # practice!" in the log), only the plain listener.
    echo "SecPort = 0;"
  fi
  echo "No_SCTP;"
  echo "No_IPv6;"
  echo "TwTimer = 6;" # the minimum freeDiameter accepts
  echo "LoadExtension = \"acl_wl.fdx\" : \"$dir/acl_wl.conf\";"
  case "$variant" in
    # dbg_msg_dumps takes a hex mask: 0x0002 errors compact, 0x0010 send/receive quiet,
    # 0x0020 send/receive compact, 0x0100 routing quiet, 0x2000 peer events compact.
    plain | tls) echo "LoadExtension = \"dbg_msg_dumps.fdx\" : \"0x2112\";" ;;
    dump) echo "LoadExtension = \"dbg_msg_dumps.fdx\" : \"0x2122\";" ;;
    quiet) ;;
  esac
  if [ -n "${DIAMPOOL_FD_EXTRA_CONF:-}" ]; then
    printf '%s\n' "$DIAMPOOL_FD_EXTRA_CONF"
  fi
} > "$conf"

# -- start and wait until it listens ----------------------------------------------------------
log="$dir/freeDiameter.log"
# --pdeathsig: if this script is killed outright (SIGKILL from a test driver), the kernel
# kills freeDiameterd too, and with the last process gone the namespace disappears.
setpriv --pdeathsig KILL -- freeDiameterd -c "$conf" < /dev/null > "$log" 2>&1 &
fd_pid=$!

# "Accepts a TCP connection" is checked as "a socket listens on 3868" (ss): in this private
# namespace only freeDiameterd can own it, and the kernel completes handshakes on a listening
# socket. A real probe connection would work too but leaves a misleading ERROR in the log
# ("Transport endpoint is not connected ... in error before CER was received").
listening() {
  [ -n "$(ss -Hltn 'sport = :3868' 2> /dev/null)" ] || return 1
  [ "$variant" != "tls" ] || [ -n "$(ss -Hltn 'sport = :3869' 2> /dev/null)" ]
}
ready=0
for _ in $(seq 1 200); do # 200 x 50 ms = 10 s
  if ! kill -0 "$fd_pid" 2> /dev/null; then
    break
  fi
  if listening; then
    ready=1
    break
  fi
  sleep 0.05
done
if [ "$ready" -ne 1 ]; then
  echo "$prog: freeDiameterd exited or did not listen on port 3868 within 10 s; its log:" >&2
  tail -n 60 "$log" >&2 || true
  exit 1
fi

export DIAMPOOL_FD_ADDRESS="127.0.0.1:3868"
export DIAMPOOL_FD_HOST="$identity"
export DIAMPOOL_FD_REALM="$realm"
export DIAMPOOL_FD_TW=6
export DIAMPOOL_FD_VARIANT="$variant"
export DIAMPOOL_FD_LOG="$log"
export DIAMPOOL_FD_DIR="$dir"
export DIAMPOOL_FD_PID="$fd_pid"
export DIAMPOOL_FD_CA_FILE="$dir/ca.pem"
export DIAMPOOL_FD_CLIENT_CERT="$dir/client.pem"
export DIAMPOOL_FD_CLIENT_KEY="$dir/client.key"
if [ "$variant" = "tls" ]; then
  export DIAMPOOL_FD_TLS_ADDRESS="127.0.0.1:3869"
fi

status=0
"$@" || status=$?

if [ "$status" -ne 0 ]; then
  echo "$prog: '$*' exited with status $status; freeDiameter log (last 80 lines):" >&2
  tail -n 80 "$log" >&2 || true
fi
stop_freediameter
exit "$status"
