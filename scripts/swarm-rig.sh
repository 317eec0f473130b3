#!/usr/bin/env bash
# swarm-rig.sh — a 3-node Docker Swarm on this one machine, for testing Berth against a cluster.
#
# The rig: a host bridge `berthrig0` (10.77.0.1/24 is the host's address on it) and, per node
# i = 1..3, a network namespace `berth-rig-$i` wired to the bridge by a veth pair (eth0 =
# 10.77.0.1$i/24 inside, default route via 10.77.0.1). In each namespace runs an extra dockerd with
# its own hostname `rig-node-$i` (own UTS namespace), its own PID and mount namespaces (so that
# killing the node kills everything it started, its mounts stay out of the host's mount table, and
# it cannot see the host's containerd), its own data root /var/lib/berth-rig/node-$i, exec root
# /run/berth-rig/node-$i/exec (its containerd, managed by that dockerd, lives there), socket
# unix:///run/berth-rig/node-$i/docker.sock and log /run/berth-rig/node-$i/dockerd.log.
# rig-node-1 is the Swarm manager (advertise 10.77.0.11, overlay pool 10.90.0.0/16); rig-node-2
# and rig-node-3 are workers. Labels: rig-node-1 and -2 `datacenter=dc1`, rig-node-3
# `datacenter=dc2`. Nodes trust the HTTP registry range 10.77.0.0/24 (a registry on the host
# listens on 10.77.0.1:<port>). Nodes reach each other and the host, nothing else: new
# connections from the rig to anywhere but the rig network (or a port the main engine publishes
# on 10.77.0.1) are rejected at once, so a missing image fails fast instead of hanging.
#
# The main dockerd (/var/run/docker.sock) is never stopped or reconfigured: the rig only adds
# iptables rules tagged with the comment `berth-swarm-rig` (in DOCKER-USER when it exists, else
# FORWARD; plus INPUT/OUTPUT) and removes exactly those.
#
# Subcommands (all but `env` need root):
#   up            create the rig (idempotent: says so and exits 0 when it is already up and
#                 healthy; completes a half-up rig), wait for 3 Ready/Active nodes, print a summary
#   down          stop every rig dockerd (TERM, wait, KILL) and every process left in the rig
#                 namespaces, unmount what is left under /var/lib/berth-rig and /run/berth-rig,
#                 delete namespaces, veths, bridge, the rig's iptables rules and both directories
#                 (idempotent: works half up or already down)
#   env           print eval-able BERTH_RIG_MANAGER, BERTH_RIG_HOST_ADDRESS, BERTH_RIG_NODE_<i>
#   load IMAGE…   copy images from the main engine into every node (docker save | docker load)
#   kill-node N   simulate node N's machine dying: its veth goes down and its dockerd, containerd,
#                 shims, containers and every other process of the node are SIGKILLed
#   start-node N  bring node N back (veth up, dockerd started on its kept state; it rejoins)
#   status        the nodes as the manager sees them (plus each node's own engine state)
#
# Usage in a test:  scripts/swarm-rig.sh up && eval "$(scripts/swarm-rig.sh env)"
#                   docker -H "$BERTH_RIG_MANAGER" node ls
# See docs/SWARM-RIG.md.
set -euo pipefail

readonly NODES=(1 2 3)
readonly BRIDGE=berthrig0
readonly HOST_ADDR=10.77.0.1
readonly RIG_CIDR=10.77.0.0/24
readonly SWARM_POOL=10.90.0.0/16
readonly RUN_ROOT=/run/berth-rig
readonly DATA_ROOT=/var/lib/berth-rig
readonly NETNS_DIR=/var/run/netns
readonly IPT_TAG=berth-swarm-rig
readonly LOCK_FILE=/run/berth-swarm-rig.lock
readonly CLEAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Process names a rig node consists of (used to recognise rig processes safely).
readonly RIG_COMMS='^(docker-init|tini|dockerd|containerd|containerd-shim.*|runc|docker-proxy|unshare|nsenter)$'

log() { echo "==> $*"; }
warn() { echo "warning: $*" >&2; }
die() {
  echo "error: $*" >&2
  exit 1
}

