#!/bin/bash
# A local image registry for demos and benchmarks: Debian's docker-registry (the CNCF
# distribution registry) on 127.0.0.1:$PORT over plain HTTP, holding a small real
# image, 127.0.0.1:$PORT/library/busybox:latest, built here from busybox-static.
#
#   scripts/local-registry.sh start    start (idempotent) and push the image
#   scripts/local-registry.sh stop     stop the registry this script started
#   scripts/local-registry.sh status   exit 0 if it runs, 3 if not
#
# Environment:
#   PORT                 port on 127.0.0.1 (default 5000)
#   CCRUN_REGISTRY_DIR   config, storage, log, pidfile (default /var/tmp/ccrun-registry-$PORT)
#
# Then, for example:  ccrun run --rm 127.0.0.1:5000/library/busybox echo hello
#
# The image is one gzip layer (a busybox rootfs made by scripts/make-busybox-rootfs.sh:
# /bin/busybox, its applet symlinks, /etc/passwd, /etc/group) and a config with
# Env PATH and Cmd ["sh"]. It is built reproducibly (sorted tar, fixed mtimes and
# owners), so pushing it again yields the same digest. `stop` kills only the PID in
# the pidfile, and only if that process is still this registry; storage is kept, so
# a later `start` is quick (remove $CCRUN_REGISTRY_DIR to start from scratch).
set -euo pipefail
umask 022

here=$(cd "$(dirname "$0")" && pwd)
port=${PORT:-5000}
if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
  echo "bad PORT: $port" >&2
  exit 2
fi
addr=127.0.0.1:$port
dir=${CCRUN_REGISTRY_DIR:-/var/tmp/ccrun-registry-$port}
config=$dir/config.yml
pidfile=$dir/registry.pid
log=$dir/registry.log
image=$addr/library/busybox:latest

usage() { echo "usage: $0 start|stop|status   (env: PORT, CCRUN_REGISTRY_DIR)" >&2; exit 2; }

# The PID in the pidfile, if that process is alive and is our registry (the PID was
# not reused): its command line must be `docker-registry serve $config`.
running_pid() {
  local pid cmdline
  [[ -r $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *docker-registry\ serve\ "$config"* ]] || return 1
  echo "$pid"
}

# Whether process $1 exists and is no zombie.
alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}

# Whether anything answers HTTP on the port.
answers() { curl -fsS -o /dev/null --max-time 2 "http://$addr/v2/" 2>/dev/null; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

has_image() {
  curl -fsS -o /dev/null --max-time 5 -I \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$addr/v2/library/busybox/manifests/latest" 2>/dev/null
}

# GOARCH (and variant) of this machine, as image configs spell it.
oci_arch() {
  case $(uname -m) in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    armv7l) echo arm ;;
    i?86) echo 386 ;;
    ppc64le) echo ppc64le ;;
    s390x) echo s390x ;;
    riscv64) echo riscv64 ;;
    *) uname -m ;;
  esac
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Builds the OCI image layout $1 (tag "latest") from a fresh busybox rootfs.
build_layout() {
  local layout=$1 work rootfs layer diff_id layer_digest config_digest manifest_digest arch
  work=$(mktemp -d "$dir/build.XXXXXX")
  rootfs=$("$here/make-busybox-rootfs.sh" "$work/rootfs")
  chmod 700 "$rootfs/root"
  rm -rf "$layout"
  mkdir -p "$layout/blobs/sha256"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

  # Top-level names without a ./ prefix, as registries' images have them.
  layer=$work/layer.tar
  (cd "$rootfs" && LC_ALL=C tar --sort=name --mtime=@1700000000 --owner=0 --group=0 \
    --numeric-owner --format=gnu -cf "$layer" -- *)
  diff_id=$(sha "$layer")
  gzip -n -6 "$layer"
  layer_digest=$(sha "$layer.gz")
  mv "$layer.gz" "$layout/blobs/sha256/$layer_digest"

  arch=$(oci_arch)
  jq -cn --arg arch "$arch" --arg diff "sha256:$diff_id" '{
      created: "2023-11-14T22:13:20Z", architecture: $arch, os: "linux",
      config: {Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
               Cmd: ["sh"]},
      rootfs: {type: "layers", diff_ids: [$diff]},
      history: [{created: "2023-11-14T22:13:20Z",
                 created_by: "ccrun scripts/local-registry.sh: busybox-static rootfs"}]
    } + (if $arch == "arm" then {variant: "v7"} else {} end)' >"$work/config.json"
  config_digest=$(sha "$work/config.json")
  cp "$work/config.json" "$layout/blobs/sha256/$config_digest"

  jq -cn --arg c "sha256:$config_digest" --argjson cs "$(stat -c %s "$work/config.json")" \
    --arg l "sha256:$layer_digest" --argjson ls "$(stat -c %s "$layout/blobs/sha256/$layer_digest")" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
      layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]
    }' >"$work/manifest.json"
  manifest_digest=$(sha "$work/manifest.json")
  cp "$work/manifest.json" "$layout/blobs/sha256/$manifest_digest"

  jq -cn --arg m "sha256:$manifest_digest" --argjson ms "$(stat -c %s "$work/manifest.json")" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
                   annotations: {"org.opencontainers.image.ref.name": "latest"}}]
    }' >"$layout/index.json"
  rm -rf "$work"
}

