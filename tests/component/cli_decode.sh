#!/usr/bin/env bash
# `diampool decode` end to end: golden renderings, stdin and file input, several messages in
# one stream, packet captures (pcap and pcapng, built here with text2pcap), and a clear error
# with the right exit code for each kind of bad input.
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
expect 2 "excludes" -- "$diampool" decode --pcap "$work/x" -f "$work/y"

# ---------------------------------------------------------------------------------------------
# Packet captures. Fixtures are built here from the golden hex with text2pcap (Wireshark), so
# no binary is committed; classic pcap in other byte orders, resolutions and link types is
# derived from text2pcap's output by repack below. Skipped if text2pcap is not installed.
if ! command -v text2pcap > /dev/null; then
  echo "SKIP: text2pcap not installed, pcap input untested"
else
  hexof() { sed '/^----$/,$d' "$golden/$1.txt" | tr -d '\n'; }
  cea=$(hexof cea)
  acr=$(hexof acr)
  aca_error=$(hexof aca_error)
  dpr=$(hexof dpr)
  vendor_request=$(hexof vendor_request)

  # pkt DIR TIME HEX: one frame for text2pcap -D -t '%s.%f'. With the mkcap ports and
  # addresses, DIR I is client to server (10.0.0.1:40000 -> 10.0.0.2:3868), O the other way.
  pkt() {
    local h=$3 off=0
    echo "$1 $2"
    while [ -n "$h" ]; do
      printf '%06x %s\n' "$off" "$(fold -w2 <<< "${h:0:32}" | paste -sd' ')"
      h=${h:32}
      off=$((off + 16))
    done
  }
  # mkcap OUT TEXT2PCAP-OPTIONS... < frames (text2pcap's default: Ethernet, pcapng).
  mkcap() {
    local out=$1
    shift
    TZ=UTC text2pcap -q -D -t '%s.%f' -T 40000,3868 "$@" - "$out" > /dev/null 2>&1 ||
      fail "text2pcap $* failed"
  }
  v4=(-4 "10.0.0.1,10.0.0.2")
  v6=(-6 "2001:db8::1,2001:db8::2")
  C4="10.0.0.1:40000 -> 10.0.0.2:3868"
  S4="10.0.0.2:3868 -> 10.0.0.1:40000"
  C6="[2001:db8::1]:40000 -> [2001:db8::2]:3868"
  S6="[2001:db8::2]:3868 -> [2001:db8::1]:40000"
  # msg N FLOW TIME FRAME GOLDEN: the expected header line and rendering of one message.
  msg() {
    echo "#$1 $2 t=$3 frame=$4"
    sed '1,/^----$/d' "$golden/$5.txt"
  }
  # check NAME EXPECTED-FILE CODE -- command...: stdout equal to the file, exit status CODE;
  # stderr kept in $work/NAME.err.
  check() {
    local name=$1 want=$2 code=$3
    shift 4
    "$@" > "$work/$name.out" 2> "$work/$name.err"
    local rc=$?
    [ "$rc" = "$code" ] || fail "$name: '$*' exited $rc, expected $code: $(cat "$work/$name.err")"
    cmp -s "$work/$name.out" "$want" ||
      fail "$name: output differs: $(diff "$work/$name.out" "$want" | head -20)"
  }
  # The messages as "command-code hop-by-hop" pairs, sorted: pairs_of reads them from the
  # hex, tshark_pairs from Wireshark's dissection of a capture; hbh_of takes the hop-by-hop
  # ids from our output.
  pairs_of() {
    for h in "$@"; do printf '%d 0x%s\n' "0x${h:10:6}" "${h:24:8}"; done | sort
  }
  tshark_pairs() {
    tshark -r "$1" -Y diameter -T fields -e diameter.cmd.code -e diameter.hopbyhopid 2> /dev/null |
      awk -F'\t' '{ n = split($1, c, ","); split($2, h, ","); for (i = 1; i <= n; i++) print c[i], h[i] }' |
      sort
  }
  hbh_of() { grep -o 'hbh=0x[0-9a-f]*' "$1" | sed 's/hbh=//' | sort; }
  compare_tshark() {  # NAME CAPTURE OUR-OUTPUT HEX...
    local name=$1 cap=$2 out=$3
    shift 3
    [ "$(hbh_of "$out")" = "$(pairs_of "$@" | cut -d' ' -f2 | sort)" ] ||
      fail "$name: hop-by-hop ids differ from the input's: $(hbh_of "$out" | tr '\n' ' ')"
    if command -v tshark > /dev/null; then
      [ "$(tshark_pairs "$cap")" = "$(pairs_of "$@")" ] ||
        fail "$name: tshark sees other messages: $(tshark_pairs "$cap" | tr '\n' ' ')"
    fi
  }

  # Several messages, each split across segments, one direction; classic pcap, microseconds.
  {
    pkt I 1700000000.000001 "${cer:0:40}"
    pkt I 1700000000.000002 "${cer:40:160}"
    pkt I 1700000000.000003 "${cer:200}"
    pkt I 1700000000.000004 "${acr:0:100}"
    pkt I 1700000000.000005 "${acr:100}"
    pkt I 1700000000.000006 "$dpr"
  } > "$work/split.txt"
  mkcap "$work/split.pcap" -F pcap "${v4[@]}" < "$work/split.txt"
  {
    msg 1 "$C4" 1700000000.000003 3 cer
    msg 2 "$C4" 1700000000.000005 5 acr
    msg 3 "$C4" 1700000000.000006 6 dpr
  } > "$work/split.want"
  check split "$work/split.want" 0 -- "$diampool" decode --pcap "$work/split.pcap"
  grep -q "6 frames, 3 Diameter messages$" "$work/split.err" ||
    fail "split: summary: $(cat "$work/split.err")"
  compare_tshark split "$work/split.pcap" "$work/split.out" "$cer" "$acr" "$dpr"
  # -f recognises a capture by its magic number; --pcap - reads stdin.
  check split_f "$work/split.want" 0 -- "$diampool" decode -f "$work/split.pcap"
  check split_stdin "$work/split.want" 0 -- "$diampool" decode --pcap - < "$work/split.pcap"
  # Nanosecond pcap: nine digits of time.
  mkcap "$work/split_ns.pcap" -F nsecpcap "${v4[@]}" < "$work/split.txt"
  sed 's/^\(#.* t=[0-9]*\.[0-9]*\)/\1000/' "$work/split.want" > "$work/split_ns.want"
  check split_ns "$work/split_ns.want" 0 -- "$diampool" decode --pcap "$work/split_ns.pcap"
  # The "modified" pcap variant (24-byte record headers).
  mkcap "$work/split_mod.pcap" -F modpcap "${v4[@]}" < "$work/split.txt"
  check split_mod "$work/split.want" 0 -- "$diampool" decode --pcap "$work/split_mod.pcap"

  # Two or more messages in one segment, and one completed by the next segment.
  {
    pkt I 1700000000.000001 "$cer$acr"
    pkt I 1700000000.000002 "$dpr${vendor_request:0:60}"
    pkt I 1700000000.000003 "${vendor_request:60}"
  } > "$work/multi.txt"
  mkcap "$work/multi.pcap" -F pcap "${v4[@]}" < "$work/multi.txt"
  {
    msg 1 "$C4" 1700000000.000001 1 cer
    msg 2 "$C4" 1700000000.000001 1 acr
    msg 3 "$C4" 1700000000.000002 2 dpr
    msg 4 "$C4" 1700000000.000003 3 vendor_request
  } > "$work/multi.want"
  check multi "$work/multi.want" 0 -- "$diampool" decode --pcap "$work/multi.pcap"
  compare_tshark multi "$work/multi.pcap" "$work/multi.out" "$cer" "$acr" "$dpr" "$vendor_request"

  # Both directions interleaved, each with a partial message pending at the same time.
  {
    pkt I 1700000000.000001 "${cer:0:100}"
    pkt I 1700000000.000002 "${cer:100}${acr:0:50}"
    pkt O 1700000000.000003 "${cea:0:200}"
    pkt I 1700000000.000004 "${acr:50}"
    pkt O 1700000000.000005 "${cea:200}$aca_error"
    pkt O 1700000000.000006 "${dpr:0:40}"
    pkt I 1700000000.000007 "$vendor_request"
    pkt O 1700000000.000008 "${dpr:40}"
  } > "$work/both.txt"
  both_msgs() {  # CLIENT SERVER TIME-SUFFIX
    msg 1 "$1" "1700000000.000002$3" 2 cer
    msg 2 "$1" "1700000000.000004$3" 4 acr
    msg 3 "$2" "1700000000.000005$3" 5 cea
    msg 4 "$2" "1700000000.000005$3" 5 aca_error
    msg 5 "$1" "1700000000.000007$3" 7 vendor_request
    msg 6 "$2" "1700000000.000008$3" 8 dpr
  }
  both_hex=("$cer" "$acr" "$cea" "$aca_error" "$vendor_request" "$dpr")
  both_msgs "$C4" "$S4" "" > "$work/both4us.want"
  both_msgs "$C4" "$S4" 000 > "$work/both4ns.want"
  both_msgs "$C6" "$S6" "" > "$work/both6us.want"
  both_msgs "$C6" "$S6" 000 > "$work/both6ns.want"
  mkcap "$work/both.pcap" -F pcap "${v4[@]}" < "$work/both.txt"
  check both "$work/both4us.want" 0 -- "$diampool" decode --pcap "$work/both.pcap"
  compare_tshark both "$work/both.pcap" "$work/both.out" "${both_hex[@]}"

  # IPv6, pcapng (text2pcap's default format; nanosecond timestamps).
  mkcap "$work/both6.pcapng" "${v6[@]}" < "$work/both.txt"
  check both6 "$work/both6ns.want" 0 -- "$diampool" decode --pcap "$work/both6.pcapng"
  check both6_f "$work/both6ns.want" 0 -- "$diampool" decode -f "$work/both6.pcapng"
  compare_tshark both6 "$work/both6.pcapng" "$work/both6.out" "${both_hex[@]}"

  # Link types 228 and 229 (raw IPv4, raw IPv6) straight from text2pcap.
  mkcap "$work/both_228.pcap" -F pcap -l 228 "${v4[@]}" < "$work/both.txt"
  check both_228 "$work/both4us.want" 0 -- "$diampool" decode --pcap "$work/both_228.pcap"
  mkcap "$work/both_229.pcap" -F pcap -l 229 "${v6[@]}" < "$work/both.txt"
  check both_229 "$work/both6us.want" 0 -- "$diampool" decode --pcap "$work/both_229.pcap"

  # repack IN OUT LINK ORDER RES: rewrites a little-endian microsecond pcap of raw IP (link
  # type 101) as link type LINK (0 NULL, 1 Ethernet with a VLAN tag, 101 raw, 113 Linux SLL,
  # 276 Linux SLL2), byte order ORDER (le, be) and resolution RES (us, ns).
  repack() {
    od -An -v -tx1 "$1" | awk -v link="$3" -v order="$4" -v res="$5" '
      function num(h) { return (index(X, substr(h, 1, 1)) - 1) * 16 + index(X, substr(h, 2, 1)) - 1 }
      function get(at, k,   v, i) {
        v = 0
        for (i = k - 1; i >= 0; i--) v = v * 256 + num(b[at + i])
        return v
      }
      function put(v, k,   i, s) {
        for (i = 0; i < k; i++) { by[i] = sprintf("%02x", v % 256); v = int(v / 256) }
        s = ""
        for (i = 0; i < k; i++) s = s (order == "be" ? by[k - 1 - i] : by[i])
        return s
      }
      function prefix(version,   et) {
        et = version == "4" ? "0800" : "86dd"
        if (link == 0) return put(version == "4" ? 2 : 30, 4)
        if (link == 1) return "020000000002" "020000000001" "8100" "0064" et
        if (link == 113) return "0000" "0001" "0006" "0200000000010000" et
        if (link == 276) return et "0000" "00000001" "0001" "00" "06" "0200000000010000"
        return ""
      }
      BEGIN { X = "0123456789abcdef" }
      { for (i = 1; i <= NF; i++) b[n++] = $i }
      END {
        # Magic a1b23c4d (nanoseconds) or a1b2c3d4, version 2.4, snaplen 262144.
        out = put(res == "ns" ? 2712812621 : 2712847316, 4) put(2, 2) put(4, 2) put(0, 4)
        out = out put(0, 4) put(262144, 4) put(link, 4)
        for (at = 24; at + 16 <= n; at += 16 + len) {
          len = get(at + 8, 4)
          p = prefix(substr(b[at + 16], 1, 1))
          extra = length(p) / 2
          frac = get(at + 4, 4)
          out = out put(get(at, 4), 4) put(res == "ns" ? frac * 1000 : frac, 4)
          out = out put(len + extra, 4) put(get(at + 12, 4) + extra, 4) p
          for (i = 0; i < len; i++) out = out b[at + 16 + i]
        }
        print out
      }' | sed 's/../\\x&/g' > "$work/repack.esc"
    printf '%b' "$(cat "$work/repack.esc")" > "$2"
  }
  mkcap "$work/both4_101.pcap" -F pcap -l 101 "${v4[@]}" < "$work/both.txt"
  mkcap "$work/both6_101.pcap" -F pcap -l 101 "${v6[@]}" < "$work/both.txt"
  for variant in "0 le us" "0 be ns" "1 be ns" "1 le us" "101 be us" "113 le ns" "113 be us" \
    "276 be us" "276 le ns"; do
    read -r link order res <<< "$variant"
    for ip in 4 6; do
      name="link${link}_${order}_${res}_ipv$ip"
      repack "$work/both${ip}_101.pcap" "$work/$name.pcap" "$link" "$order" "$res"
      check "$name" "$work/both$ip$res.want" 0 -- "$diampool" decode --pcap "$work/$name.pcap"
    done
  done
  # The derived captures are valid for Wireshark too.
  compare_tshark link276_be_us_ipv6 "$work/link276_be_us_ipv6.pcap" \
    "$work/link276_be_us_ipv6.out" "${both_hex[@]}"
  compare_tshark link1_be_ns_ipv4 "$work/link1_be_ns_ipv4.pcap" "$work/link1_be_ns_ipv4.out" \
    "${both_hex[@]}"

  if command -v mergecap > /dev/null; then
    # Retransmissions: every frame twice. Each message is printed once, at its first copy.
    mergecap -F pcap -w "$work/dup.pcap" "$work/split.pcap" "$work/split.pcap"
    {
      msg 1 "$C4" 1700000000.000003 5 cer
      msg 2 "$C4" 1700000000.000005 9 acr
      msg 3 "$C4" 1700000000.000006 11 dpr
    } > "$work/dup.want"
    check dup "$work/dup.want" 0 -- "$diampool" decode --pcap "$work/dup.pcap"
    grep -q "6 retransmitted segments skipped" "$work/dup.err" || fail "dup: $(cat "$work/dup.err")"
    # Overlaps: the same bytes cut differently, so frame 3 repeats 60 bytes and adds the rest.
    { pkt I 1700000000.000001 "${cer:0:120}"; pkt I 1700000000.000004 "${cer:120}"; } |
      mkcap "$work/ovl_a.pcap" -F pcap "${v4[@]}"
    { pkt I 1700000000.000002 "${cer:0:60}"; pkt I 1700000000.000003 "${cer:60}"; } |
      mkcap "$work/ovl_b.pcap" -F pcap "${v4[@]}"
    mergecap -F pcap -w "$work/ovl.pcap" "$work/ovl_a.pcap" "$work/ovl_b.pcap"
    msg 1 "$C4" 1700000000.000003 3 cer > "$work/ovl.want"
    check ovl "$work/ovl.want" 0 -- "$diampool" decode --pcap "$work/ovl.pcap"
  fi

  # A gap (frame 4, the first 50 bytes of the ACR, not captured): the ACR is dropped with a
  # note, and decoding resumes at the DPR, the next segment that starts a Diameter header.
  if command -v editcap > /dev/null; then
    editcap -F pcap "$work/split.pcap" "$work/gap.pcap" 4
    {
      msg 1 "$C4" 1700000000.000003 3 cer
      msg 2 "$C4" 1700000000.000006 5 dpr
    } > "$work/gap.want"
    check gap "$work/gap.want" 0 -- "$diampool" decode --pcap "$work/gap.pcap"
    grep -q "frame 4, $C4: 50 bytes missing from the capture" "$work/gap.err" ||
      fail "gap: $(cat "$work/gap.err")"
    grep -q "frame 5, $C4: resynchronised on a Diameter header after skipping 250 bytes" \
      "$work/gap.err" || fail "gap: no resynchronisation note: $(cat "$work/gap.err")"
  fi

  # A capture that starts inside a message: skipped up to the next message start.
  { pkt I 1700000000.000001 "${cer:100}"; pkt I 1700000000.000002 "$cea"; } |
    mkcap "$work/mid.pcap" -F pcap "${v4[@]}"
  msg 1 "$C4" 1700000000.000002 2 cea > "$work/mid.want"
  check mid "$work/mid.want" 0 -- "$diampool" decode --pcap "$work/mid.pcap"
  grep -q "resynchronised on a Diameter header after skipping 78 bytes" "$work/mid.err" ||
    fail "mid: $(cat "$work/mid.err")"

  # A Diameter frame claiming 16 MiB inside TCP, after a CER: rejected from its header
  # (exit 2) with nothing allocated for it; the stream resumes at the DPR after it.
  {
    pkt I 1700000000.000001 "$cer"
    pkt I 1700000000.000002 "01fffffc${dpr:8}"
    pkt I 1700000000.000003 "$dpr"
  } | mkcap "$work/huge.pcap" -F pcap "${v4[@]}"
  {
    msg 1 "$C4" 1700000000.000001 1 cer
    msg 2 "$C4" 1700000000.000003 3 dpr
  } > "$work/huge.want"
  check huge "$work/huge.want" 2 -- "$diampool" decode --pcap "$work/huge.pcap"
  grep -q "frame 2, $C4: malformed message: message length exceeds the maximum" \
    "$work/huge.err" || fail "huge: $(cat "$work/huge.err")"
  # Under an address-space limit of the idle process's size plus 8 MiB, that capture still
  # decodes; accepting 16 MiB messages (the decoder then reserves one) does not: the limit
  # has teeth.
  # (Sanitizer builds reserve terabytes of address space: not tested there.)
  mkfifo "$work/idle.fifo"
  "$diampool" decode --pcap - < "$work/idle.fifo" > /dev/null 2>&1 &
  idle=$!
  exec 3> "$work/idle.fifo"  # the writer end, held open: the process waits for input
  vm=""
  for _ in $(seq 50); do  # until it has started and waits for its input
    if [ "$(readlink "/proc/$idle/exe" 2> /dev/null)" = "$(readlink -f "$diampool")" ] &&
      grep -q '^State:.*S' "/proc/$idle/status" 2> /dev/null; then
      vm=$(awk '/^VmPeak:/ { print $2 }' "/proc/$idle/status")
      break
    fi
    sleep 0.1
  done
  kill "$idle" 2> /dev/null
  exec 3>&-
  wait "$idle" 2> /dev/null
  if [ -n "$vm" ] && [ "$vm" -lt 1048576 ]; then
    run_limited() { (ulimit -v $((vm + 8192)) && exec "$diampool" decode "$@"); }
    expect 2 "exceeds the maximum" -- run_limited --pcap "$work/huge.pcap"
    expect 1 "bad_alloc" -- run_limited --max-size 16777215 --pcap "$work/huge.pcap"
  else
    echo "SKIP: process size unknown or huge (${vm:-?} KiB), allocation limit untested"
  fi

  # A message with a malformed AVP: rendered up to the fault, exit 2.
  pkt I 1700000000.000001 "$bad" | mkcap "$work/badavp.pcap" -F pcap "${v4[@]}"
  expect 2 "message #1 has malformed AVPs: AVP runs past the end of its parent" -- \
    "$diampool" decode --pcap "$work/badavp.pcap"

  # Hand-made IPv4 packets (text2pcap -l 101, no dummy headers) for what text2pcap's own
  # TCP headers cannot show: handshakes, sequence numbers wrapping past 2^32, FIN, a
  # non-Diameter connection, an IP fragment, UDP.
  # ip4 SRC DST PROTO FRAG PAYLOAD: an IPv4 packet; tcp4 SPORT DPORT SEQ FLAGS DATA: a TCP
  # segment from 10.0.0.1 (SPORT 40000/40001) or 10.0.0.2 (SPORT 3868/80).
  ip4() {
    printf '4500%04x0000%s40%02x0000%s%s%s' $((20 + ${#5} / 2)) "$4" "$3" "$1" "$2" "$5"
  }
  tcp4() {
    local src=0a000001 dst=0a000002
    [ "$1" -lt 10000 ] && src=0a000002 dst=0a000001
    ip4 $src $dst 6 4000 "$(printf '%04x%04x%08x0000000050%02x200000000000' "$1" "$2" "$3" "$4")$5"
  }
  isn=$((0xfffffff0))
  s1=$(((isn + 1) & 0xffffffff))
  s2=$(((s1 + 60) & 0xffffffff))
  s3=$(((s2 + 68) & 0xffffffff))
  {
    pkt I 1700000000.000001 "$(tcp4 40000 3868 $isn 0x02 "")"
    pkt I 1700000000.000002 "$(tcp4 40000 3868 $isn 0x02 "")"  # SYN retransmitted
    pkt I 1700000000.000003 "$(tcp4 3868 40000 1000 0x12 "")"
    pkt I 1700000000.000004 "$(tcp4 40000 3868 $s1 0x10 "${cer:0:120}")"
    pkt I 1700000000.000005 "$(tcp4 40000 3868 $s2 0x18 "${cer:120}")"
    pkt I 1700000000.000006 "$(ip4 0a000001 0a000002 6 2000 "${cer:0:40}")"  # a fragment
    pkt I 1700000000.000007 "$(ip4 0a000001 0a000002 17 4000 "9c400f1c00100000${cer:0:16}")"
    pkt I 1700000000.000008 "$(tcp4 40001 80 5000 0x02 "")"
    pkt I 1700000000.000009 "$(tcp4 40001 80 5001 0x18 "474554202f20485454502f312e300d0a")"
    pkt I 1700000000.000010 "$(tcp4 3868 40000 1001 0x18 "$cea")"
    pkt I 1700000000.000011 "$(tcp4 40000 3868 $s3 0x18 "${dpr:0:40}")"
    pkt I 1700000000.000012 "$(tcp4 40000 3868 $(((s3 + 20) & 0xffffffff)) 0x11 "")"
  } | TZ=UTC text2pcap -q -D -t '%s.%f' -F pcap -l 101 - "$work/hand.pcap" > /dev/null 2>&1 ||
    fail "text2pcap of hand-made packets failed"
  {
    msg 1 "$C4" 1700000000.000005 5 cer
    msg 2 "$S4" 1700000000.000010 10 cea
  } > "$work/hand.want"
  check hand "$work/hand.want" 2 -- "$diampool" decode --pcap "$work/hand.pcap"
  for note in "frame 6: IPv4 fragment skipped (IP reassembly is not supported)" \
    "10.0.0.1:40001 -> 10.0.0.2:80: not Diameter (first byte 0x47 is not version 1); stream ignored" \
    "frame 12, $C4: the connection closes (FIN) inside a message (56 more bytes needed)" \
    "12 frames, 2 Diameter messages, 1 malformed, 1 IP fragment skipped, 1 non-TCP frame skipped, 1 non-Diameter TCP stream ignored"; do
    grep -qF "$note" "$work/hand.err" || fail "hand: no '$note' in: $(cat "$work/hand.err")"
  done
  grep -q "new connection" "$work/hand.err" && fail "hand: a retransmitted SYN taken for a new connection"
  compare_tshark hand "$work/hand.pcap" "$work/hand.out" "$cer" "$cea"

  # A truncated capture: the messages before the cut, then exit 1 with a clear message.
  size=$(wc -c < "$work/split.pcap")
  head -c $((size - 10)) "$work/split.pcap" > "$work/trunc.pcap"
  {
    msg 1 "$C4" 1700000000.000003 3 cer
    msg 2 "$C4" 1700000000.000005 5 acr
  } > "$work/trunc.want"
  check trunc "$work/trunc.want" 1 -- "$diampool" decode --pcap "$work/trunc.pcap"
  grep -q "trunc.pcap: truncated: frame 6 at byte [0-9]* needs 130 bytes, the file ends after 120" \
    "$work/trunc.err" || fail "trunc: $(cat "$work/trunc.err")"
  head -c 20 "$work/split.pcap" > "$work/trunc_hdr.pcap"
  expect 1 "truncated: the 24-byte file header" -- "$diampool" decode --pcap "$work/trunc_hdr.pcap"
  expect 1 "truncated: the 24-byte file header" -- "$diampool" decode -f "$work/trunc_hdr.pcap"
  size=$(wc -c < "$work/both6.pcapng")
  head -c $((size - 30)) "$work/both6.pcapng" > "$work/trunc.pcapng"
  expect 1 "truncated: block at byte" -- "$diampool" decode --pcap "$work/trunc.pcapng"

  # Not a capture.
  sed '/^----$/,$d' "$golden/cer.txt" > "$work/cer.hex"
  expect 1 "not a pcap or pcapng capture (starts 30 31 30 30)" -- \
    "$diampool" decode --pcap "$work/cer.hex"
  : > "$work/empty"
  expect 1 "too short to be a pcap or pcapng capture" -- "$diampool" decode --pcap "$work/empty"
  printf '\x7fELF\x02\x01\x01\x00' > "$work/elf"
  expect 1 "not hex" -- "$diampool" decode -f "$work/elf"
  expect 1 "cannot open" -- "$diampool" decode --pcap "$work/missing.pcap"
  expect 1 "takes no hex arguments" -- "$diampool" decode --pcap "$work/split.pcap" "$cer"

  # Hostile lengths: a record and a pcapng block each claiming 4 GiB.
  cp "$work/split.pcap" "$work/hostile.pcap"
  printf '\xff\xff\xff\xff' | dd of="$work/hostile.pcap" bs=1 seek=32 conv=notrunc 2> /dev/null
  expect 1 "frame 1 at byte 24 claims 4294967295 captured bytes, more than the 262144-byte limit" \
    -- "$diampool" decode --pcap "$work/hostile.pcap"
  cp "$work/both6.pcapng" "$work/hostile.pcapng"
  u32() { od -An -tu4 -j"$2" -N4 "$1" | tr -d ' '; }  # text2pcap writes little-endian here
  shb=$(u32 "$work/hostile.pcapng" 4)
  idb=$(u32 "$work/hostile.pcapng" $((shb + 4)))
  printf '\xfc\xff\xff\xff' |
    dd of="$work/hostile.pcapng" bs=1 seek=$((shb + idb + 4)) conv=notrunc 2> /dev/null
  expect 1 "block at byte $((shb + idb)) (type 6) claims 4294967292 bytes, more than the" -- \
    "$diampool" decode --pcap "$work/hostile.pcapng"
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "cli_decode: all checks passed"
