#!/usr/bin/env bash
# Runs COMMAND while capturing the Diameter traffic on lo, then has tshark decode the capture:
# it must hold Diameter messages and no malformed packet. Meant to run inside run.sh's private
# namespace, where lo carries only the test's own traffic:
#   run.sh -- capture.sh MIN_MESSAGES COMMAND ARGS...
# Exits with COMMAND's status if that failed, else 1 if the capture is not clean.
set -uo pipefail
min_messages=$1
shift
work=$(mktemp -d)
cap=$work/interop.pcapng
cleanup() {
  if [ -n "${dumpcap_pid:-}" ] && kill -0 "$dumpcap_pid" 2>/dev/null; then
    kill -INT "$dumpcap_pid" 2>/dev/null
    wait "$dumpcap_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

dumpcap -q -i lo -f 'tcp port 3868' -w "$cap" 2> "$work/dumpcap.err" &
dumpcap_pid=$!
# dumpcap says so on stderr once it captures; wait for that (bounded).
for _ in $(seq 1 100); do
  grep -q "Capturing on" "$work/dumpcap.err" 2>/dev/null && break
  kill -0 "$dumpcap_pid" 2>/dev/null || { cat "$work/dumpcap.err"; exit 1; }
  sleep 0.05
done
grep -q "Capturing on" "$work/dumpcap.err" || { echo "capture: dumpcap did not start"; exit 1; }

"$@"
status=$?
kill -INT "$dumpcap_pid"
wait "$dumpcap_pid" 2>/dev/null
dumpcap_pid=
[ "$status" -eq 0 ] || exit "$status"

export HOME=$work
# One line per frame; a frame may carry several messages (pipelined): count each.
messages=$(tshark -n -r "$cap" -Y diameter -T fields -E occurrence=a -E aggregator=' ' \
  -e diameter.cmd.code 2>/dev/null | wc -w)
malformed=$(tshark -n -r "$cap" -Y '_ws.malformed' 2>/dev/null | wc -l)
echo "capture: $messages Diameter messages, $malformed malformed packets"
if [ "$malformed" -ne 0 ]; then
  tshark -n -r "$cap" -Y '_ws.malformed' -V 2>/dev/null | head -60
  exit 1
fi
if [ "$messages" -lt "$min_messages" ]; then
  echo "capture: expected at least $min_messages Diameter messages"
  exit 1
fi
