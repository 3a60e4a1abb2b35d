#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is missing (Debian packages
# when run as root, then `npm ci`), type-checks, lints, builds, and runs every test; the PC/SC
# interop tests run inside a private pcscd (scripts/with-pcscd.sh). This is the README's test
# command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

# libengine-pkcs11-openssl: OpenSSL's PKCS#11 engine for examples/openssl-engine (scripts/examples.sh)
packages=(pcscd libccid libpcsclite-dev opensc vsmartcard-vpcd libssl-dev iproute2 util-linux libengine-pkcs11-openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "!! missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  fi
fi

echo "== npm ci"
npm ci --no-audit --no-fund
echo "== type check"
npm run --silent typecheck
echo "== lint"
npm run --silent lint
echo "== build"
npm run --silent build >/dev/null
echo "== package (npm pack; consumers type-checked against the tarball; publint, attw)"
bash scripts/check-package.sh
echo "== examples (the packed package in example projects, each through sc-hsm-ts sim run)"
bash scripts/examples.sh

mkdir -p .tmp
rm -f .tmp/vitest.json
echo "== tests (in-process, and through a private pcscd with OpenSC as the peer)"
set +e
bash scripts/with-pcscd.sh npx vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest.json
rc=$?
set -e
node scripts/test-summary.mjs .tmp/vitest.json || rc=1
exit "$rc"
