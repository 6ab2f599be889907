#!/usr/bin/env bash
# A real single-node SLURM cluster for tests and local sweeps, without systemd:
#
#   slurm/cluster.sh up|down|status [PREFIX]     (PREFIX default ${DNSREC_SLURM_PREFIX:-/tmp/dnsrec-slurm})
#
# munged (private socket), a private MariaDB, slurmdbd (so that sacct works: submitit reads job states only
# from sacct), slurmctld and slurmd, with every file under PREFIX: etc/ (configs from slurm/conf/*.in),
# run/ (pid files, sockets), log/, state/ (kept between restarts, so job ids are never reused), mysql/, dev/.
# Clients find the cluster through SLURM_CONF=PREFIX/etc/slurm.conf (`up` prints the export line).
#
# Ports are private too: four consecutive ports in 20000-27999 chosen from a hash of PREFIX, moved on if
# any is already listening, so several clusters (e.g. `make slurm-up` and the test suite's) run side by side.
#
# Environment: DNSREC_SLURM_GPUS=N   fake GPUs (gres gpu:N, character devices under PREFIX/dev);
#              DNSREC_SLURM_UP_TIMEOUT=S   how long `up` waits for the cluster (default 60 s).
# Needs root and the packages of slurm/install-deps.sh. Checked with SLURM 22.05, munge 0.5.15, MariaDB 10.11.
set -euo pipefail
export PATH="/usr/sbin:/sbin:$PATH"
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage="usage: slurm/cluster.sh up|down|status [PREFIX]"
command=${1:-}
prefix=$(realpath -m "${2:-${DNSREC_SLURM_PREFIX:-/tmp/dnsrec-slurm}}")
conf=$prefix/etc/slurm.conf
export SLURM_CONF=$conf # for the clients run here, and inherited by the daemons (it marks them as ours)
timeout=${DNSREC_SLURM_UP_TIMEOUT:-60}
launched='' launched_status=0
gpus=${DNSREC_SLURM_GPUS:-0}
munge_socket=$prefix/run/munge.socket
daemons=(munged mariadbd slurmdbd slurmctld slurmd) # start order; stopped in reverse

say() { echo "cluster.sh: $*"; }
die() {
  echo "cluster.sh: error: $*" >&2
  exit 1
}

# --- processes -------------------------------------------------------------------------------------

pid_of() { # the pid of daemon $1 from its pid file, if that process is alive and has the daemon's name
  local file=$prefix/run/$1.pid pid state
  [ -s "$file" ] || return 1
  pid=$(head -n1 "$file" | tr -dc 0-9)
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
  state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
  [ "$state" != Z ] || return 1 # a zombie waiting for init to reap it is gone
  echo "$pid"
}

gone() { [ ! -e "/proc/$1" ] || [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = Z ]; }

close_fds() { # close every inherited descriptor but 0-2 (a daemon holding a CI pipe keeps the CI step waiting)
  local fd
  for fd in "/proc/$BASHPID/fd/"*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}

launch() { # launch LOG CMD...: in a new session, stdin /dev/null, stdout+stderr to LOG, no other descriptors
  # The background subshell execs setsid, which execs the daemon (not a process group leader, so setsid
  # does not fork): no shell stays behind holding this script's stdout, a pipe when a test or CI runs it.
  local log=$1
  shift
  (
    close_fds
    exec setsid "$@" </dev/null >>"$log" 2>&1
  ) &
  launched_status=0
  launched=$! # the daemon itself, or (for a daemon that forks) the parent that exits once it has forked
}

log_tail() { # the end of a daemon's log, for error messages
  local f=$prefix/log/$1.log
  if [ -s "$f" ]; then
    echo "--- last lines of $f:"
    tail -n 25 "$f"
  else
    echo "--- $f is empty or missing"
  fi
}

wait_for() { # wait_for WHAT DAEMON CMD...: retry CMD until it succeeds or the timeout passes
  local what=$1 daemon=$2 start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
      echo "cluster.sh: error: timed out after ${timeout} s waiting for $what ($prefix)" >&2
      log_tail "$daemon" >&2
      echo "cluster.sh: stop what did start with: slurm/cluster.sh down $prefix" >&2
      exit 1
    fi
    if [ -n "$daemon" ] && died "$daemon"; then
      echo "cluster.sh: error: $daemon exited while starting ($prefix)" >&2
      log_tail "$daemon" >&2
      echo "cluster.sh: stop what did start with: slurm/cluster.sh down $prefix" >&2
      exit 1
    fi
    sleep 0.2
  done
}