node_addr() { echo "10.77.0.$((10 + $1))"; }
node_name() { echo "rig-node-$1"; }
netns_name() { echo "berth-rig-$1"; }
veth_host() { echo "berthrig-v$1"; }
veth_peer() { echo "berthrig-p$1"; }
node_run() { echo "$RUN_ROOT/node-$1"; }
node_sock() { echo "unix://$RUN_ROOT/node-$1/docker.sock"; }
node_label() { if [[ $1 == 3 ]]; then echo dc2; else echo dc1; fi; }
# Run the docker CLI against node $1 (never hangs more than 20 s).
ndocker() {
  local i=$1
  shift
  timeout 20 docker -H "$(node_sock "$i")" "$@"
}
node_answers() { ndocker "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

valid_node() {
  [[ ${1:-} =~ ^[0-9]+$ ]] || die "expected a node number (1..${#NODES[@]}), got '${1:-}'"
  ((${1} >= 1 && ${1} <= ${#NODES[@]})) || die "no node $1 (nodes are 1..${#NODES[@]})"
}

require_root() {
  [[ $(id -u) -eq 0 ]] || die "'swarm-rig.sh $1' must run as root (it creates network namespaces, a bridge, iptables rules and dockerd instances); try: sudo $0 $1"
}

# require_cmds CMD… — all must exist, else one clear message naming the Debian packages.
require_cmds() {
  local c missing=()
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  ((${#missing[@]} == 0)) && return 0
  local pkgs=() p
  for c in "${missing[@]}"; do
    case $c in
      ip) p=iproute2 ;;
      nsenter | unshare | flock | setsid) p=util-linux ;;
      mount | umount) p=mount ;;
      dockerd | docker) p=docker.io ;;
      docker-init) p=tini ;;
      iptables) p=iptables ;;
      *) p=$c ;;
    esac
    [[ " ${pkgs[*]} " == *" $p "* ]] || pkgs+=("$p")
  done
  die "missing command(s): ${missing[*]} — install with: apt-get install -y ${pkgs[*]}"
}

# Serialise rig changes (e.g. `down` while `up` is still running). Background node processes
# must not inherit the lock fd (see start_node: 9>&-).
take_lock() {
  exec 9>"$LOCK_FILE"
  flock -w 180 9 || die "another swarm-rig.sh is still running (lock $LOCK_FILE)"
}

# ---------------------------------------------------------------------------------------------
# processes

# PIDs whose parent is $1.
child_pids() {
  local f rest ppid
  for f in /proc/[0-9]*/stat; do
    rest=$(cat "$f" 2>/dev/null) || continue
    rest=${rest##*) } # drop "pid (comm) " — comm may hold spaces and parentheses
    read -r _ ppid _ <<<"$rest" || continue
    if [[ $ppid == "$1" ]]; then
      f=${f#/proc/}
      echo "${f%/stat}"
    fi
  done
}

# True when PID $1 runs (a zombie does not count).
alive() {
  local st
  [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ ${st:0:1} != Z ]]
}

# True when PID $1 is a rig process: a known node process name whose command line or netns
# points at the rig (protects against a recycled PID in a stale pid file).
is_rig_proc() {
  local pid=$1 comm cmdline
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [[ $comm =~ $RIG_COMMS ]] || return 1
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmdline == *"$RUN_ROOT/node-"* || $cmdline == *"$NETNS_DIR/berth-rig-"* ]]
}

# The node's init (PID 1 of its PID namespace, docker-init). Killing it kills the whole node.
node_init_pid() {
  local pid
  pid=$(cat "$(node_run "$1")/init.pid" 2>/dev/null) || return 1
  alive "$pid" && is_rig_proc "$pid" && echo "$pid"
}

