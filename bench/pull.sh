#!/usr/bin/env bash
# Benchmark (not a test): pull a ~40 MB (compressed) four-layer image from a local
# docker-registry with `ccrun pull`, `skopeo copy` (download only, no unpack) and
# `podman pull`, each into a fresh root every run; then compare unpacking with
# `tar -xzf` of the same layers. Prints medians and ratios.
#
# Needs: docker-registry skopeo podman hyperfine python3 (Debian packages), and a
# release build of ccrun (built here). Run as root. All traffic stays on 127.0.0.1.
#
#   bench/pull.sh [RUNS]
set -euo pipefail

RUNS=${1:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /var/tmp/ccrun-bench.XXXXXX)
export PYTHONPATH="$HERE/bench${PYTHONPATH:+:$PYTHONPATH}" # bench/results.py
REG_PID=

cleanup() {
    if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
    # podman may leave overlay mounts in its private root.
    if [ -d "$WORK/podman-root" ]; then podman --root "$WORK/podman-root" --runroot "$WORK/podman-run" system reset -f >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in docker-registry skopeo podman hyperfine python3 sha256sum gzip; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install docker-registry skopeo podman hyperfine)"; exit 1; }
done

echo "== building ccrun (release)"
(cd "$HERE" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target} cargo build --release -q -p ccrun)
CCRUN=${CARGO_TARGET_DIR:-$HERE/target}/release/ccrun

echo "== building the image from files on this machine"
LAYOUT=$WORK/layout
mkdir -p "$LAYOUT/blobs/sha256" "$WORK/layers"
echo '{"imageLayoutVersion":"1.0.0"}' > "$LAYOUT/oci-layout"
diff_ids=()
layer_descs=()
i=0
for dir in usr/lib/python3.11 usr/lib/python3 usr/share/perl usr/share/perl5; do
    [ -d "/$dir" ] || continue
    i=$((i + 1))
    tar -C / --sort=name --mtime=@1700000000 -cf "$WORK/layers/$i.tar" "$dir"
    diff_ids+=("\"sha256:$(sha256sum "$WORK/layers/$i.tar" | cut -d' ' -f1)\"")
    gzip -6 -n -c "$WORK/layers/$i.tar" > "$WORK/layers/$i.tar.gz"
    rm "$WORK/layers/$i.tar"
    d=$(sha256sum "$WORK/layers/$i.tar.gz" | cut -d' ' -f1)
    cp "$WORK/layers/$i.tar.gz" "$LAYOUT/blobs/sha256/$d"
    layer_descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$(stat -c %s "$WORK/layers/$i.tar.gz")}")
