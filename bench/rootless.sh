#!/bin/bash
# Benchmark (not a test): `run --rm IMAGE true` rootless against root, and against
# rootless podman as the same user, in one run with hyperfine; prints medians and ratios.
#
#   root      ccrun run --rm --network none IMAGE true          (as root, --userns auto)
#   rootless  the same as an unprivileged user                   (its own user namespace)
#   podman    podman --runtime runc run --rm --network none IMAGE true as that user
#             (rootless podman; runc, since Debian's crun refuses this host's hybrid
#             cgroups and the user cannot unmount the cgroup2 mount as the crun wrapper does)
#
# The user is made for the run (useradd, which gives it /etc/subuid and /etc/subgid
# entries in a free range) and removed at the end with its home, its subordinate ids
# and its processes (ccrun's pause process and podman's, by PID). IMAGE is
# 127.0.0.1:<free port>/library/busybox:latest from scripts/local-registry.sh, pulled
# by each before timing (warm runs); the registry is stopped afterwards.
#
#   bench/rootless.sh [RUNS]     (as root; default 30 runs of each after 3 warm-ups)
#
# CCRUN=PATH names the ccrun binary; else `cargo build --release -p ccrun` runs first.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
for t in hyperfine podman jq useradd setpriv; do
  command -v "$t" >/dev/null || { echo "needs $t (scripts/deps.sh)" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }
if [[ -z ${CCRUN:-} ]]; then
  cargo build --release -q -p ccrun
  CCRUN=$(realpath "${CARGO_TARGET_DIR:-target}/release/ccrun")
fi
work=$(mktemp -d /var/tmp/ccrun-bench-rootless.XXXXXX)
chmod 755 "$work"
user=ccbench$$
reg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
image=127.0.0.1:$reg_port/library/busybox:latest
subid_owner=ccrun-bench$$

cleanup() {
  set +e
  if id "$user" >/dev/null 2>&1; then
    for f in "$work/xdg/ccrun/pause.pid"; do
      [[ -f $f ]] && kill -KILL "$(cut -d' ' -f1 "$f")" 2>/dev/null
    done
    # podman's own pause process, by the PID it records.
    for f in "$work"/xdg/libpod/tmp/pause.pid "$work"/xdg/containers/pause.pid; do
      [[ -f $f ]] && kill -KILL "$(cat "$f")" 2>/dev/null
    done
    sleep 0.2
    userdel -r -f "$user" >/dev/null 2>&1
  fi
  for f in /etc/subuid /etc/subgid; do sed -i "/^$user:/d;/^$subid_owner:/d" "$f"; done
  PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh stop >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh start >/dev/null
useradd -m -s /bin/sh "$user"
mkdir -p "$work/xdg" && chown "$user:" "$work/xdg" && chmod 700 "$work/xdg"
home=/home/$user
as_user() {
  setpriv --reuid="$user" --regid="$user" --init-groups \
    env -i HOME="$home" PATH=/usr/bin:/bin XDG_RUNTIME_DIR="$work/xdg" "$@"
}
export -f as_user
export user home work

root_env=(env CCRUN_ROOT="$work/root" CCRUN_STATE="$work/state" CCRUN_USERNS_USER="$subid_owner")
"${root_env[@]}" "$CCRUN" pull -q "$image" >/dev/null
as_user "$CCRUN" pull -q "$image" >/dev/null
as_user podman --runtime runc --events-backend file --cgroup-manager cgroupfs pull -q --tls-verify=false "$image" >/dev/null

hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/out.json" \
  -n root "${root_env[*]} $CCRUN run --rm --network none $image true" \
  -n rootless "setpriv --reuid=$user --regid=$user --init-groups env -i HOME=$home PATH=/usr/bin:/bin XDG_RUNTIME_DIR=$work/xdg $CCRUN run --rm --network none $image true" \
  >/dev/null
# Rootless podman on this host takes about 20 s per `run --rm`: its debug log shows the
# container done at once, then "Exceeded conmon timeout waiting for container ... to
# exit" 20 s later (conmon, without cgroups or oom_score_adj here, never reports the
# exit). It gets fewer runs, each under a timeout, and its figure is that wait rather
# than podman's own speed; compare with root podman in bench/run-image.sh.
podman_runs=$((runs < 10 ? runs : 10))
hyperfine -N --warmup 1 --runs "$podman_runs" --export-json "$work/podman.json" \
  -n podman "timeout -k 1 30 setpriv --reuid=$user --regid=$user --init-groups env -i HOME=$home PATH=/usr/bin:/bin XDG_RUNTIME_DIR=$work/xdg podman --runtime runc --events-backend file --cgroup-manager cgroupfs run --rm --network none $image true" \
  >/dev/null

median() { jq -r ".results[] | select(.command == \"$1\") | .median" "$work/out.json" "$work/podman.json"; }
root=$(median root) rootless=$(median rootless) podman=$(median podman)
printf 'median run --rm IMAGE true (%s runs of ccrun, %s of podman)\n' "$runs" "$podman_runs"
printf '  ccrun as root      %7.1f ms\n' "$(jq -n "$root * 1000")"
printf '  ccrun rootless     %7.1f ms\n' "$(jq -n "$rootless * 1000")"
printf '  podman rootless    %7.1f ms\n' "$(jq -n "$podman * 1000")"
printf 'rootless / root:             %.2fx (target <= 1.5)\n' "$(jq -n "$rootless / $root")"
printf 'podman rootless / rootless:  %.2fx (target >= 5)\n' "$(jq -n "$podman / $rootless")"
python3 "$(dirname "$0")/results.py" rootless "run --rm IMAGE true, rootless" "ccrun rootless" "$(jq -n "$rootless * 1000")" "podman rootless" "$(jq -n "$podman * 1000")" ms "$podman_runs" lower
python3 "$(dirname "$0")/results.py" rootless "run --rm IMAGE true" "ccrun rootless" "$(jq -n "$rootless * 1000")" "ccrun as root" "$(jq -n "$root * 1000")" ms "$runs" lower
