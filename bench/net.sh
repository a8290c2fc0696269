#!/bin/bash
# Benchmark (not a test): ccrun's bridge networking, in one run, medians and ratios.
# Targets (issue "bridge networking"): TCP throughput over the bridge within 10% of a
# plain veth path, and network setup adding under 20 ms to a container's start.
#
# Everything happens in network namespaces this script makes, never in the host's:
#   ccrun-bench-net-<pid>     "the host" for ccrun: its bridge ccrun0 (172.17.0.0/16),
#                             the containers' veths and its nftables table are made
#                             here, as every ccrun command runs under
#                             `nsenter --net=/run/netns/ccrun-bench-net-<pid>` (not
#                             `ip netns exec`, which remounts /sys and so hides the
#                             cgroup mounts ccrun needs)
#   ccrun-bench-net-<pid>-a   the baseline: two plain namespaces joined by one veth
#   ccrun-bench-net-<pid>-b   pair (10.89.0.1/24 <-> 10.89.0.2/24): no bridge, no NAT,
#                             no nftables
#
# Throughput: iperf3 (Debian's; it reports Gbit/s from the receiving side and runs for a
# fixed time, which is more robust than timing dd | nc). It is dynamically linked, so
# the containers' root filesystem is scripts/make-busybox-rootfs.sh's busybox plus
# /usr/bin/iperf3 and the libraries `ldd` names, copied from the host. Containers:
#   bench-srv   ccrun run -d -p 5201:5201 --rootfs R iperf3 -s
#   bench-cli   ccrun run -d --rootfs R sleep 1000000
# Cases, each `iperf3 -c ADDR -t SECONDS -O 1 -J` (the first second, slow start, is
# run but not counted; one TCP stream, client sends, server receives):
#   veth baseline          netns -a -> 10.89.0.2 in netns -b (iperf3 -s there)
#   container->container   ccrun exec bench-cli iperf3 -c <bench-srv's IP>: veth, bridge,
#                          veth; `ccrun inspect -f '{{.NetworkSettings.IPAddress}}'`
#   host->127.0.0.1:5201   client in ccrun's namespace, through the published port
#                          (nftables DNAT in the output hook, route_localnet, masquerade)
#   host->GATEWAY:5201     the same towards the bridge's own address (the gateway)
#   diagnostic: container->container with net.bridge.bridge-nf-call-iptables=0 set in
#                          ccrun's namespace for that run only (and back to 1 after):
#                          bridged frames then skip the IPv4 netfilter hooks, so no
#                          conntrack or nftables on that path. Its difference from the
#                          normal container->container case is the cost of
#                          br_netfilter + conntrack; its difference from the veth
#                          baseline is that of the bridge and the second veth pair.
# Each case runs RUNS times, one case after the other within a round, so that load
# from elsewhere on a shared machine hits all of them alike; medians over the rounds,
# the ratio of each median to the veth baseline's, and the median of the per-round
# ratios to the baseline ("paired": cases of one round ran within a minute of each
# other, so slow changes in load cancel out).
#
# Start latency: hyperfine -N, in rounds of about 10 runs of each command in turn (3
# warm-ups first, 1 per later round), medians over all rounds:
#   nsenter --net=... ccrun ... run --rm --network none   --rootfs R true
#   nsenter --net=... ccrun ... run --rm                  --rootfs R true  (bridge)
#   nsenter --net=... ccrun ... run --rm --network host   --rootfs R true
# and the differences bridge - none (the cost of the bridge network: IPAM, veth pair,
# addresses and routes, attach/detach) and none - host (a network namespace with
# loopback only).
#
#   bench/net.sh [RUNS [SECONDS [START_RUNS]]]
#       (as root; defaults: 5 rounds of 5 s per throughput case, 30 runs per start case;
#       RUNS=0 skips the throughput cases and measures start latency only)
#
# Environment:
#   CCRUN=PATH   the ccrun binary, with ccrun-monitor next to it; when unset,
#                `cargo build --release -p ccrun -p ccrun-monitor` runs first and
#                ${CARGO_TARGET_DIR:-target}/release/ccrun is used
#
# Everything it creates (work dir under /var/tmp, the three namespaces and all in them,
# containers with their monitors and cgroups, the baseline's iperf3 server) is removed
# by an EXIT trap, also on failure or ^C: containers with `ccrun rm -f` (every one in
# this run's store), processes by recorded PID (checked against their start time),
# never by name; cgroups only under this run's container ids.
#
# Quirks of the host this was written on (Debian 12 VM, 2 CPUs, kernel 6.18 without
# loadable modules, hybrid cgroup v1, other sessions' tests often running):
# - br_netfilter is built in, and a new network namespace starts with
#   net.bridge.bridge-nf-call-iptables=1: frames crossing ccrun0 between two
#   containers go through the IPv4 netfilter hooks, where ccrun's nat chains make
#   conntrack track every packet. The baseline namespaces have no nftables rules, so no
#   conntrack. The script prints the setting it found.
# - Single-stream TCP between namespaces is CPU-bound (the kernel copies the data, on
#   2 vCPUs shared by client, server and softirq), so with other work on the machine
#   single runs swing by +-30% or more; compare the medians of one run, not figures
#   across runs, and raise RUNS when the load average is high. Pinning client and
#   server to one CPU each (iperf3 -A) was slower and no steadier in a trial here, so
#   they are not pinned.
# - ccrun's private user namespace needs every directory above its store to be
#   searchable by others, so the work dir and ccrun's root in it are mode 711.
# - ccrun (like Docker) wants container names of at least two characters.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${1:-5}
secs=${2:-5}
start_runs=${3:-30}
for n in "$runs" "$secs" "$start_runs"; do
  if ! [[ $n =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [RUNS>=0 [SECONDS>=1 [START_RUNS>=2]]]" >&2
    exit 2
  fi
done
if ((runs < 0 || secs < 1 || start_runs < 2)); then
  echo "usage: $0 [RUNS>=1 [SECONDS>=1 [START_RUNS>=2]]]" >&2
  exit 2
fi

((EUID == 0)) || { echo "run as root" >&2; exit 1; }
scripts/deps.sh
if [[ -z ${CCRUN:-} ]]; then
  echo "== building ccrun and ccrun-monitor (release)"
  cargo build --release -q -p ccrun -p ccrun-monitor
  CCRUN=${CARGO_TARGET_DIR:-$repo/target}/release/ccrun
fi
ccrun=$(realpath "$CCRUN")
if [[ ! -x $ccrun ]]; then
  echo "no ccrun binary at $ccrun (set CCRUN=...)" >&2
  exit 1
fi
if [[ ! -x $(dirname "$ccrun")/ccrun-monitor ]]; then
  echo "no ccrun-monitor next to $ccrun (build it: cargo build --release -p ccrun-monitor)" >&2
  exit 1
fi
for tool in hyperfine iperf3 ip nsenter ldd python3 jq busybox timeout; do
  command -v "$tool" >/dev/null || { echo "missing $tool (scripts/deps.sh installs it)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/ccrun-bench-net.XXXXXX)
chmod 711 "$work" # a private user namespace's root must reach the stores below
ns=ccrun-bench-net-$$
ns_a=$ns-a
ns_b=$ns-b
made_ns=()     # namespaces this run added
ccrun_ids=()   # containers seen in this run's store (full ids)
owned=()       # "PID:STARTTIME" of every long-lived process this run started
ccrun_base=("$ccrun" --root "$work/root" --state "$work/state")
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
cc() { in_ns "${ccrun_base[@]}" "$@"; }
# The v1 hierarchies' /ccrun directories that existed before (ccrun's shared parent).
ccrun_parents_before=$(find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -name ccrun -type d 2>/dev/null | sort)

# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"

# Adds every container in this run's store to ccrun_ids (for cleanup and its cgroups).
note_ids() {
  local id k known
  [[ -d /run/netns/$ns ]] || return 0
  for id in $(cc ps -a -q --no-trunc 2>/dev/null); do
    known=0
    for k in "${ccrun_ids[@]}"; do [[ $k == "$id" ]] && known=1; done
    ((known)) || ccrun_ids+=("$id")
  done
}

cleanup() {
  local rc=$? mnt d p id n
  trap - EXIT INT TERM
  set +e
  echo "== cleanup"
  note_ids
  # Containers first, while their namespace (where their veths and NAT rules are) lives.
  for id in "${ccrun_ids[@]}"; do
    if [[ -d /run/netns/$ns ]]; then
      cc rm -f "$id" >/dev/null 2>&1
    else
      "${ccrun_base[@]}" rm -f "$id" >/dev/null 2>&1
    fi
  done
  # Monitors run their container-cleanup once their container is gone; let them. The
  # baseline's iperf3 server is stopped here too.
  for p in "${owned[@]}"; do
    if still_alive "$p" && [[ $(cmdline_of "${p%%:*}") == iperf3* ]]; then kill -TERM "${p%%:*}"; fi
  done
  end_owned_and_work_pids
  for d in "${made_ns[@]}"; do
    ip netns del "$d" 2>/dev/null
  done
  # Whatever is still mounted under the work dir, deepest first.
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null
  done < <(awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  # ccrun's cgroups for this run's containers, should `rm` have left any.
  while read -r d; do
    rmdir "$d" 2>/dev/null
  done < <(
    for id in "${ccrun_ids[@]}"; do
      find /sys/fs/cgroup -mindepth 3 -maxdepth 3 -type d -path "*/ccrun/$id" 2>/dev/null
    done | sort -r
  )
  # ccrun's shared parent /ccrun, where this run created it and it is empty now.
  while read -r d; do
    grep -qxF -- "$d" <<<"$ccrun_parents_before" || rmdir "$d" 2>/dev/null
  done < <(find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -name ccrun -type d 2>/dev/null)
  rm -rf --one-file-system "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for d in "$ns" "$ns_a" "$ns_b"; do
  ip netns add "$d"
  made_ns+=("$d")
  ip -n "$d" link set lo up
done
bridge_nf=$(in_ns cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo "n/a (no br_netfilter)")

echo "== $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   $(iperf3 --version | head -1); $(hyperfine --version)"
echo "   net.bridge.bridge-nf-call-iptables in a new namespace: $bridge_nf"

echo "== root filesystem: busybox + iperf3 and its libraries"
rootfs=$(scripts/make-busybox-rootfs.sh "$work/rootfs")
iperf=$(command -v iperf3)
for f in "$iperf" $(ldd "$iperf" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
  mkdir -p "$rootfs$(dirname "$f")"
  cp -L "$f" "$rootfs$f"
done
echo "   $rootfs: $(du -sh "$rootfs" | cut -f1)"

echo "== ccrun containers in $ns"
mkdir -m 711 "$work/root" # the container's root (host uid 100000+) must pass through
# Runs `ccrun run -d` with the rest of the arguments, records the container and its
# processes, and prints its id.
run_d() {
  local out id record
  if ! out=$(cc run -d "$@" </dev/null 2>"$work/run.err"); then
    echo "ccrun run -d $* failed:" >&2
    cat "$work/run.err" >&2
    exit 1
  fi
  id=$(tail -n1 <<<"$out")
  if ! [[ $id =~ ^[0-9a-f]{64}$ ]]; then
    echo "ccrun run -d printed no container id: $out" >&2
    exit 1
  fi
  ccrun_ids+=("$id")
  record=$work/root/containers/$id/container.json
  own "$(jq -r '.monitor_pid // 0' "$record")"
  own "$(jq -r '.pid // 0' "$record")"
  echo "$id"
}
run_d --name bench-srv -p 5201:5201 --rootfs "$rootfs" iperf3 -s >/dev/null
run_d --name bench-cli --rootfs "$rootfs" sleep 1000000 >/dev/null
srv_ip=$(cc inspect -f '{{.NetworkSettings.IPAddress}}' bench-srv)
cli_ip=$(cc inspect -f '{{.NetworkSettings.IPAddress}}' bench-cli)
gateway=$(cc inspect -f '{{.NetworkSettings.Gateway}}' bench-srv)
echo "   bench-srv $srv_ip (iperf3 -s, -p 5201:5201), bench-cli $cli_ip; gateway $gateway"
# (ip -o, not /sys/class/net: nsenter keeps the host's sysfs, which shows its interfaces)
echo "   eth0 in bench-cli: $(cc exec bench-cli ip -o link show eth0 | grep -o 'mtu [0-9]*');" \
  "ccrun0: $(ip -n "$ns" -o link show ccrun0 | grep -o 'mtu [0-9]*')"

echo "== baseline: $ns_a <-> $ns_b over one veth pair"
ip -n "$ns_a" link add bench-a type veth peer name bench-b netns "$ns_b"
ip -n "$ns_a" addr add 10.89.0.1/24 dev bench-a
ip -n "$ns_b" addr add 10.89.0.2/24 dev bench-b
ip -n "$ns_a" link set bench-a up
ip -n "$ns_b" link set bench-b up
echo "   MTU: $(ip -n "$ns_a" -o link show bench-a | grep -o 'mtu [0-9]*')"
# nsenter execs iperf3 in place, so $! is iperf3's PID.
nsenter --net="/run/netns/$ns_b" iperf3 -s -p 5201 </dev/null >"$work/iperf3-baseline.log" 2>&1 &
own $!

# Waits until something listens on TCP port 5201 in the namespace of command prefix "$@".
wait_listen() {
  local n
  for ((n = 0; n < 100; n++)); do
    if "$@" busybox netstat -ltn 2>/dev/null | awk '$4 ~ /:5201$/ { f = 1 } END { exit !f }'; then
      return 0
    fi
    sleep 0.1
  done
  echo "nothing listens on port 5201 ($*)" >&2
  exit 1
}
wait_listen nsenter --net="/run/netns/$ns_b"
wait_listen cc exec bench-srv

cases=(veth c2c host-lo host-gw c2c-nonf)
declare -A label=(
  [veth]="veth baseline (netns <-> netns)"
  [c2c]="container -> container (bridge)"
  [host-lo]="host -> 127.0.0.1:5201 (published)"
  [host-gw]="host -> $gateway:5201 (published)"
  [c2c-nonf]="diag: c2c, bridge-nf-call-iptables=0"
)
# One iperf3 run of case $1; writes its JSON to $2.
iperf_case() {
  local args=(-c "" -p 5201 -t "$secs" -O 1 -J --connect-timeout 3000) rc=0
  local limit=$((secs + 30))
  case $1 in
    veth)
      args[1]=10.89.0.2
      timeout "$limit" nsenter --net="/run/netns/$ns_a" iperf3 "${args[@]}" >"$2" || rc=$?
      ;;
    c2c | c2c-nonf)
      args[1]=$srv_ip
      if [[ $1 == c2c-nonf ]]; then
        in_ns sh -c 'echo 0 >/proc/sys/net/bridge/bridge-nf-call-iptables'
      fi
      timeout "$limit" nsenter --net="/run/netns/$ns" "${ccrun_base[@]}" exec bench-cli iperf3 "${args[@]}" \
        </dev/null >"$2" || rc=$?
      if [[ $1 == c2c-nonf ]]; then
        in_ns sh -c 'echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables'
      fi
      ;;
    host-lo | host-gw)
      args[1]=127.0.0.1
      [[ $1 == host-gw ]] && args[1]=$gateway
      timeout "$limit" nsenter --net="/run/netns/$ns" iperf3 "${args[@]}" >"$2" || rc=$?
      ;;
  esac
  if ((rc)) || ! jq -e '.end.sum_received.bits_per_second' "$2" >/dev/null 2>&1; then
    echo "iperf3 failed for ${label[$1]} (exit $rc):" >&2
    head -c 2000 "$2" >&2
    exit 1
  fi
}

if ((runs > 0)); then
  echo "== throughput: $runs rounds of every case in turn, ${secs} s each (+1 s not counted)"
  for ((round = 1; round <= runs; round++)); do
    line="   round $round:"
    for c in "${cases[@]}"; do
      f=$work/iperf-$c-$round.json
      iperf_case "$c" "$f"
      line+=" $c $(jq -r '.end.sum_received.bits_per_second / 1e9 * 100 | round / 100' "$f")"
    done
    echo "$line Gbit/s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  done
  conntrack=$(in_ns cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo n/a)
  echo "   conntrack entries in $ns after the runs: $conntrack"
fi

echo "== start latency: hyperfine -N in $ns"
for net in none bridge host; do # one of each first, so that a failure shows its message
  netflag=(--network "$net")
  [[ $net == bridge ]] && netflag=()
  if ! out=$(cc run --rm "${netflag[@]}" --rootfs "$rootfs" true 2>&1 </dev/null); then
    echo "ccrun run --rm --network $net failed: $out" >&2
    exit 1
  fi
done
pre="nsenter --net=/run/netns/$ns ${ccrun_base[*]} run --rm"
commands=(
  -n "network none" "$pre --network none --rootfs $rootfs true"
  -n "network bridge (default)" "$pre --rootfs $rootfs true"
  -n "network host" "$pre --network host --rootfs $rootfs true"
)
# In rounds of about 10 runs of each command, one command after the other within a
# round: on a shared machine a burst of load then hits every command alike.
chunk=10
rounds=$(((start_runs + chunk - 1) / chunk))
for ((round = 1; round <= rounds; round++)); do
  n=$((start_runs / rounds + (round <= start_runs % rounds ? 1 : 0)))
  warmup=1
  ((round == 1)) && warmup=3
  if ! hyperfine -N --warmup "$warmup" --runs "$n" --export-json "$work/start-$round.json" \
    "${commands[@]}" </dev/null >"$work/hyperfine.txt" 2>&1; then
    cat "$work/hyperfine.txt" >&2
    exit 1
  fi
  echo "   round $round: $n runs each, load average $(cut -d' ' -f1-3 /proc/loadavg)"
done
note_ids

python3 - "$work" "$runs" "${cases[@]}" <<'PY'
import glob, json, statistics, sys
from results import record
work, runs, cases = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
labels = {
    "veth": "veth baseline (netns <-> netns)",
    "c2c": "container -> container (bridge)",
    "host-lo": "host -> 127.0.0.1:5201 (published)",
    "host-gw": "host -> gateway:5201 (published)",
    "c2c-nonf": "diag: c2c, bridge-nf-call-iptables=0",
}
def throughput():
    gbps, retr = {}, {}
    for c in cases:
        for r in range(1, runs + 1):
            end = json.load(open(f"{work}/iperf-{c}-{r}.json"))["end"]
            gbps.setdefault(c, []).append(end["sum_received"]["bits_per_second"] / 1e9)
            retr.setdefault(c, []).append(end["sum_sent"].get("retransmits", 0))
    med = {c: statistics.median(v) for c, v in gbps.items()}
    # Besides the ratio of the medians, the median of the ratios within each round: the
    # cases of one round ran back to back, so slow changes in load cancel out there.
    paired = {c: statistics.median(a / b for a, b in zip(gbps[c], gbps["veth"])) for c in cases}
    print(f"\n{'TCP throughput, Gbit/s':40} {'runs':>4} {'median':>7} {'min':>6} {'max':>6} "
          f"{'/veth':>6} {'paired':>6} {'retr':>5}")
    for c in cases:
        v = gbps[c]
        print(f"{labels[c]:40} {len(v):4} {med[c]:7.2f} {min(v):6.2f} {max(v):6.2f} "
              f"{med[c] / med['veth']:6.2f} {paired[c]:6.2f} {statistics.median(retr[c]):5.0f}")
    print("(/veth: ratio of the medians; paired: median of the per-round ratios;"
          " retr: median TCP retransmits)")
    ok = med["c2c"] / med["veth"] >= 0.9
    print(f"target: container -> container >= 0.90 x veth baseline: "
          f"{med['c2c'] / med['veth']:.2f}, paired {paired['c2c']:.2f} ({'met' if ok else 'NOT met'})")
    print(f"br_netfilter + conntrack on the bridged path: container -> container / diag = "
          f"{med['c2c'] / med['c2c-nonf']:.2f} (1.00: no cost)")
    print(f"bridge + second veth pair, no netfilter: diag / veth = "
          f"{med['c2c-nonf'] / med['veth']:.2f} (1.00: no cost)")
    record("net", "TCP throughput container -> container", "ccrun bridge", med["c2c"],
           "veth pair (netns <-> netns)", med["veth"], unit="Gbit/s", runs=runs, better="higher")


if runs > 0:
    throughput()

times, round_meds = {}, {}
for f in sorted(glob.glob(f"{work}/start-*.json")):
    for r in json.load(open(f))["results"]:
        ms = [x * 1000 for x in r["times"]]
        times.setdefault(r["command"], []).extend(ms)
        round_meds.setdefault(r["command"], []).append(statistics.median(ms))
smed = {n: statistics.median(t) for n, t in times.items()}
print(f"\n{'ccrun run --rm --rootfs R true':30} {'runs':>5} {'median ms':>10} {'mean':>7} {'stddev':>7} {'min':>7} {'max':>7}")
for n, t in times.items():
    print(f"{n:30} {len(t):5} {smed[n]:10.2f} {statistics.mean(t):7.2f} {statistics.stdev(t):7.2f} {min(t):7.2f} {max(t):7.2f}")
none, bridge, host = "network none", "network bridge (default)", "network host"
d = smed[bridge] - smed[none]
# The commands of one round ran within seconds of each other: the median of the
# per-round differences is less exposed to slow changes in load.
paired = statistics.median(b - n for b, n in zip(round_meds[bridge], round_meds[none]))
print(f"bridge - none: {d:+.2f} ms, paired by round {paired:+.2f} ms, bridge / none "
      f"{smed[bridge] / smed[none]:.2f} (target < 20 ms: {'met' if d < 20 else 'NOT met'})")
print(f"bridge - host: {smed[bridge] - smed[host]:+.2f} ms;  none - host: {smed[none] - smed[host]:+.2f} ms")
PY
