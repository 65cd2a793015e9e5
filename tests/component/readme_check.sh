#!/usr/bin/env bash
# The README's Nth ```cpp block (default: the first) must be exactly the marked lines of a
# compiled example, so the snippet users copy is code the test suite builds and runs.
#   readme_check.sh README.md example.cpp [N]
set -euo pipefail
readme=$1
example=$2
index=${3:-1}
snippet=$(awk -v want="$index" '/^```cpp$/ {n++; if (n == want) {on=1; next}} on && /^```$/ {exit} on {print}' "$readme")
marked=$(awk '/README-END/ {on=0} on {print} /README-BEGIN/ {on=1}' "$example")
if [ "$snippet" != "$marked" ]; then
  echo "README snippet and $example differ:"
  diff <(echo "$snippet") <(echo "$marked") || true
  exit 1
fi
echo "README snippet matches $example ($(echo "$snippet" | wc -l) lines)"
