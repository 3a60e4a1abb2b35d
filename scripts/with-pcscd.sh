#!/usr/bin/env bash
# Runs a command next to a private pcscd (spec/pcsc-stack.md §6, "isolated variant"):
# own mount, network and PID namespaces, a tmpfs on /run/pcscd, loopback up with the quickack
# route for 127.0.0.2 (44 ms -> 0.16 ms per APDU, §5). Virtual cards connect to
# $VPCD_HOST:$VPCD_PORT. Nothing outlives the command: when it exits, the namespace's PID 1 goes
# and takes pcscd and any left-over card process with it.
#
#   bash scripts/with-pcscd.sh npx vitest run test/pcsc
#
# Without root / unshare / ip / pcscd: loud banner; exit 1 under CI=true, else the command runs
# without SC_HSM_PCSC so the interop tests report themselves as not run.
set -u

if [ "$#" -eq 0 ]; then
  echo "usage: bash scripts/with-pcscd.sh COMMAND [ARGS...]" >&2
  exit 2
fi

if [ "${SC_HSM_PCSC_INNER:-}" = "1" ]; then
  # ---- inside the namespaces ----
  fail() { echo "with-pcscd: $*" >&2; exit 1; }
  mount -t tmpfs -o mode=0755 tmpfs /run/pcscd || fail "cannot mount a tmpfs on /run/pcscd"
  ip link set lo up || fail "cannot bring up lo in the network namespace"
  # spec/pcsc-stack.md §5: makes the card side ACK at once, so vpcd's Nagle-held payload leaves at once.
  ip route add local 127.0.0.2/32 dev lo table local quickack 1 || fail "cannot add the quickack route"
  LOGDIR=$(mktemp -d /tmp/with-pcscd.XXXXXX)
  LOG="$LOGDIR/pcscd.log"
  # Never -x/--auto-exit: it would leave after 60 s without clients (spec §1).
  # shellcheck disable=SC2086 # PCSCD_ARGS (e.g. "--apdu" while debugging) is meant to split
  pcscd --foreground ${PCSCD_ARGS:-} >"$LOG" 2>&1 &
  PCSCD_PID=$!
  for _ in $(seq 100); do
    [ -S /run/pcscd/pcscd.comm ] && break
    kill -0 "$PCSCD_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [ ! -S /run/pcscd/pcscd.comm ]; then
    echo "with-pcscd: pcscd did not come up within 5 s; its log: $LOG" >&2
    cat "$LOG" >&2
    kill "$PCSCD_PID" 2>/dev/null
    exit 1
  fi
  export SC_HSM_PCSC=1 VPCD_HOST=127.0.0.2 VPCD_PORT=35963 SC_HSM_PCSCD_PID="$PCSCD_PID" SC_HSM_PCSCD_LOG="$LOG"
  unset SC_HSM_PCSC_INNER
  "$@"
  rc=$?
  if kill -0 "$PCSCD_PID" 2>/dev/null; then
    kill "$PCSCD_PID"
    wait "$PCSCD_PID" 2>/dev/null
  else
    echo "with-pcscd: pcscd (pid $PCSCD_PID) was no longer running at the end; its log: $LOG" >&2
    [ "$rc" -eq 0 ] && rc=1
  fi
  if [ "$rc" -ne 0 ]; then
    echo "with-pcscd: command exited $rc; pcscd log: $LOG" >&2
  else
    rm -rf "$LOGDIR"
  fi
  exit "$rc"
fi

# ---- outside: preconditions ----
problems=()
[ "$(id -u)" = "0" ] || problems+=("not root (pcscd, unshare and ip route need root)")
for tool in pcscd unshare ip mount; do
  command -v "$tool" >/dev/null 2>&1 || problems+=("'$tool' not found (apt-get install pcscd vsmartcard-vpcd util-linux iproute2)")
done
[ -e /etc/reader.conf.d/vpcd ] || problems+=("vpcd reader driver missing: apt-get install vsmartcard-vpcd")

if [ "${#problems[@]}" -gt 0 ]; then
  {
    echo "################################################################################"
    echo "## with-pcscd: CANNOT START THE ISOLATED pcscd"
    for p in "${problems[@]}"; do echo "##   - $p"; done
    if [ "${CI:-}" = "true" ]; then
      echo "## CI=true: failing (the PC/SC interop tests must run in CI)."
    else
      echo "## Running the command WITHOUT SC_HSM_PCSC: the PC/SC interop tests will NOT run."
    fi
    echo "################################################################################"
  } >&2
  [ "${CI:-}" = "true" ] && exit 1
  env -u SC_HSM_PCSC "$@"
  exit $?
fi

mkdir -p /run/pcscd
SC_HSM_PCSC_INNER=1 exec unshare --mount --net --pid --fork --mount-proc --kill-child -- bash "$(readlink -f "$0")" "$@"
