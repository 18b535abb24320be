#!/bin/sh
# Runs a command in a network namespace of its own: loopback, plus a veth pair whose address is ours
# (livekit-sip's SIP library insists on one non-loopback IPv4 address). Nothing in it can reach another host,
# and its ports never clash with a `make run` stack outside.
# Usage: scripts/netns.sh COMMAND [ARGS...]   (needs root, or unprivileged user namespaces)
set -e
if [ "$(id -u)" != 0 ]; then
  exec unshare --map-root-user -n "$0" "$@"
fi
exec unshare -n sh -ec '
  ip link set lo up
  ip link add phone0 type veth peer name phone1
  ip addr add 10.77.0.1/24 dev phone0
  ip link set phone1 up
  ip link set phone0 up
  exec "$@"' netns "$@"
