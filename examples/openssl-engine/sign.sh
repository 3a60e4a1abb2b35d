#!/usr/bin/env bash
# OpenSSL signs with a key on the virtual card through the PKCS#11 engine Debian 12 ships
# (libengine-pkcs11-openssl 0.4.12: libp11's engine, loading OpenSC's opensc-pkcs11.so); Debian 12
# has no pkcs11-provider package (bookworm: none; the OpenSSL 3 provider came later). Run under
#   SO_PIN=3537363231383830 INIT_PIN=648219 PIN=648219 \
#     sc-hsm-ts sim run --init --so-pin env:SO_PIN --pin env:INIT_PIN --label APP -- bash sign.sh
# (two variables for one PIN: sim run removes INIT_PIN, which its --pin names, from this
# process's environment; the app logs in with PIN)
# The key is generated with sc-hsm-ts itself (keygen through pcscd), so OpenSC writes nothing.
set -euo pipefail
: "${SC_HSM_PKCS11_MODULE:?run under sc-hsm-ts sim run}" "${PIN:?PIN must be set}"
engine=$(find /usr/lib -path '*/engines-3/pkcs11.so' | head -n 1)
[ -n "$engine" ] || { echo "libengine-pkcs11-openssl is not installed (apt-get install libengine-pkcs11-openssl)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

npx sc-hsm-ts keygen --reader "$SC_HSM_READER" --type ec:prime256v1 --label ossl-key --pin env:PIN >/dev/null
cat >"$work/openssl.cnf" <<CNF
openssl_conf = init
[init]
engines = engines
[engines]
pkcs11 = pkcs11
[pkcs11]
engine_id = pkcs11
dynamic_path = $engine
MODULE_PATH = $SC_HSM_PKCS11_MODULE
init = 0
CNF
export OPENSSL_CONF="$work/openssl.cnf"
printf 'release 1.2.3 manifest\n' >"$work/data"
# the PIN in the URI is the engine's way; a real deployment reads it from a file or a prompt
key="pkcs11:object=ossl-key;type=private;pin-value=$PIN"
openssl dgst -sha256 -engine pkcs11 -keyform engine -sign "$key" -out "$work/sig" "$work/data" 2>"$work/err" ||
  { cat "$work/err" >&2; exit 1; }
# the public key, read through the same module, to verify with plain OpenSSL
pkcs11-tool --module "$SC_HSM_PKCS11_MODULE" --read-object --type pubkey --label ossl-key --output-file "$work/pub.der" >/dev/null 2>&1
openssl pkey -pubin -inform DER -in "$work/pub.der" -out "$work/pub.pem"
openssl dgst -sha256 -verify "$work/pub.pem" -signature "$work/sig" "$work/data"
echo "openssl signed through $engine and $SC_HSM_PKCS11_MODULE on $SC_HSM_READER"
