#!/usr/bin/env bash
# Runs every project under examples/ the way a downstream CI job would (issue #16): packs the
# package (npm pack), installs the tarball offline into a temporary project (a lock made from this
# repository's by scripts/consumer-lock.mjs, so `npm ci --offline` takes everything from the npm
# cache `npm ci` filled; install scripts run: pcsclite is built), then runs each example through
# `sc-hsm-ts sim run` from that install and prints how long each took. Needs dist/ (npm run build)
# and, for the private pcscd, root. Any failure fails the script; scripts/ci.sh calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ -f dist/cli.js ] || { echo "!! dist/ is missing: npm run build first" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sc-hsm-ts-examples-XXXXXX")
# EXAMPLES_KEEP=1 keeps the project (to debug an example); EXAMPLES_ONLY=NAME runs that one
[ "${EXAMPLES_KEEP:-}" = 1 ] && echo "   keeping $work" || trap 'rm -rf "$work"' EXIT
tarball="$work/$(npm pack --silent --pack-destination "$work" | tail -n 1)"
app="$work/app"
mkdir -p "$app"
node -e '
  const own = require(process.argv[1] + "/package.json");
  const pkg = { name: "sc-hsm-ts-examples", private: true, type: "module",
    devDependencies: { vitest: own.devDependencies.vitest, "@types/node": own.devDependencies["@types/node"] } };
  require("fs").writeFileSync(process.argv[2] + "/package.json", JSON.stringify(pkg, null, 2) + "\n");
' "$ROOT" "$app"
node scripts/consumer-lock.mjs "$ROOT" "$app" "$tarball"
echo "== installing $(basename "$tarball") offline into an example project"
(cd "$app" && npm ci --offline --no-audit --no-fund --loglevel=error >/dev/null)
for d in examples/*/; do cp -r "$d" "$app/$(basename "$d")"; done

# test secrets for the virtual cards, from the environment (never on a command line of ours)
# sim run removes the variables its env: secrets name from every child's environment: the card is
# initialized from INIT_PIN, and the apps that must log in read PIN (the same test PIN).
export SO_PIN=3537363231383830 PIN=648219 INIT_PIN=648219
sim() { (cd "$app" && npx --no-install sc-hsm-ts sim run "$@"); }
results=()
run() {
  local name=$1
  shift
  [ -n "${EXAMPLES_ONLY:-}" ] && [ "$EXAMPLES_ONLY" != "$name" ] && return 0
  echo "== example $name"
  local t0 t1
  t0=$(date +%s%N)
  "$@"
  t1=$(date +%s%N)
  results+=("$(awk -v n="$name" -v a="$t0" -v b="$t1" 'BEGIN { printf "%-16s %6.1f s", n, (b - a) / 1e9 }')")
}
run pkcs11-node sim --init --so-pin env:SO_PIN --pin env:INIT_PIN --label APP -- sh -c 'cd pkcs11-node && node sign.mjs'
run openssl-engine sim --init --so-pin env:SO_PIN --pin env:INIT_PIN --label APP -- sh -c 'cd openssl-engine && bash sign.sh'
run provision sim --cards 2 -- sh -c 'cd provision && bash provision.sh'
run vitest-app sim --cards 0 -- npx --no-install vitest run vitest-app
echo "== examples: all passed"
printf '   %s\n' "${results[@]}"