done
join() { local IFS=,; echo "$*"; }
config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"2024-01-01T00:00:00Z\",\"config\":{\"Cmd\":[\"/bin/sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$(join "${diff_ids[@]}")]}}"
cd_=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
printf '%s' "$config" > "$LAYOUT/blobs/sha256/$cd_"
manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cd_\",\"size\":${#config}},\"layers\":[$(join "${layer_descs[@]}")]}"
md=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
printf '%s' "$manifest" > "$LAYOUT/blobs/sha256/$md"
echo "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$md\",\"size\":${#manifest},\"annotations\":{\"org.opencontainers.image.ref.name\":\"latest\"}}]}" > "$LAYOUT/index.json"
compressed=$(du -cb "$WORK"/layers/*.tar.gz | tail -1 | cut -f1)
echo "   $i layers, $((compressed / 1000000)) MB compressed"

echo "== starting docker-registry on 127.0.0.1"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/registry}}
http: {addr: 127.0.0.1:$PORT, secret: bench}
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
IMAGE=127.0.0.1:$PORT/bench/python:latest
skopeo copy -q --dest-tls-verify=false "oci:$LAYOUT:latest" "docker://$IMAGE"

PODMAN_DRIVER=overlay
if ! podman --root "$WORK/podman-probe" --runroot "$WORK/podman-probe-run" --storage-driver overlay info >/dev/null 2>&1; then
    PODMAN_DRIVER=vfs
fi
podman --root "$WORK/podman-probe" --runroot "$WORK/podman-probe-run" system reset -f >/dev/null 2>&1 || true

echo "== pull benchmarks ($RUNS runs each, fresh store per run; podman storage driver: $PODMAN_DRIVER)"
hyperfine --style basic --runs "$RUNS" --export-json "$WORK/pull.json" \
    -n ccrun --prepare "rm -rf $WORK/ccrun-root" \
    "$CCRUN --root $WORK/ccrun-root pull -q $IMAGE" \
    -n skopeo --prepare "rm -rf $WORK/skopeo-dir" \
    "skopeo copy -q --src-tls-verify=false docker://$IMAGE dir:$WORK/skopeo-dir" \
    -n podman --prepare "podman --root $WORK/podman-root --runroot $WORK/podman-run system reset -f >/dev/null 2>&1; rm -rf $WORK/podman-root $WORK/podman-run" \
    "podman --root $WORK/podman-root --runroot $WORK/podman-run --storage-driver $PODMAN_DRIVER pull -q --tls-verify=false $IMAGE"

echo "== unpack: tar -xzf of the same layers (one after another) vs ccrun pull (download + verify + unpack)"
untar=""
for f in "$WORK"/layers/*.tar.gz; do untar+="tar -xzf $f -C $WORK/untar; "; done
hyperfine --style basic --runs "$RUNS" --export-json "$WORK/unpack.json" \
    -n "tar -xzf" --prepare "rm -rf $WORK/untar; mkdir $WORK/untar" "$untar" \
    -n "ccrun pull" --prepare "rm -rf $WORK/ccrun-root" "$CCRUN --root $WORK/ccrun-root pull -q $IMAGE" \
    -n "ccrun pull --jobs 1" --prepare "rm -rf $WORK/ccrun-root" "$CCRUN --root $WORK/ccrun-root pull -q --jobs 1 $IMAGE"

python3 - "$WORK/pull.json" "$WORK/unpack.json" "$compressed" <<'EOF'
import json, statistics, sys
mb = int(sys.argv[3]) / 1e6
def medians(path):
    return {r["command"]: statistics.median(r["times"]) for r in json.load(open(path))["results"]}
pull = medians(sys.argv[1]); unpack = medians(sys.argv[2])
print("\n== results (median seconds)")
for name, t in pull.items():
    print(f"  {name:22s} {t:7.3f} s  {mb / t:7.1f} MB/s compressed")
print(f"  podman / ccrun  = {pull['podman'] / pull['ccrun']:.2f}x   (target >= 2x)")
print(f"  skopeo / ccrun  = {pull['skopeo'] / pull['ccrun']:.2f}x   (skopeo does not unpack)")
for name, t in unpack.items():
    print(f"  {name:22s} {t:7.3f} s")
print(f"  ccrun pull / tar -xzf         = {unpack['ccrun pull'] / unpack['tar -xzf']:.2f}x   (target <= 1.5x)")
print(f"  ccrun pull --jobs 1 / tar -xzf = {unpack['ccrun pull --jobs 1'] / unpack['tar -xzf']:.2f}x")
from results import record
runs = len(json.load(open(sys.argv[1]))["results"][0]["times"])
record("pull", f"pull {mb:.0f} MB from a local registry", "ccrun pull", pull["ccrun"], "podman pull", pull["podman"], unit="s", runs=runs)
record("pull", f"pull {mb:.0f} MB from a local registry", "ccrun pull", pull["ccrun"], "skopeo copy (no unpack)", pull["skopeo"], unit="s", runs=runs)
record("pull", "download + verify + unpack vs unpack alone", "ccrun pull", unpack["ccrun pull"], "tar -xzf", unpack["tar -xzf"], unit="s", runs=runs)
EOF
