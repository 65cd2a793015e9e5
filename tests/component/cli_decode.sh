#!/usr/bin/env bash
# `diampool decode` end to end: golden renderings, stdin and file input, several messages in
# one stream, and a clear error with the right exit code for each kind of bad input.
set -uo pipefail
diampool=$1
golden=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

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

all_hex=""
for f in "$golden"/*.txt; do
  sed '/^----$/,$d' "$f" > "$work/in.hex"
  sed '1,/^----$/d' "$f" > "$work/expected.txt"
  "$diampool" decode -f "$work/in.hex" > "$work/out.txt" || fail "decode -f $f exited $?"
  cmp -s "$work/out.txt" "$work/expected.txt" || fail "decode -f $f differs: $(diff "$work/out.txt" "$work/expected.txt")"
  "$diampool" decode < "$work/in.hex" > "$work/stdin.txt" || fail "decode < $f exited $?"
  cmp -s "$work/stdin.txt" "$work/expected.txt" || fail "decode < $f differs"
  all_hex+=$(tr -d '\n' < "$work/in.hex")
  cat "$work/expected.txt" >> "$work/all_expected.txt"
done

# Every golden message back to back as one argument: one tree per message, in order.
"$diampool" decode "$all_hex" > "$work/all.txt" || fail "decode of the whole stream exited $?"
cmp -s "$work/all.txt" "$work/all_expected.txt" || fail "stream decode differs"

cer=$(sed '/^----$/,$d' "$golden/cer.txt" | tr -d '\n')
expect 1 "not hex" -- "$diampool" decode "0${cer}"
expect 1 "not hex" -- "$diampool" decode "zz"
expect 1 "no input" -- "$diampool" decode ""
expect 1 "cannot open" -- "$diampool" decode -f "$work/missing.hex"
expect 2 "message length below the 20-byte header" -- "$diampool" decode "0100000c$(printf '0%.0s' {1..32})"
expect 2 "exceeds the maximum" -- "$diampool" decode "01fffffc$(printf '0%.0s' {1..32})"
expect 2 "exceeds the maximum" -- "$diampool" decode --max-size 100 "$cer"
expect 2 "Diameter version is not 1" -- "$diampool" decode "02000014$(printf '0%.0s' {1..32})"
expect 2 "ends inside a message" -- "$diampool" decode "${cer:0:200}"
# Origin-Realm (second AVP) claims 0x7f bytes: rendered up to the fault, then an error.
bad="${cer:0:110}7f${cer:112}"
expect 2 "AVP runs past the end of its parent" -- "$diampool" decode "$bad"
expect 0 "Device-Watchdog\|Capabilities-Exchange" -- "$diampool" decode "$cer"
expect 2 "" -- "$diampool" decode --no-such-option "$cer"
expect 0 "diampool 0.1.0" -- "$diampool" --version

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "cli_decode: all checks passed"