push_image() {
  local layout=$dir/busybox-oci
  build_layout "$layout"
  skopeo copy --quiet --dest-tls-verify=false "oci:$layout:latest" "docker://$image"
  echo "pushed $image"
}

need_tools() {
  local missing=() t
  for t in docker-registry skopeo busybox jq curl gzip sha256sum; do
    command -v "$t" >/dev/null || missing+=("$t")
  done
  if ((${#missing[@]})); then
    echo "missing: ${missing[*]}; installing the packages from scripts/deps.sh" >&2
    ((EUID == 0)) || { echo "run as root (or apt-get install docker-registry skopeo busybox-static jq curl)" >&2; exit 1; }
    "$here/deps.sh"
  fi
}

start() {
  local pid
  need_tools
  mkdir -p "$dir"
  # One start at a time per directory. The registry must not inherit the lock's fd.
  exec 9>"$dir/lock"
  flock 9
  if pid=$(running_pid); then
    echo "registry already running at $addr (pid $pid, $dir)"
    has_image || push_image
    echo "image: $image"
    return
  fi
  if port_in_use; then
    echo "127.0.0.1:$port is in use by another process; choose another PORT" >&2
    exit 1
  fi
  mkdir -p "$dir/storage"
  cat >"$config" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $addr
  secret: ccrun-local-registry
EOF
  # In its own session (setsid), so it outlives this script, its terminal and a ^C.
  # The shell writes its own PID, then execs the registry under that same PID.
  rm -f "$pidfile"
  # shellcheck disable=SC2016 # expanded by that shell
  setsid sh -c 'echo $$ >"$1.new" && mv "$1.new" "$1" && exec docker-registry serve "$2"' \
    sh "$pidfile" "$config" </dev/null >>"$log" 2>&1 9>&- &
  for _ in $(seq 50); do
    [[ -s $pidfile ]] && break
    sleep 0.1
  done
  pid=$(cat "$pidfile" 2>/dev/null || echo "$!")
  for _ in $(seq 150); do
    answers && break
    alive "$pid" || break
    sleep 0.1
  done
  if ! answers || ! running_pid >/dev/null; then
    echo "docker-registry did not start; last lines of $log:" >&2
    tail -n 20 "$log" >&2 || true
    kill "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    exit 1
  fi
  echo "registry running at $addr (pid $pid, $dir)"
  push_image
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    echo "registry at $addr not running"
    rm -f "$pidfile"
    return
  fi
  kill "$pid"
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$pidfile"
  echo "stopped registry at $addr (pid $pid)"
}

status() {
  local pid
  if pid=$(running_pid); then
    echo "registry running at $addr (pid $pid, $dir)"
    if has_image; then echo "image: $image"; else echo "image $image not pushed"; fi
  else
    echo "registry at $addr not running"
    exit 3
  fi
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
