#!/usr/bin/env bash
# Builds the Docker image the deployment tests use as a "VM": Debian 12
# (bookworm) from Debian's archive with systemd as PID 1, python3 (for
# Ansible's modules) and cloud-init (for the Terraform module's user data).
#
# Docker has no image registry here, so the root filesystem is made with
# debootstrap and imported with `docker import`. Both steps are cached:
#   1. the image tag carries a hash of this file, so an unchanged recipe is
#      reused as it is;
#   2. the root filesystem tarball is kept in $CARPKV_DEPLOY_CACHE
#      (default /var/cache/carpkv-deploy), so a machine whose Docker images
#      were pruned re-imports it in seconds instead of bootstrapping again.
# Prints the image reference on stdout; progress goes to stderr.
set -euo pipefail

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${CARPKV_DEPLOY_CACHE:-/var/cache/carpkv-deploy}
# Everything the hosts need beyond minbase, installed with apt inside the
# new root (debootstrap's own resolver trips over virtual packages such as
# cloud-init's python3-cffi-backend-api). cloud-init pulls in its Python
# dependencies; iproute2 gives Ansible its network facts.
PACKAGES="systemd systemd-sysv dbus python3 python3-apt cloud-init curl ca-certificates iproute2 procps less"

recipe=$(sha256sum "$0" | cut -c1-12)
IMAGE=carpkv-deploy/bookworm-systemd:$recipe
TARBALL=$CACHE/bookworm-systemd-$recipe.tar
log() { echo "image: $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE is present"
  echo "$IMAGE"
  exit 0
fi

if [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
  mkdir -p "$CACHE"
  root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  trap 'umount_all "$root"; rm -rf "$root"' EXIT
  umount_all() { for m in proc sys dev/pts dev; do umount "$1/$m" 2>/dev/null || true; done; }
  log "debootstrap bookworm from $MIRROR into $root (a few minutes)"
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { cp "$root/debootstrap/debootstrap.log" "$root.debootstrap.log" 2>/dev/null; tail -n 30 "$root.log" >&2; exit 1; }
  log "installing $PACKAGES"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" # start no services in the chroot
  chmod +x "$root/usr/sbin/policy-rc.d"
  mount -t proc proc "$root/proc"
  # shellcheck disable=SC2086 # PACKAGES is a list
  chroot "$root" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES" \
    >>"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; exit 1; }
  rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"

  # A container is a VM without a console, udev or kernel to manage: mask
  # what would wait for those, and let Docker own the network (as a cloud
  # platform does).
  for unit in getty@.service serial-getty@.service console-getty.service getty.target \
      systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
      sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
      systemd-remount-fs.service systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer \
      e2scrub_reap.service e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
  done
  cat >"$root/etc/cloud/cloud.cfg.d/90-container.cfg" <<'CFG'
# Docker configures the network of these test VMs, as a cloud platform does.
network: {config: disabled}
# The seed directory (/var/lib/cloud/seed/nocloud) is the only data source:
# without one (the Ansible-managed hosts) cloud-init stays off.
datasource_list: [NoCloud]
# No en_US.UTF-8 locale is generated in this minimal image.
locale: C.UTF-8
CFG
  # Every container is a fresh machine: its machine ID is made at boot.
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  echo "deploy-test" >"$root/etc/hostname"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  umount_all "$root"
  log "packing the root filesystem into $TARBALL"
  tar --numeric-owner --xattrs -C "$root" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  rm -f "$root.log"
fi

log "importing $TARBALL as $IMAGE"
docker import \
  --change 'ENV container=docker' \
  --change 'CMD ["/sbin/init"]' \
  "$TARBALL" "$IMAGE" >/dev/null
# Drop what older recipes left (an image still used by a container stays).
find "$CACHE" -maxdepth 1 -name 'bookworm-systemd-*.tar' ! -path "$TARBALL" -delete
docker images --format '{{.Repository}}:{{.Tag}}' carpkv-deploy/bookworm-systemd | grep -vxF "$IMAGE" \
  | xargs -r docker rmi >/dev/null 2>&1 || true
echo "$IMAGE"
