# shellcheck shell=bash
# Logging, child processes (always stopped, by PID), free loopback ports and /proc CPU accounting.

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

STARTED_PIDS=()

# spawn LOGFILE CMD...: starts CMD in the background (its own process group), records its PID in SPAWNED.
spawn() {
  local logfile=$1; shift
  setsid "$@" >> "$logfile" 2>&1 < /dev/null &
  SPAWNED=$!
  STARTED_PIDS+=("$SPAWNED")
}

# stop_pid PID: SIGTERM, then SIGKILL after 10 s; reaps it.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_all() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    # nginx masters in the foreground stop their workers on SIGTERM; the group kill covers a stuck one.
    stop_pid "$pid"
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  STARTED_PIDS=()
}

# free_port: an unused loopback TCP port chosen by the kernel.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID SECONDS: waits until something accepts on 127.0.0.1:PORT while PID lives.
wait_port() {
  local port=$1 pid=$2 secs=${3:-30} t=0
  while [ "$t" -lt $((secs * 10)) ]; do
    kill -0 "$pid" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1; t=$((t + 1))
  done
  return 1
}

# cpu_ticks PID: user + system clock ticks of PID and of its live children (nginx workers).
cpu_ticks() {
  local pid=$1 total=0 p
  for p in "$pid" $(pgrep -P "$pid" 2>/dev/null); do
    [ -r "/proc/$p/stat" ] || continue
    # Fields after the ") " that ends comm: utime is field 14, stime 15 of the whole line.
    total=$((total + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}

# rss_kb PID: resident set size of PID and its children, in KiB.
rss_kb() {
  local pid=$1 total=0 p v
  for p in "$pid" $(pgrep -P "$pid" 2>/dev/null); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

CLK_TCK=$(getconf CLK_TCK)
