#!/bin/bash
# Builds a busybox root filesystem from Debian's busybox-static in DIR (default: a
# new temp dir) and prints its path.
set -euo pipefail
dir=${1:-$(mktemp -d /tmp/ccrun-rootfs.XXXXXX)}
bb=$(command -v busybox)
mkdir -p "$dir"/{bin,etc,root,tmp,proc,sys,dev}
chmod 1777 "$dir/tmp"
cp "$bb" "$dir/bin/busybox"
for applet in $("$bb" --list); do
  [[ $applet == busybox ]] || ln -sf busybox "$dir/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
echo "$dir"
