#!/usr/bin/env bash
# The package as a consumer gets it (issue #11): packs it (npm pack), installs the tarball offline
# into a temporary copy of each project under test/consumers/ (`npm ci --offline`, with a lock
# made from this repository's by scripts/consumer-lock.mjs: the npm cache that `npm ci` filled), type-checks each with `tsc -p` (strict, exactOptionalPropertyTypes, skipLibCheck false),
# loads every entry through import and require, and runs publint and arethetypeswrong on the
# tarball. Needs dist/ (npm run build). Any problem fails the script; scripts/ci.sh calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ -f dist/index.js ] || { echo "!! dist/ is missing: npm run build first" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sc-hsm-ts-package-XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== npm pack"
tarball="$work/$(npm pack --silent --pack-destination "$work" | tail -n 1)"
tar -tzf "$tarball" | sed 's|^package/||' >"$work/files.txt"
echo "   $(basename "$tarball"): $(wc -l <"$work/files.txt") files, $(du -k "$tarball" | cut -f1) kB"
if grep -E '\.map$|^src/|^test/' "$work/files.txt"; then
  echo "!! the tarball carries sourcemaps or sources (README, Design: The package)" >&2
  exit 1
fi

entries=(sc-hsm-ts sc-hsm-ts/sim sc-hsm-ts/webcrypto sc-hsm-ts/x509 sc-hsm-ts/testing)
for dir in test/consumers/*/; do
  name=$(basename "$dir")
  [ "$name" = common ] && continue
  echo "== consumer $name"
  cp -r "$dir" "$work/$name"
  # one source for all: the core program, and the host-side (DOM) part for the -dom projects
  mkdir -p "$work/$name/src"
  cp test/consumers/common/core.ts "$work/$name/src/main.ts"
  case "$name" in *-dom) cp test/consumers/common/dom.ts "$work/$name/src/host.ts" ;; esac
  # offline: a lock of the tarball and of this repository's versions, all in the cache `npm ci`
  # filled; no install scripts (pcsclite's native build is not needed to type-check or load)
  node scripts/consumer-lock.mjs "$ROOT" "$work/$name" "$tarball"
  (cd "$work/$name" && npm ci --offline --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
  node "$ROOT/node_modules/typescript/bin/tsc" -p "$work/$name"
  echo "   tsc: no errors"
done

echo "== every entry loads through import and require"
(cd "$work/esm" && for e in "${entries[@]}"; do
  node --input-type=module -e "const m = await import('$e'); if (!Object.keys(m).length) process.exit(1);"
  node --input-type=commonjs -e "if (!Object.keys(require('$e')).length) process.exit(1);"
done)
# one ScHsmError class for every entry, in both formats (shared chunks)
(cd "$work/esm" && node --input-type=commonjs -e "
  const { ScHsmError } = require('sc-hsm-ts');
  const { VirtualSmartCardHsm } = require('sc-hsm-ts/sim');
  const card = new VirtualSmartCardHsm();
  card.close().then(() => card.transmit(Uint8Array.of(0, 0xa4, 4, 0)))
    .then(() => process.exit(1), (e) => process.exit(e instanceof ScHsmError ? 0 : 1));")

# classes keep their names in the bundles (tsup keepNames): e.constructor.name, stack traces
(cd "$work/esm" && node --input-type=commonjs -e "
  const names = [require('sc-hsm-ts').ScHsmError.name, require('sc-hsm-ts').SmartCardHsm.name,
    require('sc-hsm-ts/sim').VirtualSmartCardHsm.name, require('sc-hsm-ts/testing').RecordingTransport.name];
  if (names.join() !== 'ScHsmError,SmartCardHsm,VirtualSmartCardHsm,RecordingTransport') {
    console.error('!! bundled class names: ' + names.join());
    process.exit(1);
  }" && node --input-type=module -e "
  const { ScHsmError } = await import('sc-hsm-ts');
  if (new ScHsmError('IO_ERROR', 'x').constructor.name !== 'ScHsmError') process.exit(1);")

echo "== publint"
npx --no-install publint run --strict "$tarball"
echo "== arethetypeswrong"
npx --no-install attw "$tarball"
echo "package ok"
