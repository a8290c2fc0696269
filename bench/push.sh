#!/bin/bash
# Benchmark (not a test): push a two-layer image of about 30 MB (compressed; this
# machine's /usr/lib/python3.11 and /usr/lib/python3) to a local docker-registry, in one
# run with hyperfine, the commands in turn round after round. Prints medians and ratios.
#
#   ccrun              ccrun push IMAGE 127.0.0.1:PORT/ccrun-N:latest, from ccrun's store,
#                      where layers are kept unpacked: each layer's tar is written again
#                      from its tar-split record, gzip-compressed (level 6, every core)
#                      and uploaded
#   ccrun (no overlap) the same with --chunk-size 0: each layer goes up in one PUT once
#                      it is compressed, instead of in chunks while it is
#   skopeo (storage)   skopeo copy containers-storage:IMAGE docker://…/skopeo-N:latest,
#                      from podman's store, which also keeps layers unpacked: the same
#                      work (tar-split, gzip on every core with pgzip, upload). The
#                      target is ccrun within 1.2x of this
#   skopeo (layout)    skopeo copy oci:LAYOUT docker://…, for reference: the gzip blobs
#                      exist already, so this is the upload alone
#
# Each run pushes to a repository of its own and starts from the same state, so every
# run compresses and uploads everything: ccrun's store is restored from a copy before
# each run (the blob cache and the repo digest a push records would let the next push
# mount the layers from the previous repository), and skopeo's blob-info cache is
# emptied (it would let skopeo reuse the blobs it compressed before). The registry
# keeps what earlier runs uploaded, which changes nothing for the uploads: a blob goes
# up whole unless the target repository has it.
#
#   bench/push.sh [RUNS]     (as root; default 5 runs of each, after 1 warm-up)
#
# Environment:
#   CCRUN=PATH     the ccrun binary; when unset, `cargo build --release -p ccrun` runs first
#                  and ${CARGO_TARGET_DIR:-target}/release/ccrun is used
#
# Everything it creates (work dir under /var/tmp, registry, podman storage and mounts)
# is removed by an EXIT trap, also on failure or ^C. Like the other benchmarks it runs
# in a private mount namespace, where an empty directory is bind-mounted over
# /var/lib/containers/cache (skopeo and podman write their blob-info cache there
# whatever --root says).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
runs=$(bench_runs "${1:-}" 5)

if [[ ${CCRUN_BENCH_INNER:-} != 1 ]]; then
  bench_outer_checks
  if [[ -z ${CCRUN:-} ]]; then
    echo "== building ccrun (release)"
    cargo build --release -q -p ccrun
    CCRUN=${CARGO_TARGET_DIR:-$repo/target}/release/ccrun
  fi
  export CCRUN
  bench_reexec_private -- "$@"
fi

ccrun=$CCRUN
require_tools hyperfine podman skopeo docker-registry python3 curl sha256sum gzip tar
work=$(mktemp -d /var/tmp/ccrun-bench-push.XXXXXX)
reg_pids=()
reg_addr=
cache_mount=
podman_flags=(--root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp"
  --storage-driver overlay --cgroup-manager cgroupfs --events-backend file)

