#!/usr/bin/env bash
# Applies every example for real in a throwaway network namespace, shows the resulting IPVS table (ours, then
# ipvsadm's for comparison), and shows that a second plan has nothing to do. Needs root and a kernel with IPVS: on a
# machine without, run it inside the project's VM with `tests/vm/run -- examples/demo.sh`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${IPVS_RECONCILER_BIN:-target/release/ipvs-reconciler}
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }

ns=ipvs-demo-$$
state=$(mktemp -d)
ip netns add "$ns"
trap 'ip netns del "$ns"; rm -rf "$state"' EXIT
# A fresh namespace refuses every destination until loopback is up; the dummy interface routes the backends.
ip -n "$ns" link set lo up
ip -n "$ns" link add ipvs-ex type dummy
ip -n "$ns" link set ipvs-ex up
ip -n "$ns" addr add 10.0.255.1/16 dev ipvs-ex
ip -n "$ns" -6 addr add fd00::ffff/64 dev ipvs-ex nodad

echo "### ipvs-reconciler apply -f examples/"
"$bin" --netns "$ns" apply -f examples/ --state "$state/state.json"
echo
echo "### ipvs-reconciler dump"
"$bin" --netns "$ns" dump
echo
echo "### ipvs-reconciler dump --addresses (the VIPs it bound on ipvs0, so that the node takes their packets)"
"$bin" --netns "$ns" dump --addresses --state "$state/state.json"
echo
echo "### ipvsadm -Ln (the reference client reads the same table)"
ip netns exec "$ns" ipvsadm -Ln
echo
echo "### ipvs-reconciler plan -f examples/ (a second pass has nothing to do)"
"$bin" --netns "$ns" plan -f examples/ --state "$state/state.json"
