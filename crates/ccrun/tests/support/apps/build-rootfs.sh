#!/bin/bash
# Builds the shared root filesystem of the application test images (see
# ../app_images.rs) in DEST, which must not exist: Debian bookworm (minbase, like
# debian:bookworm-slim, which the official nginx, redis and postgres images start
# from) with bookworm-updates and bookworm-security, and Debian's nginx,
# redis-server and postgresql-15 with their dependencies and nothing recommended.
#
#   build-rootfs.sh DEST [MIRROR]
#
# Packages are installed with their maintainer scripts (so www-data, redis and
# postgres exist as the packages make them), with services kept from starting
# (policy-rc.d) and without the cluster postgresql-common would create: the image's
# entrypoint runs initdb in $PGDATA on first start, as the official image does.
# Docs, man pages, locales and apt's caches are dropped, as in debian:*-slim.
set -euo pipefail

dest=${1:?usage: build-rootfs.sh DEST [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
if [[ -e $dest ]]; then
  echo "build-rootfs.sh: $dest exists" >&2
  exit 2
fi

debootstrap --variant=minbase bookworm "$dest" "$mirror" >"$dest.debootstrap.log" 2>&1 || {
  tail -n 30 "$dest.debootstrap.log" >&2
  exit 1
}
rm -f "$dest.debootstrap.log"

cat >"$dest/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
SOURCES
# As debian:*-slim: never unpack docs, man pages or translations.
cat >"$dest/etc/dpkg/dpkg.cfg.d/docker-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
SLIM
printf '#!/bin/sh\n# No service starts while the image is built.\nexit 101\n' >"$dest/usr/sbin/policy-rc.d"
chmod 0755 "$dest/usr/sbin/policy-rc.d"
mkdir -p "$dest/etc/postgresql-common/createcluster.d"
echo 'create_main_cluster = false' >"$dest/etc/postgresql-common/createcluster.d/no-main-cluster.conf"

mount -t proc proc "$dest/proc"
trap 'umount "$dest/proc"' EXIT
in_root() { chroot "$dest" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
in_root apt-get update -qq
in_root apt-get install -y -qq --no-install-recommends nginx redis-server postgresql-15 >/dev/null
in_root apt-get clean
# What the images hold, for the cache's record and the images' labels.
in_root dpkg-query -W -f '${Package}=${Version}\n' nginx redis-server postgresql-15 >"$dest.versions"
umount "$dest/proc"
trap - EXIT

# What only the build needed, and what the host leaked in (ccrun writes the
# container's own hostname and resolv.conf).
rm -f "$dest/usr/sbin/policy-rc.d"
rm -rf "$dest"/var/lib/apt/lists/* "$dest"/var/cache/apt/*.bin "$dest"/var/log/apt/* \
  "$dest"/var/cache/debconf/*-old "$dest"/var/lib/dpkg/*-old
find "$dest/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$dest/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$dest"/usr/share/man/* "$dest"/usr/share/info/* "$dest"/usr/share/locale/*
rm -rf "${dest:?}"/dev/* "$dest"/proc/* "$dest"/sys/* "$dest"/tmp/*
: >"$dest/etc/hostname"
: >"$dest/etc/resolv.conf"
