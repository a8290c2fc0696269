#!/bin/bash
# shellcheck disable=SC2154,SC2034 # `work` comes from, and nofile/nproc go to, the caller
# Shared by the benchmark scripts (sourced, not run): tracking the processes a run
# starts so cleanup can see them gone, and podman's private storage and configuration.
# Expects the caller to define `work` (the run's work dir) and the array `owned`.

# The start time (clock ticks since boot, field 22 of /proc/PID/stat) of process $1.
starttime() {
  local stat
  { stat=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086 # split into fields on purpose
  set -- $stat
  echo "${20}"
}

# Remembers process $1 (by PID and start time) as one this run has to see gone.
own() {
  local st
  [[ $1 =~ ^[0-9]+$ ]] && (($1 > 0)) || return 0
  st=$(starttime "$1") || return 0
  owned+=("$1:$st")
}

# Whether remembered process "PID:STARTTIME" $1 is still that process (and no zombie).
still_alive() {
  local pid=${1%%:*} st=${1#*:} state
  [[ $(starttime "$pid" 2>/dev/null) == "$st" ]] || return 1
  state=$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
  [[ -n $state && $state != Z ]]
}

# Waits up to $1 tenths of a second for every remembered process to be gone.
wait_owned() {
  local tries=$1 p busy
  while ((tries-- > 0)); do
    busy=0
    for p in "${owned[@]}"; do
      if still_alive "$p"; then busy=1; break; fi
    done
    ((busy)) || return 0
    sleep 0.1
  done
  return 1
}

# The command line of process $1, words separated by spaces (empty if it is gone).
cmdline_of() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null || true; }

# Processes whose command line names the work dir (ccrun's monitors and their
# container-cleanup, podman's `container cleanup` that conmon leaves), except this shell.
work_pids() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    ((pid == $$ || pid == BASHPID)) && continue
    if cmdline_of "$pid" | grep -qF -- "$work/"; then echo "$pid"; fi
  done
}

# Gives podman (4.3, as root) storage and configuration of its own under
# $work/podman, so it writes no global state; exports CONTAINERS_STORAGE_CONF and
# CONTAINERS_CONF, and sets `nofile`/`nproc` to the most --ulimit can ask for without
# CAP_SYS_RESOURCE (podman lowers its own nproc to kernel.pid_max).
podman_private_config() {
  mkdir -p "$work/podman/networks"
  cat >"$work/podman/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/podman/root"
runroot = "$work/podman/run"
EOF
  cat >"$work/podman/containers.conf" <<EOF
[containers]
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/podman/events.log"
runtime = "crun"
tmp_dir = "$work/podman/tmp"
volume_path = "$work/podman/volumes"
[network]
network_config_dir = "$work/podman/networks"
EOF
  export CONTAINERS_STORAGE_CONF=$work/podman/storage.conf CONTAINERS_CONF=$work/podman/containers.conf
  local pid_max
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  pid_max=$(</proc/sys/kernel/pid_max)
  if [[ $nproc == unlimited ]] || ((nproc > pid_max)); then nproc=$pid_max; fi
}
