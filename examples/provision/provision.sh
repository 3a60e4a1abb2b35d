#!/usr/bin/env bash
# Provisions a device with sc-hsm-ts (a DKEK share, init, the share imported, keys), backs it up,
# restores the backup onto a second device, and checks the second one signs with the same keys.
# Run with two fresh virtual cards:
#   sc-hsm-ts sim run --cards 2 -- bash provision.sh
# Secrets come from the environment (env:NAME), never from the command line.
set -euo pipefail
: "${SC_HSM_READER_0:?run under sc-hsm-ts sim run --cards 2}" "${SC_HSM_READER_1:?}"
export SO_PIN=${SO_PIN:-3537363231383830} PIN=${PIN:-648219} SHARE_PW=${SHARE_PW:-share-password-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cli() { npx sc-hsm-ts "$@"; }

cli dkek create "$work/share.pbe" --password env:SHARE_PW >/dev/null
for r in "$SC_HSM_READER_0" "$SC_HSM_READER_1"; do
  cli init --reader "$r" --so-pin env:SO_PIN --pin env:PIN --label "CA-HSM" --dkek-shares 1 --yes >/dev/null
  cli dkek import "$work/share.pbe" --reader "$r" --password env:SHARE_PW >/dev/null
done
cli keygen --reader "$SC_HSM_READER_0" --type ec:prime256v1 --label ca-ec --pin env:PIN >/dev/null
cli keygen --reader "$SC_HSM_READER_0" --type rsa:2048 --label ca-rsa --pin env:PIN >/dev/null
cli backup "$work/backup" --reader "$SC_HSM_READER_0" --pin env:PIN >/dev/null
cli restore "$work/backup" --reader "$SC_HSM_READER_1" --pin env:PIN --yes >/dev/null
# the same keys, by label and public key, on both devices
a=$(cli keys --reader "$SC_HSM_READER_0" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).keys.map(k=>`${k.label}:${k.publicKeySha256}`).sort().join(",")))')
b=$(cli keys --reader "$SC_HSM_READER_1" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).keys.map(k=>`${k.label}:${k.publicKeySha256}`).sort().join(",")))')
echo "device 0: $a"
echo "device 1: $b"
[ "$a" = "$b" ] || { echo "the restored device differs" >&2; exit 1; }
echo "provisioned, backed up and restored onto a second device"
