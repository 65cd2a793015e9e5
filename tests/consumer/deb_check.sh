#!/usr/bin/env bash
# Debian package test: builds the .deb of this build tree with cpack into a scratch directory,
# checks its control fields and file list with dpkg-deb, extracts it (never installs it) and runs
# the packaged diampool tool.
#
# usage: deb_check.sh CPACK BUILD_DIR WORK_DIR VERSION GOLDEN_FILE LIBRARY...
#   CPACK        the cpack executable
#   BUILD_DIR    the configured and built diampool build tree (holds CPackConfig.cmake)
#   WORK_DIR     scratch directory, emptied first
#   VERSION      the project version the package must carry
#   GOLDEN_FILE  a tests/unit/golden/*.txt file: hex lines, "----", then the decoded text
#   LIBRARY...   file names of the libraries the package must hold under usr/lib
set -euo pipefail
export LC_ALL=C

fail() {
  echo "deb_check: FAIL: $*" >&2
  exit 1
}

[ $# -ge 6 ] || fail "usage: $0 CPACK BUILD_DIR WORK_DIR VERSION GOLDEN_FILE LIBRARY..."
cpack=$1 build_dir=$2 work_dir=$3 version=$4 golden=$5
shift 5
libraries=("$@")

# Missing tools are a failure, not a skip: the package is part of what the build delivers.
command -v "$cpack" >/dev/null 2>&1 ||
  fail "cpack not found ('$cpack'); it comes with the cmake package"
command -v dpkg-deb >/dev/null 2>&1 || fail "dpkg-deb not found; it comes with the dpkg package"
[ -f "$build_dir/CPackConfig.cmake" ] ||
  fail "$build_dir/CPackConfig.cmake missing: configure with DIAMPOOL_INSTALL=ON at top level"
[ -f "$golden" ] || fail "golden file $golden missing"

rm -rf "$work_dir"
mkdir -p "$work_dir/out" "$work_dir/root"

# 1. Build the package; everything cpack writes besides the build tree goes under work_dir.
if ! "$cpack" -G DEB -B "$work_dir/out" --config "$build_dir/CPackConfig.cmake" \
    >"$work_dir/cpack.log" 2>&1; then
  cat "$work_dir/cpack.log" >&2
  fail "cpack -G DEB failed"
fi
shopt -s nullglob
debs=("$work_dir"/out/*.deb)
shopt -u nullglob
[ ${#debs[@]} -eq 1 ] || fail "expected one .deb in $work_dir/out, found ${#debs[@]}"
deb=${debs[0]}
echo "deb_check: built $(basename "$deb")"

# CPACK_DEBIAN_FILE_NAME DEB-DEFAULT: <name>_<version>_<architecture>.deb
arch=$(dpkg --print-architecture 2>/dev/null || true)
if [ -n "$arch" ]; then
  [ "$(basename "$deb")" = "diampool_${version}_${arch}.deb" ] ||
    fail "file name $(basename "$deb") is not diampool_${version}_${arch}.deb"
fi

# 2. Control fields.
info=$(dpkg-deb -I "$deb") || fail "dpkg-deb -I $deb failed"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = "diampool" ] || fail "Package is '$(field Package)', not diampool"
[ "$(field Version)" = "$version" ] || fail "Version is '$(field Version)', not $version"
depends=$(field Depends)
[ -n "$depends" ] || fail "Depends is empty"
# The build-time needs of the CMake package, and a run-time library of the diampool tool.
for dep in libasio-dev libspdlog-dev libfmt-dev libprometheus-cpp-pull; do
  [[ ",$depends" == *[,\ ]"$dep"* ]] || fail "Depends lacks $dep: $depends"
done
[ -n "$(field Maintainer)" ] || fail "Maintainer is empty"
[ -n "$(field Description)" ] || fail "Description is empty"

# 3. File list.
listing=$(dpkg-deb -c "$deb") || fail "dpkg-deb -c $deb failed"
# The path is the last field, or the one before " -> target" for a symbolic link.
files=$(awk '{ print ($(NF-1) == "->") ? $(NF-2) : $NF }' <<<"$listing")
expect_file() {  # an extended regular expression for one whole path
  grep -Eqx "$1" <<<"$files" || fail "the package has no file matching $1"
}
expect_file '\./usr/bin/diampool'
expect_file '\./usr/include/diampool/address_client\.hpp'
expect_file '\./usr/lib/(.+/)?cmake/diampool/diampoolConfig\.cmake'
expect_file '\./usr/lib/(.+/)?cmake/diampool/diampoolConfigVersion\.cmake'
expect_file '\./usr/lib/(.+/)?cmake/diampool/diampool-targets\.cmake'
for lib in "${libraries[@]}"; do
  expect_file "\./usr/lib/(.+/)?${lib//./\\.}"
done
# Nothing outside /usr (CPACK_PACKAGING_INSTALL_PREFIX).
outside=$(grep -Ev '^\./(usr(/.*)?)?$' <<<"$files" || true)
[ -z "$outside" ] || fail "files outside /usr: $outside"

# 4. Extract into a scratch root and run the packaged tool.
dpkg-deb -x "$deb" "$work_dir/root" || fail "dpkg-deb -x $deb failed"
tool=$work_dir/root/usr/bin/diampool
[ -x "$tool" ] || fail "$tool is not executable"

out=$("$tool" --version) || fail "diampool --version exited $?"
[ "$out" = "diampool $version" ] || fail "diampool --version printed '$out', not 'diampool $version'"

hex=$(sed '/^----$/q' "$golden" | grep -v '^----$' | tr -d ' \n')
expected=$(sed -n '/^----$/{n;p;q}' "$golden")
[ -n "$hex" ] && [ -n "$expected" ] || fail "cannot read hex and text from $golden"
out=$("$tool" decode "$hex") || fail "diampool decode exited $? on $golden"
[ "$(head -n 1 <<<"$out")" = "$expected" ] ||
  fail "diampool decode printed '$(head -n 1 <<<"$out")', expected '$expected'"

echo "deb_check: control fields:"
echo "$info"
echo "deb_check: OK"