cleanup() {
  local rc=$? mnt pid
  trap - EXIT INT TERM
  set +e
  for pid in "${reg_pids[@]}"; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [[ -d $work/podman/root ]]; then
    podman "${podman_flags[@]}" system reset -f >/dev/null 2>&1
  fi
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null
  done < <(awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  if [[ -n $cache_mount ]]; then umount -l "$cache_mount" 2>/dev/null; fi
  rm -rf --one-file-system "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

private_blob_cache

echo "== building the image from files on this machine"
layout=$work/layout
mkdir -p "$layout/blobs/sha256" "$work/layers"
echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
diff_ids=()
descs=()
i=0
for dir in usr/lib/python3.11 usr/lib/python3; do
  [[ -d /$dir ]] || continue
  i=$((i + 1))
  tar -C / --sort=name --mtime=@1700000000 --owner=0 --group=0 -cf "$work/layers/$i.tar" "$dir"
  diff_ids+=("\"sha256:$(sha256sum "$work/layers/$i.tar" | cut -d' ' -f1)\"")
  gzip -6 -n -c "$work/layers/$i.tar" >"$work/layers/$i.tar.gz"
  rm "$work/layers/$i.tar"
  d=$(sha256sum "$work/layers/$i.tar.gz" | cut -d' ' -f1)
  mv "$work/layers/$i.tar.gz" "$layout/blobs/sha256/$d"
  descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$(stat -c %s "$layout/blobs/sha256/$d")}")
done
join() { local IFS=,; echo "$*"; }
config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"2024-01-01T00:00:00Z\",\"config\":{\"Cmd\":[\"/bin/sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$(join "${diff_ids[@]}")]}}"
cd_=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
printf '%s' "$config" >"$layout/blobs/sha256/$cd_"
manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cd_\",\"size\":${#config}},\"layers\":[$(join "${descs[@]}")]}"
md=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
printf '%s' "$manifest" >"$layout/blobs/sha256/$md"
echo "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$md\",\"size\":${#manifest},\"annotations\":{\"org.opencontainers.image.ref.name\":\"latest\"}}]}" >"$layout/index.json"
compressed=$(du -cb "$layout"/blobs/sha256/* | tail -1 | cut -f1)
echo "   $i layers, $((compressed / 1000000)) MB compressed"

echo "== two docker-registries on 127.0.0.1: the image's source, and the push target"
# Pushed to the registry it was pulled from, ccrun would (rightly) mount the layers
# from the source repository instead of uploading them.
start_registry() { # NAME; sets reg_addr
  local name=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf '%s\n' "version: 0.1" "log: {level: error, accesslog: {disabled: true}}" \
    "storage: {filesystem: {rootdirectory: $work/$name}, delete: {enabled: true}}" \
    "http: {addr: 127.0.0.1:$port, secret: bench}" >"$work/$name.yml"
  docker-registry serve "$work/$name.yml" >"$work/$name.log" 2>&1 &
  reg_pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
  reg_addr=127.0.0.1:$port
}
start_registry source-registry
source_reg=$reg_addr
start_registry target-registry
reg=$reg_addr
skopeo copy -q --dest-tls-verify=false "oci:$layout:latest" "docker://$source_reg/source/python:latest"

echo "== ccrun pulls it (layers unpacked, with their tar-split records); podman too"
"$ccrun" --root "$work/ccrun-pristine" pull -q "$source_reg/source/python:latest" >/dev/null
podman_private_config
podman "${podman_flags[@]}" pull -q --tls-verify=false "$source_reg/source/python:latest" >/dev/null
storage="containers-storage:[overlay@$work/podman/root+$work/podman/run]$source_reg/source/python:latest"

# Each run: a repository of its own (the number in $work/n), a fresh ccrun store and
# an empty blob-info cache, made by --prepare (not timed).
echo 0 >"$work/n"
# The copy is flushed before the timed run (sync), so that its writeback does not land
# in the middle of ccrun's push.
prepare="n=\$(( \$(cat $work/n) + 1 )); echo \$n > $work/n; rm -rf $work/ccrun; cp -a $work/ccrun-pristine $work/ccrun; rm -rf $work/blob-info-cache/*; sync"
ccrun_push="$ccrun --root $work/ccrun push -q $source_reg/source/python:latest $reg/ccrun-\$(cat $work/n)/python:latest"
# The same without chunks: each layer is uploaded once it is compressed, not while.
ccrun_whole="$ccrun --root $work/ccrun push -q --chunk-size 0 $source_reg/source/python:latest $reg/whole-\$(cat $work/n)/python:latest"
skopeo_storage="skopeo copy -q --dest-tls-verify=false '$storage' docker://$reg/skopeo-\$(cat $work/n)/python:latest"
skopeo_layout="skopeo copy -q --dest-tls-verify=false oci:$layout:latest docker://$reg/layout-\$(cat $work/n)/python:latest"
for c in "$ccrun_push" "$ccrun_whole" "$skopeo_storage" "$skopeo_layout"; do
  if ! out=$(bash -c "$prepare" && bash -c "$c" 2>&1); then
    echo "failed: $c" >&2
    echo "$out" >&2
    exit 1
  fi
done

# Rounds, not one block of runs per command: on a shared machine the load changes
# over a minute, and running the commands in turn within each round (one hyperfine
# run each, with its --prepare) lets every command see the same load.
echo "== hyperfine: $runs rounds of one run of each command, in turn (after the warm-up above)"
names=("ccrun push (store)" "ccrun push --chunk-size 0 (no overlap)" "skopeo copy (containers-storage)"
  "skopeo copy (OCI layout, upload only)")
cmds=("$ccrun_push" "$ccrun_whole" "$skopeo_storage" "$skopeo_layout")
for ((r = 1; r <= runs; r++)); do
  for i in "${!cmds[@]}"; do
    if ! hyperfine --runs 1 --export-json "$work/result-$r-$i.json" --prepare "$prepare" \
      -n "${names[$i]}" "${cmds[$i]}" >"$work/hyperfine.txt" 2>&1; then
      cat "$work/hyperfine.txt" >&2
      exit 1
    fi
  done
done

python3 - "$work" "$compressed" <<'PY'
import glob, json, statistics, sys
mb = int(sys.argv[2]) / 1e6
times = {}
for f in sorted(glob.glob(f"{sys.argv[1]}/result-*.json")):
    for r in json.load(open(f))["results"]:
        times.setdefault(r["command"], []).extend(r["times"])
med = {n: statistics.median(t) for n, t in times.items()}
print(f"\n== results: {mb:.1f} MB compressed, median seconds of {len(next(iter(times.values())))} runs")
for n, t in med.items():
    print(f"  {n:40} {t:7.3f} s   (min {min(times[n]):.3f}, max {max(times[n]):.3f})")
ccrun, storage = "ccrun push (store)", "skopeo copy (containers-storage)"
layout = "skopeo copy (OCI layout, upload only)"
print(f"  ccrun / skopeo (containers-storage)      = {med[ccrun] / med[storage]:.2f}x   (target <= 1.2x)")
print(f"  ccrun / skopeo (layout, upload only)     = {med[ccrun] / med[layout]:.2f}x")
whole = "ccrun push --chunk-size 0 (no overlap)"
print(f"  ccrun without overlap / ccrun            = {med[whole] / med[ccrun]:.2f}x")
# For bench/report.sh, as the other benchmarks record theirs (bench/results.py).
try:
    from results import record
except ImportError:
    print("  (not recorded: bench/results.py is missing)")
else:
    runs = len(times[ccrun])
    what = f"push {mb:.0f} MB to a local registry"
    record("push", what, "ccrun push", med[ccrun], "skopeo copy (containers-storage)", med[storage], unit="s", runs=runs)
    record("push", what, "ccrun push", med[ccrun], "skopeo copy (OCI layout, upload only)", med[layout], unit="s", runs=runs)
PY
