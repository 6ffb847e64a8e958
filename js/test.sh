#!/usr/bin/env bash
# Run the sidebar's jest tests (js/test) where js/build.sh builds: the same copy of js/ under
# /tmp, the same locked packages. Extra arguments go to jest (--json, --outputFile=...).
set -euo pipefail
src="$(cd "$(dirname "$0")" && pwd)"
work="/tmp/castray-nb-js-build"
mkdir -p "$work/js"
rm -rf "$work/js/src" "$work/js/test" "$work/js/schema" "$work/js/style"
cp "$src/package.json" "$src/yarn.lock" "$src/.yarnrc.yml" "$src/tsconfig.json" "$src/tsconfig.test.json" "$work/js/"
cp -r "$src/src" "$src/test" "$src/schema" "$src/style" "$work/js/"
cd "$work/js"
jlpm install --immutable >/dev/null
jlpm jest "$@"