launch_failed() { # the last launched process exited with an error (a forking daemon's parent exits 0)
  if [ -n "$launched" ] && ! kill -0 "$launched" 2>/dev/null; then
    wait "$launched" || launched_status=$?
    launched=
  fi
  [ "$launched_status" -ne 0 ]
}

died() { # what was launched failed, or the daemon wrote its pid file (stale ones are removed before a start)
  # and is gone since. The pid file is tested BEFORE the process: it may appear between the two tests.
  if launch_failed; then return 0; fi
  [ -s "$prefix/run/$1.pid" ] && ! pid_of "$1" >/dev/null
}

running_count() {
  local n=0 d
  for d in "${daemons[@]}"; do
    if pid_of "$d" >/dev/null; then n=$((n + 1)); fi
  done
  echo "$n"
}

our_stepds() { # slurmstepd processes of this cluster: they inherit slurmd's SLURM_CONF
  local pid
  for pid in $(pgrep -x slurmstepd); do
    if tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qxF "SLURM_CONF=$conf"; then echo "$pid"; fi
  done
}

descendants() { # every descendant of the given pids
  local all queue=("$@") pid children
  all=$(ps -e -o pid=,ppid=)
  while [ ${#queue[@]} -gt 0 ]; do
    pid=${queue[0]}
    queue=("${queue[@]:1}")
    mapfile -t children < <(awk -v p="$pid" '$2 == p {print $1}' <<<"$all")
    if [ ${#children[@]} -gt 0 ]; then
      printf '%s\n' "${children[@]}"
      queue+=("${children[@]}")
    fi
  done
}

# --- configuration ---------------------------------------------------------------------------------

listening_ports() { # TCP ports in LISTEN state, from /proc (no iproute2 needed)
  local _sl local_addr _rem st _rest
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | while read -r _sl local_addr _rem st _rest; do
    if [ "$st" = 0A ]; then echo $((16#${local_addr##*:})); fi
  done
}

choose_ports() { # four free consecutive ports, starting from a block chosen by a hash of PREFIX
  local busy block base p ok
  busy=" $(listening_ports | tr '\n' ' ') "
  block=$(($(cksum <<<"$prefix" | cut -d' ' -f1) % 2000))
  for _ in $(seq 2000); do
    base=$((20000 + block * 4))
    ok=1
    for p in $base $((base + 1)) $((base + 2)) $((base + 3)); do
      if [[ $busy == *" $p "* ]]; then ok=0; fi
    done
    if [ $ok = 1 ]; then
      echo "$base"
      return
    fi
    block=$(((block + 1) % 2000))
  done
  die "no four free consecutive ports in 20000-27999"
}

render() { # render TEMPLATE OUT: replace every @KEY@ with the value of the variable KEY in `values`
  local text key
  text=$(<"$1")
  for key in "${!values[@]}"; do text=${text//@"$key"@/${values[$key]}}; done
  if [[ $text =~ @[A-Z_]+@ ]]; then die "unfilled placeholder ${BASH_REMATCH[0]} in $1"; fi
  printf '%s\n' "$text" >"$2"
}

write_config() {
  local host cpus mem_mb real def_mem base i
  host=$(hostname -s)
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
  mem_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
  real=$((mem_mb - (mem_mb / 5 > 512 ? mem_mb / 5 : 512))) # headroom for the OS and the daemons
  def_mem=$((real / cpus < 2048 ? real / cpus : 2048))
  [[ $gpus =~ ^[0-9]+$ ]] || die "DNSREC_SLURM_GPUS must be a number of fake GPUs, got '$gpus'"
  base=$(choose_ports)
  mkdir -p "$prefix"/{etc,run,log,state/ctld,state/slurmd,mysql,dev}
  chmod 755 "$prefix" "$prefix/run" # munged refuses a socket directory others can write to
  if [ ! -s "$prefix/etc/db-password" ]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$prefix/etc/db-password")
  fi
  declare -gA values=(
    [PREFIX]=$prefix [HOST]=$host [CPUS]=$cpus [REAL_MEMORY]=$real [DEF_MEM_PER_CPU]=$def_mem
    [CTLD_PORT]=$base [SLURMD_PORT]=$((base + 1)) [DBD_PORT]=$((base + 2)) [MYSQL_PORT]=$((base + 3))
    [MUNGE_SOCKET]=$munge_socket [DB_PASSWORD]=$(<"$prefix/etc/db-password")
    [GRES_TYPES]="# no fake GPUs (DNSREC_SLURM_GPUS=0)" [NODE_GRES]="" [GRES_LINES]="# no generic resources"
  )
  if [ "$gpus" -gt 0 ]; then
    values[GRES_TYPES]=$'GresTypes=gpu\nAccountingStorageTRES=gres/gpu'
    values[NODE_GRES]="Gres=gpu:$gpus"
    values[GRES_LINES]=""
    for ((i = 0; i < gpus; i++)); do
      [ -c "$prefix/dev/nvidia$i" ] || mknod "$prefix/dev/nvidia$i" c 1 3
      values[GRES_LINES]+="Name=gpu File=$prefix/dev/nvidia$i"$'\n'
    done
  fi
  render "$here/conf/slurm.conf.in" "$conf"
  render "$here/conf/gres.conf.in" "$prefix/etc/gres.conf"
  render "$here/conf/mariadb.cnf.in" "$prefix/etc/mariadb.cnf"
  (umask 077 && render "$here/conf/slurmdbd.conf.in" "$prefix/etc/slurmdbd.conf")
  chmod 600 "$prefix/etc/slurmdbd.conf"
}

# --- the daemons -----------------------------------------------------------------------------------

start_munged() {
  if [ ! -s "$prefix/etc/munge.key" ]; then
    (umask 077 && head -c 1024 /dev/urandom >"$prefix/etc/munge.key")
  fi
  rm -f "$prefix/run/munged.pid"
  # --force: munged wants every directory above its socket to be searchable by all users; pytest's
  # temporary directories are not (mode 700). Only root can then reach the socket, which is all we need.
  launch "$prefix/log/munged.log" munged --force --socket="$munge_socket" --key-file="$prefix/etc/munge.key" \
    --pid-file="$prefix/run/munged.pid" --log-file="$prefix/log/munged.log" --seed-file="$prefix/state/munge.seed"
  wait_for "munged to answer" munged bash -c "munge -n -S '$munge_socket' | unmunge -S '$munge_socket'"
}

start_mariadbd() {
  local cnf=$prefix/etc/mariadb.cnf password
  if [ ! -d "$prefix/mysql/mysql" ]; then
    mariadb-install-db --defaults-file="$cnf" --auth-root-authentication-method=socket --skip-test-db \
      >"$prefix/log/mariadb-install.log" 2>&1 </dev/null ||
      die "mariadb-install-db failed; see $prefix/log/mariadb-install.log"
  fi
  rm -f "$prefix/run/mariadbd.pid"
  launch "$prefix/log/mariadb.log" mariadbd --defaults-file="$cnf"
  wait_for "MariaDB to answer" mariadbd mariadb --defaults-file="$cnf" -u root -e 'SELECT 1'
  password=$(<"$prefix/etc/db-password")
  mariadb --defaults-file="$cnf" -u root -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1';
    ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || die "could not create the slurm database user"
}

start_slurmdbd() {
  rm -f "$prefix/run/slurmdbd.pid"
  launch "$prefix/log/slurmdbd.log" slurmdbd
  wait_for "slurmdbd to answer sacctmgr" slurmdbd sacctmgr -n list cluster
  if [ -z "$(sacctmgr -n -P list cluster format=cluster where cluster=dnsrec)" ]; then
    sacctmgr -i add cluster dnsrec >/dev/null
  fi
}

start_slurmctld() {
  rm -f "$prefix/run/slurmctld.pid"
  launch "$prefix/log/slurmctld.log" slurmctld -f "$conf"
  wait_for "slurmctld to answer" slurmctld scontrol ping
}

start_slurmd() {
  rm -f "$prefix/run/slurmd.pid"
  launch "$prefix/log/slurmd.log" slurmd -f "$conf" -N "$(hostname -s)"
}

node_ready() { # the node is up (idle, or busy with jobs kept from before a restart)
  local state
  state=$(sinfo -h -N -n "$(hostname -s)" -o %T 2>/dev/null) || return 1
  [[ $state =~ ^(idle|mixed|allocated|completing)$ ]]
}

accounting_ready() { # slurmctld registered with slurmdbd (its address is known) and sacct answers
  [ -n "$(sacctmgr -n -P list cluster format=controlhost where cluster=dnsrec 2>/dev/null)" ] &&
    sacct -n -X -S now >/dev/null 2>&1
}

# --- commands --------------------------------------------------------------------------------------

cmd_up() {
  local d start=$SECONDS
  [ "$(id -u)" -eq 0 ] || die "run as root (slurmd starts jobs as their submitters; munged and slurmd own files)"
  for d in "${daemons[@]}"; do
    command -v "$d" >/dev/null || die "$d not found: install the packages with slurm/install-deps.sh"
  done
  [ ${#munge_socket} -lt 100 ] || die "PREFIX is too long for a unix socket path: $prefix"
  if [ "$(running_count)" -eq ${#daemons[@]} ]; then
    say "already up ($prefix)"
  else
    # A fresh configuration (free ports, current memory and GPU settings) unless some daemon still runs on
    # the old one; the state directories are kept.
    if [ "$(running_count)" -eq 0 ]; then write_config; fi
    for d in "${daemons[@]}"; do
      if ! pid_of "$d" >/dev/null; then "start_$d"; fi
    done
    wait_for "the node to become idle" slurmd node_ready
    wait_for "accounting (sacct) to answer" slurmdbd accounting_ready
    say "up in $((SECONDS - start)) s ($prefix; node $(hostname -s), partition debug)"
  fi
  echo "export SLURM_CONF=$conf"
}

stop_daemon() { # TERM, then KILL after 15 s
  local name=$1 pid i
  pid=$(pid_of "$name") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 75; i++)); do
    if gone "$pid"; then return 0; fi
    sleep 0.2
  done
  say "$name ($pid) ignored SIGTERM for 15 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

cmd_down() {
  local i jobs=() stepds=() left=()
  if [ "$(running_count)" -eq 0 ] && [ -z "$(our_stepds)" ]; then
    say "not running ($prefix)"
    return 0
  fi
  # Cancel the jobs first: with proctrack/linuxproc, jobs outlive slurmd; this way they end as CANCELLED.
  if pid_of slurmctld >/dev/null && pid_of slurmd >/dev/null; then
    mapfile -t jobs < <(squeue -h -o %A 2>/dev/null | sort -u)
    if [ ${#jobs[@]} -gt 0 ]; then
      say "cancelling jobs ${jobs[*]}"
      scancel --full "${jobs[@]}" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        [ -z "$(squeue -h -o %A 2>/dev/null)" ] && [ -z "$(our_stepds)" ] && break
        sleep 0.2
      done
    fi
  fi
  for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do stop_daemon "${daemons[i]}"; done
  # After a crash slurmstepd survives SIGTERM: give the leftovers 5 s, then kill them and their job processes.
  for ((i = 0; i < 25; i++)); do
    mapfile -t stepds < <(our_stepds)
    [ ${#stepds[@]} -eq 0 ] && break
    if [ "$i" -eq 0 ]; then kill -TERM "${stepds[@]}" 2>/dev/null || true; fi
    sleep 0.2
  done
  mapfile -t stepds < <(our_stepds)
  if [ ${#stepds[@]} -gt 0 ]; then
    mapfile -t left < <(descendants "${stepds[@]}")
    say "killing leftover slurmstepd ${stepds[*]} and their processes ${left[*]}"
    kill -KILL "${stepds[@]}" "${left[@]}" 2>/dev/null || true
  fi
  rm -f "$prefix"/run/*.pid
  say "down ($prefix)"
}

cmd_status() {
  local d pid n
  for d in "${daemons[@]}"; do
    if pid=$(pid_of "$d"); then echo "$d: running (pid $pid)"; else echo "$d: not running"; fi
  done
  n=$(running_count)
  if [ "$n" -lt ${#daemons[@]} ]; then
    say "not up ($n of ${#daemons[@]} daemons running; $prefix)"
    return 3
  fi
  echo "SLURM_CONF=$conf"
  sinfo
  squeue
}

case $command in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) die "$usage" ;;
esac