# Every process of node $1 we can find: its init, every process in its netns (dockerd,
# containerd, shims) and any rig process whose command line names the node's run dir.
node_pids() {
  local i=$1 ns pid f cmdline
  ns=$(netns_name "$i")
  {
    node_init_pid "$i" || true
    if [[ -e $NETNS_DIR/$ns ]]; then ip netns pids "$ns" 2>/dev/null || true; fi
    for f in /proc/[0-9]*/cmdline; do
      pid=${f#/proc/}
      pid=${pid%/cmdline}
      [[ $pid == "$$" ]] && continue
      cmdline=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
      if [[ $cmdline == *"$RUN_ROOT/node-$i/"* || $cmdline == *"$NETNS_DIR/$ns "* ]] && is_rig_proc "$pid"; then
        echo "$pid"
      fi
    done
  } | sort -un
}

# wait_gone SECONDS PID… — true when all PIDs exited in time.
wait_gone() {
  local secs=$1 p left t
  shift
  for ((t = 0; t < secs * 5; t++)); do
    left=0
    for p in "$@"; do alive "$p" && left=1; done
    ((left == 0)) && return 0
    sleep 0.2
  done
  return 1
}

# SIGKILL every process of node $1 (the init first: the kernel then kills its whole PID
# namespace, containers included), then sweep what is left.
kill_node_procs() {
  local i=$1 init pids
  init=$(node_init_pid "$i" || true)
  if [[ -n $init ]]; then kill -KILL "$init" 2>/dev/null || true; fi
  for _ in 1 2 3 4 5; do
    mapfile -t pids < <(node_pids "$i")
    ((${#pids[@]} == 0)) && return 0
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait_gone 2 "${pids[@]}" && return 0
  done
  warn "node $i: processes still alive after SIGKILL: $(node_pids "$i" | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------------------------
# network

fwd_chain() {
  if iptables -w -n -L DOCKER-USER >/dev/null 2>&1; then echo DOCKER-USER; else echo FORWARD; fi
}

# The rules, one per line: "CHAIN SPEC…" (each gets the comment tag). Listed in the order they
# end up at the top of their chain.
ipt_rules() {
  local fwd
  fwd=$(fwd_chain)
  # node <-> node traffic bridged over berthrig0 (br_netfilter sends it through FORWARD, whose
  # policy the host's Docker sets to DROP)
  echo "$fwd -i $BRIDGE -o $BRIDGE -j ACCEPT"
  # new connections from the rig to the outside are refused at once (no internet; no hanging
  # pulls); ports the main engine publishes on 10.77.0.1 (DNAT) still go through Docker's rules
  echo "$fwd -i $BRIDGE ! -o $BRIDGE -m conntrack --ctstate NEW -m conntrack ! --ctstate DNAT -j REJECT"
  # nodes -> host (e.g. a registry on 10.77.0.1) and host -> nodes (published ports)
  echo "INPUT -i $BRIDGE -j ACCEPT"
  echo "OUTPUT -o $BRIDGE -j ACCEPT"
}

ipt_add() {
  local lines=() spec=() chain n
  mapfile -t lines < <(ipt_rules)
  # insert in reverse order at position 1 so that the listed order is kept
  for ((n = ${#lines[@]} - 1; n >= 0; n--)); do
    read -ra spec <<<"${lines[n]}"
    chain=${spec[0]}
    spec=("${spec[@]:1}" -m comment --comment "$IPT_TAG")
    if ! iptables -w -C "$chain" "${spec[@]}" 2>/dev/null; then
      iptables -w -I "$chain" 1 "${spec[@]}"
    fi
  done
}

ipt_present() {
  local line spec=() chain
  while read -r line; do
    read -ra spec <<<"$line"
    chain=${spec[0]}
    iptables -w -C "$chain" "${spec[@]:1}" -m comment --comment "$IPT_TAG" 2>/dev/null || return 1
  done < <(ipt_rules)
}

# Delete every rule carrying the tag, wherever it is (also when DOCKER-USER appeared or vanished
# since `up`).
ipt_remove() {
  command -v iptables >/dev/null 2>&1 || return 0
  local chain line spec=()
  for chain in DOCKER-USER FORWARD INPUT OUTPUT; do
    iptables -w -n -L "$chain" >/dev/null 2>&1 || continue
    while read -r line; do
      read -ra spec <<<"${line//\"/}"
      spec[0]=-D
      iptables -w "${spec[@]}" || warn "could not delete iptables rule: $line"
    done < <(iptables -w -S "$chain" | grep -E -- "--comment \"?$IPT_TAG\"?( |\$)" || true)
  done
}

check_address_space() {
  local r
  r=$(ip -4 route show to match "$HOST_ADDR" 2>/dev/null | grep -v "dev $BRIDGE" | grep -v '^default' || true)
  [[ -z $r ]] || die "$RIG_CIDR is already routed on this machine ($r); the rig needs it"
}

net_up() {
  local i ns vh vp addr
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    check_address_space
    ip link add "$BRIDGE" type bridge
  fi
  ip -4 addr show dev "$BRIDGE" | grep -qF " $HOST_ADDR/24 " || ip addr add "$HOST_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for i in "${NODES[@]}"; do
    ns=$(netns_name "$i") vh=$(veth_host "$i") vp=$(veth_peer "$i") addr=$(node_addr "$i")
    [[ -e $NETNS_DIR/$ns ]] || ip netns add "$ns"
    if ! ip link show "$vh" >/dev/null 2>&1; then
      ip link add "$vh" type veth peer name "$vp"
      ip link set "$vp" netns "$ns"
      ip -n "$ns" link set "$vp" name eth0
    fi
    ip link set "$vh" master "$BRIDGE"
    ip link set "$vh" up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip -n "$ns" -4 addr show dev eth0 | grep -qF " $addr/24 " || ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" route replace default via "$HOST_ADDR" dev eth0
  done
  ipt_add
}

# ---------------------------------------------------------------------------------------------
# node engines

start_node() {
  local i=$1 dir data ns init=() args launcher child
  dir=$(node_run "$i") data="$DATA_ROOT/node-$i" ns=$(netns_name "$i")
  [[ -e $NETNS_DIR/$ns ]] || die "network namespace $ns is missing; run: $0 up"
  mkdir -p "$dir/exec" "$data"
  # stale pid files from a killed node would make dockerd/containerd refuse to start (their PIDs
  # are PID-namespace-local and get reused)
  rm -f "$dir/docker.pid" "$dir/exec/containerd/containerd.pid" "$dir/init.pid" "$dir/launcher.pid"
  # own config file (the host's /etc/docker/daemon.json must not apply) and own engine key (the
  # default /etc/docker/key.json would give all engines the main engine's ID). The cgroupfs
  # driver is explicit (on a cgroup v2 + systemd host dockerd would pick systemd, which only
  # takes "*.slice" parents); the absolute parent keeps node containers out of the caller's
  # cgroup: /sys/fs/cgroup/<controller>/berth-rig-node-$i/<container id>.
  printf '{\n  "deprecated-key-path": "%s/key.json"\n}\n' "$data" >"$dir/daemon.json"
  args=(dockerd
    --config-file "$dir/daemon.json"
    --data-root "$data"
    --exec-root "$dir/exec"
    --pidfile "$dir/docker.pid"
    -H "$(node_sock "$i")"
    --exec-opt native.cgroupdriver=cgroupfs
    --cgroup-parent "/berth-rig-node-$i"
    --bip "10.78.$i.1/24"
    --default-address-pool "base=10.8$i.0.0/16,size=24"
    --insecure-registry "$RIG_CIDR"
    --storage-driver overlay2)
  if command -v docker-init >/dev/null 2>&1; then init=(docker-init --); fi
  echo "---- $(date -u '+%Y-%m-%dT%H:%M:%SZ') starting $(node_name "$i") ----" >>"$dir/dockerd.log"
  # nsenter: the node's netns. unshare: own hostname (UTS), PID namespace (docker-init is PID 1:
  # SIGKILL on it takes down the whole node, containers included) and mount namespace (mounts
  # stay private to the node; /run/containerd and /run/docker get private tmpfs so the node can
  # never pick up the host's containerd socket or collide with the main engine's exec root).
  # The outer sh records its PID (= unshare's, after exec); a clean environment keeps proxies
  # and DOCKER_* variables of the caller away from the node.
  # shellcheck disable=SC2016
  setsid env -i PATH="$CLEAN_PATH" HOME=/root \
    nsenter --net="$NETNS_DIR/$ns" \
    sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$dir/launcher.pid" \
    unshare --uts --mount --propagation slave --pid --fork --kill-child --mount-proc \
    "${init[@]}" \
    sh -c 'set -e; echo "$1" >/proc/sys/kernel/hostname
      for d in /run/containerd /run/docker; do mkdir -p "$d"; mount -t tmpfs -o mode=0711,size=16m berth-rig "$d"; done
      shift; exec "$@"' sh "$(node_name "$i")" "${args[@]}" \
    >>"$dir/dockerd.log" 2>&1 </dev/null 9>&- &
  # init = unshare's child (PID 1 of the node's PID namespace)
  for _ in $(seq 1 50); do
    launcher=$(cat "$dir/launcher.pid" 2>/dev/null || true)
    if [[ -n $launcher ]]; then
      child=$(child_pids "$launcher" | head -n1)
      if [[ -n $child ]]; then
        echo "$child" >"$dir/init.pid"
        return 0
      fi
    fi
    sleep 0.1
  done
  die "$(node_name "$i"): its dockerd did not start; see $dir/dockerd.log"
}

# Wait until node $1's engine answers (it is started when not running).
wait_engine() {
  local i=$1 dir
  dir=$(node_run "$i")
  for _ in $(seq 1 150); do
    node_answers "$i" && return 0
    if ! node_init_pid "$i" >/dev/null; then
      tail -n 20 "$dir/dockerd.log" >&2 || true
      die "$(node_name "$i"): dockerd exited; see $dir/dockerd.log"
    fi
    sleep 0.2
  done
  tail -n 20 "$dir/dockerd.log" >&2 || true
  die "$(node_name "$i"): dockerd did not answer within 30 s; see $dir/dockerd.log"
}

ensure_engine() {
  local i=$1
  node_answers "$i" && return 0
  if ! node_init_pid "$i" >/dev/null; then
    kill_node_procs "$i" # leftovers of a node that died half-way
    log "starting dockerd of $(node_name "$i") ($(node_addr "$i"))"
    start_node "$i"
  fi
}

swarm_state() { ndocker "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown; }
node_id() { ndocker "$1" info --format '{{.Swarm.NodeID}}' 2>/dev/null || true; }

swarm_up() {
  local i state token
  state=$(swarm_state 1)
  case $state in
    active) ;;
    inactive)
      log "initialising the swarm on $(node_name 1)"
      ndocker 1 swarm init --advertise-addr "$(node_addr 1)" --listen-addr "$(node_addr 1):2377" \
        --default-addr-pool "$SWARM_POOL" --default-addr-pool-mask-length 24 >/dev/null
      ;;
    *) die "$(node_name 1): unexpected swarm state '$state'; run: $0 down && $0 up" ;;
  esac
  token=$(ndocker 1 swarm join-token -q worker)
  for i in "${NODES[@]:1}"; do
    state=$(swarm_state "$i")
    [[ $state == active ]] && continue
    if [[ $state == pending || $state == error ]]; then
      ndocker "$i" swarm leave --force >/dev/null 2>&1 || true
    fi
    log "joining $(node_name "$i") as a worker"
    ndocker "$i" swarm join --advertise-addr "$(node_addr "$i")" --listen-addr "$(node_addr "$i"):2377" \
      --token "$token" "$(node_addr 1):2377" >/dev/null
  done
}

# One line per rig node (1..3) as the manager sees it: "state availability datacenter-label".
manager_view() {
  local i id
  for i in "${NODES[@]}"; do
    id=$(node_id "$i")
    [[ -n $id ]] || return 1
    ndocker 1 node inspect "$id" --format "{{.Status.State}} {{.Spec.Availability}} {{index .Spec.Labels \"datacenter\"}}" 2>/dev/null || return 1
  done
}

all_ready() {
  local view
  view=$(manager_view) || return 1
  [[ $(grep -c '^ready active' <<<"$view") == "${#NODES[@]}" ]]
}

labels_up() {
  local i id st ids=" "
  for i in "${NODES[@]}"; do
    id=$(node_id "$i")
    ids+="$id "
    ndocker 1 node update --label-add "datacenter=$(node_label "$i")" "$id" >/dev/null
  done
  # a node that left and joined again leaves a Down entry under the same hostname: drop it
  ndocker 1 node ls --format '{{.ID}} {{.Status}}' | while read -r id st; do
    if [[ $st == Down && $ids != *" $id "* ]]; then
      ndocker 1 node rm --force "$id" >/dev/null 2>&1 || true
    fi
  done
}

rig_healthy() {
  local i view
  ip link show "$BRIDGE" up 2>/dev/null | grep -q UP || return 1
  ipt_present || return 1
  for i in "${NODES[@]}"; do
    [[ -e $NETNS_DIR/$(netns_name "$i") ]] || return 1
    ip link show "$(veth_host "$i")" up 2>/dev/null | grep -q UP || return 1
    node_answers "$i" || return 1
  done
  view=$(manager_view) || return 1
  [[ $(printf '%s\n' "$view" | awk '{print $1, $2, $3}') == "$(printf 'ready active %s\n' dc1 dc1 dc2)" ]]
}

summary() {
  local id
  echo
  echo "Swarm rig is up: ${#NODES[@]} nodes on bridge $BRIDGE; the host is $HOST_ADDR"
  printf '  %-11s %-11s %-8s %-14s %-16s %s\n' NODE ADDRESS ROLE STATUS LABELS DOCKER_HOST
  for i in "${NODES[@]}"; do
    id=$(node_id "$i")
    # shellcheck disable=SC2016 # a Go template, not shell
    ndocker 1 node inspect "$id" --format \
      '{{.Description.Hostname}} {{.Status.Addr}} {{.Spec.Role}} {{.Status.State}}/{{.Spec.Availability}} {{range $k, $v := .Spec.Labels}}{{$k}}={{$v}}{{end}}' 2>/dev/null |
      while read -r h a r s l; do
        printf '  %-11s %-11s %-8s %-14s %-16s %s\n' "$h" "$a" "$r" "$s" "${l:--}" "$(node_sock "$i")"
      done
  done
  echo "Manager: DOCKER_HOST=$(node_sock 1)"
  echo "In a shell: eval \"\$($0 env)\"   (BERTH_RIG_MANAGER, BERTH_RIG_HOST_ADDRESS, BERTH_RIG_NODE_<i>, BERTH_RIG_NODE_ENGINES)"
}

# ---------------------------------------------------------------------------------------------
# subcommands

cmd_up() {
  require_root up
  require_cmds ip nsenter unshare setsid flock mount dockerd docker iptables timeout
  take_lock
  if rig_healthy; then
    echo "The swarm rig is already up and healthy."
    summary
    return 0
  fi
  local start=$SECONDS i
  mkdir -p "$RUN_ROOT" "$DATA_ROOT"
  log "network: bridge $BRIDGE ($HOST_ADDR/24), namespaces berth-rig-{1..${#NODES[@]}}, iptables rules ($IPT_TAG)"
  net_up
  for i in "${NODES[@]}"; do ensure_engine "$i"; done
  for i in "${NODES[@]}"; do wait_engine "$i"; done
  swarm_up
  log "waiting for ${#NODES[@]} Ready nodes"
  for _ in $(seq 1 120); do
    all_ready && break
    sleep 0.5
  done
  all_ready || {
    ndocker 1 node ls >&2 || true
    die "the swarm did not get ${#NODES[@]} Ready/Active nodes within 60 s"
  }
  labels_up
  log "rig up in $((SECONDS - start)) s"
  summary
}

cmd_down() {
  require_root down
  require_cmds ip
  command -v flock >/dev/null 2>&1 && take_lock
  local i pid inits=() ns m mounts=()
  # 1. graceful: TERM to each node's init (docker-init forwards it to dockerd, which stops its
  #    containers); then KILL whatever is left
  for i in "${NODES[@]}"; do
    pid=$(node_init_pid "$i" || true)
    if [[ -n $pid ]]; then
      log "stopping $(node_name "$i") (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      inits+=("$pid")
    fi
  done
  if ((${#inits[@]} > 0)) && ! wait_gone 25 "${inits[@]}"; then
    warn "some rig dockerd did not stop within 25 s; killing"
  fi
  for i in "${NODES[@]}"; do kill_node_procs "$i"; done
  # 2. mounts left in the host's mount table (none normally: the nodes mount in their own
  #    namespaces), deepest first
  for _ in 1 2 3 4 5; do
    mapfile -t mounts < <(awk -v a="$DATA_ROOT" -v b="$RUN_ROOT" \
      '$5 == a || index($5, a "/") == 1 || $5 == b || index($5, b "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    ((${#mounts[@]} == 0)) && break
    for m in "${mounts[@]}"; do
      m=$(printf '%b' "$m") # mountinfo escapes spaces as \040
      umount -R "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  done
  # 3. network
  for i in "${NODES[@]}"; do
    ns=$(netns_name "$i")
    if ip link show "$(veth_host "$i")" >/dev/null 2>&1; then ip link del "$(veth_host "$i")" 2>/dev/null || true; fi
    if [[ -e $NETNS_DIR/$ns ]]; then ip netns del "$ns" 2>/dev/null || warn "could not delete netns $ns"; fi
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
  ipt_remove
  # 4. the nodes' (empty) container cgroups
  if [[ -d /sys/fs/cgroup ]]; then
    find /sys/fs/cgroup -maxdepth 4 -depth -type d \( -name 'berth-rig-node-*' -o -path '*/berth-rig-node-*/*' \) \
      -exec rmdir {} \; 2>/dev/null || true
  fi
  # 5. state
  rm -rf --one-file-system "$DATA_ROOT" "$RUN_ROOT"
  log "swarm rig is down"
}

cmd_env() {
  local i
  echo "BERTH_RIG_MANAGER=$(node_sock 1)"
  echo "BERTH_RIG_HOST_ADDRESS=$HOST_ADDR"
  for i in "${NODES[@]}"; do echo "BERTH_RIG_NODE_$i=$(node_sock "$i")"; done
  # The workers' engines, for berth server --node-engines (the manager's is --docker-host).
  local engines=()
  for i in "${NODES[@]:1}"; do engines+=("$(node_name "$i")=$(node_sock "$i")"); done
  echo "BERTH_RIG_NODE_ENGINES=$(IFS=,; echo "${engines[*]}")"
}

cmd_load() {
  require_root load
  require_cmds docker timeout
  (($# > 0)) || die "usage: $0 load IMAGE…"
  local i pids=() failed=0
  for i in "${NODES[@]}"; do node_answers "$i" || die "$(node_name "$i") does not answer; run: $0 up"; done
  docker image inspect "$@" >/dev/null || die "not all of these images exist on the main engine: $*"
  mkdir -p "$DATA_ROOT"
  LOAD_TAR=$(mktemp "$DATA_ROOT/load.XXXXXX.tar")
  trap 'rm -f "$LOAD_TAR"' EXIT
  log "saving $* from the main engine"
  docker save -o "$LOAD_TAR" "$@"
  for i in "${NODES[@]}"; do
    (docker -H "$(node_sock "$i")" load -q -i "$LOAD_TAR" | sed "s/^/$(node_name "$i"): /") &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  ((failed == 0)) || die "loading into some node failed"
}

cmd_kill_node() {
  require_root kill-node
  valid_node "${1:-}"
  require_cmds ip
  take_lock
  local i=$1
  # the machine dies: its link goes silent first, then every process of the node is SIGKILLed
  if ip link show "$(veth_host "$i")" >/dev/null 2>&1; then ip link set "$(veth_host "$i")" down; fi
  kill_node_procs "$i"
  [[ $i == 1 ]] && warn "node 1 is the only manager: the swarm has no manager until: $0 start-node 1"
  log "$(node_name "$i") killed (veth $(veth_host "$i") down); the manager marks it Down after a few heartbeats"
}

cmd_start_node() {
  require_root start-node
  valid_node "${1:-}"
  require_cmds ip nsenter unshare setsid flock mount dockerd docker timeout
  take_lock
  local i=$1
  [[ -e $NETNS_DIR/$(netns_name "$i") ]] || die "the rig is not up (no netns $(netns_name "$i")); run: $0 up"
  [[ -d $DATA_ROOT/node-$i ]] || die "node $i has no state in $DATA_ROOT/node-$i; run: $0 up"
  ip link set "$(veth_host "$i")" up
  ensure_engine "$i"
  wait_engine "$i"
  if node_answers 1; then
    log "waiting for the manager to see $(node_name "$i") Ready"
    for _ in $(seq 1 120); do
      all_ready && break
      sleep 0.5
    done
    all_ready || warn "the manager does not see all nodes Ready yet"
  fi
  cmd_status || true
}

cmd_status() {
  require_root status
  require_cmds docker timeout
  local i rc=0
  if ! node_answers 1; then
    echo "The manager ($(node_name 1), $(node_sock 1)) does not answer."
    rc=1
  else
    ndocker 1 node ls
    echo
    for i in $(ndocker 1 node ls -q); do
      # shellcheck disable=SC2016 # a Go template, not shell
      ndocker 1 node inspect "$i" --format \
        '{{.Description.Hostname}}  addr={{.Status.Addr}}  {{.Spec.Role}}  {{.Status.State}}/{{.Spec.Availability}}  labels={{range $k, $v := .Spec.Labels}}{{$k}}={{$v}} {{end}}'
    done
  fi
  echo
  for i in "${NODES[@]}"; do
    if node_answers "$i"; then
      echo "$(node_name "$i") engine: up, swarm $(swarm_state "$i"), $(node_sock "$i")"
    else
      echo "$(node_name "$i") engine: not answering"
    fi
  done
  return "$rc"
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    env) cmd_env ;;
    load) cmd_load "$@" ;;
    kill-node) cmd_kill_node "$@" ;;
    start-node) cmd_start_node "$@" ;;
    status) cmd_status ;;
    -h | --help | help) usage ;;
    '') usage >&2 && exit 2 ;;
    *) echo "error: unknown subcommand '$cmd'" >&2 && usage >&2 && exit 2 ;;
  esac
}

main "$@"
