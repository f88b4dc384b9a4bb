# Sourced by every phase, on the build host and in the chroot: defaults only, no host paths.

# Debian's non-free firmware packages are installed only when the build enables the
# non-free-firmware component (DIB_DEBIAN_COMPONENTS=main,non-free-firmware).
if [[ "${DIB_DEBIAN_COMPONENTS:-}" =~ non-free ]]; then
    export IRONIC_AGENT_DEBIAN_NONFREE=true
else
    export IRONIC_AGENT_DEBIAN_NONFREE=false
fi
# Mask systemd-networkd and its wait-online service (dhcp-all-interfaces configures the NICs
# with ifupdown + dhclient; waiting for networkd only delays network-online.target by 2 minutes).
export IRONIC_AGENT_MASK_NETWORKD=${IRONIC_AGENT_MASK_NETWORKD:-1}
