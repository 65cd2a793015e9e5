#!/usr/bin/env bash
# `diampool send` against freeDiameter (run inside run.sh, which exports DIAMPOOL_FD_*).
# freeDiameter serves no application here, so a request of application 16777215 gets
# 3002 DIAMETER_UNABLE_TO_DELIVER with the E bit: send exits 3 and prints that answer. An
# Origin-Host outside *.example.com gets CEA 3010: send exits 4 and says so.
#
#   cli_send.sh DIAMPOOL_BINARY
set -uo pipefail
diampool=$1
: "${DIAMPOOL_FD_ADDRESS:?run this inside tests/interop/freediameter/run.sh}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

request=(send --log-level off --to "$DIAMPOOL_FD_ADDRESS" --app 16777215 --cmd 16777214
  --destination-realm "$DIAMPOOL_FD_REALM" --timeout 10 --avp User-Name=alice)

# Each send uses its own Origin-Host: freeDiameter refuses (5012) a second connection from an
# Origin-Host it still knows.
"$diampool" "${request[@]}" --origin-host cli.example.com > "$work/text.out" 2> "$work/text.err"
rc=$?
[ "$rc" = 3 ] || fail "send exited $rc, expected 3: $(cat "$work/text.out" "$work/text.err")"
for pattern in \
  '^Command 16777214 Answer  flags=-.E- app=16777215 ' \
  'Result-Code (268) \[-M-\] Unsigned32: 3002 DIAMETER_UNABLE_TO_DELIVER' \
  "Origin-Host (264) \[-M-\] DiameterIdentity: \"$DIAMPOOL_FD_HOST\"" \
  'Session-Id (263) \[-M-\] UTF8String: "cli\.example\.com;[0-9]*;[0-9]*"'; do
  grep -q -- "$pattern" "$work/text.out" || fail "answer lacks '$pattern': $(cat "$work/text.out")"
done
grep -q "diampool send: error answer: Result-Code 3002 DIAMETER_UNABLE_TO_DELIVER (E bit set)" \
  "$work/text.err" || fail "stderr: $(cat "$work/text.err")"

"$diampool" "${request[@]}" --origin-host cli-json.example.com --json > "$work/json.out" \
  2> "$work/json.err"
rc=$?
[ "$rc" = 3 ] || fail "send --json exited $rc, expected 3: $(cat "$work/json.out" "$work/json.err")"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["command_code"] == 16777214 and d["application_id"] == 16777215, d
assert d["flags"]["E"] is True and d["flags"]["R"] is False, d["flags"]
assert d["result_code"] == 3002, d
avps = {a["name"]: a for a in d["avps"] if a["name"]}
assert avps["Origin-Host"]["value"] == sys.argv[2], avps
assert avps["Session-Id"]["value"].startswith("cli-json.example.com;"), avps
' "$work/json.out" "$DIAMPOOL_FD_HOST" || fail "send --json output: $(cat "$work/json.out")"

# Not in the allow-list: the capabilities exchange fails with 3010 DIAMETER_UNKNOWN_PEER.
"$diampool" "${request[@]}" --origin-host cli.example.org > "$work/refused.out" \
  2> "$work/refused.err"
rc=$?
[ "$rc" = 4 ] || fail "send as cli.example.org exited $rc, expected 4: $(cat "$work/refused.err")"
grep -q "capabilities exchange (CER/CEA) failed ($DIAMPOOL_FD_ADDRESS): CEA Result-Code 3010" \
  "$work/refused.err" || fail "stderr: $(cat "$work/refused.err")"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "freediameter_cli_send: all checks passed"
