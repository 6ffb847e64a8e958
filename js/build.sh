#!/usr/bin/env bash
# Build the JupyterLab extension from js/ into castray_nb/labextension, reproducibly.
#
# The bundler names the extension's entry module after its absolute path, so two clones in
# two places would build two different files. The build therefore always runs in the same
# place (a copy of js/ under /tmp), and its output is copied back. Needs Node.js 20 and
# JupyterLab's jlpm (pip install -e ".[test]" brings it).
set -euo pipefail
src="$(cd "$(dirname "$0")" && pwd)"
out="$src/../castray_nb/labextension"
work="/tmp/castray-nb-js-build"
mkdir -p "$work/js"
rm -rf "$work/js/src" "$work/js/schema" "$work/js/style" "$work/js/lib" "$work/castray_nb"
cp "$src/package.json" "$src/yarn.lock" "$src/.yarnrc.yml" "$src/tsconfig.json" "$work/js/"
cp -r "$src/src" "$src/schema" "$src/style" "$work/js/"
cd "$work/js"
jlpm install --immutable
jlpm build
rm -rf "$out"
cp -r "$work/castray_nb/labextension" "$out"
