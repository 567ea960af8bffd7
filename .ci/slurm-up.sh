#!/usr/bin/env bash
# slurm-up.sh - install and start a real single-node SLURM cluster on this machine.
#
# For CI / dev boxes (Debian 12, root, no systemd). What it does:
#   1. apt-installs slurmctld, slurmd, slurm-client and munge if they are missing;
#   2. writes /etc/slurm/slurm.conf for ONE node (this host, twice its CPUs, ~85% RAM,
#      partition "debug" = default), no accounting database (no slurmdbd);
#   3. (re)starts munged, slurmctld and slurmd by hand, waits (<= 30 s) for the
#      node to become idle, and runs a smoke job (srun hostname).
# Idempotent: if the cluster already answers with a usable node and this script's slurm.conf, it
# only reports (another slurm.conf: the daemons are restarted with this one).
# Stop it with .ci/slurm-down.sh. Logs: /var/log/slurm/{slurmctld,slurmd}.log.
# NB: no slurmdbd => `sacct` fails; Snakemake needs `slurm-status-command: squeue`.
set -euo pipefail

HOST=$(hostname -s)
CONF=/etc/slurm/slurm.conf
RUN=/run/slurm
LIB=/var/lib/slurm
LOG=/var/log/slurm

node_state() { timeout 5 sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n1 || true; }
usable() { [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]; }
say() { echo "slurm-up: $*"; }
alive() {  # pid file names a running (non-zombie) process
    [[ -s $1 ]] && [[ $(awk '{print $3}' "/proc/$(cat "$1")/stat" 2>/dev/null) =~ ^[RSD]$ ]]; }

# --- slurm.conf (as this script writes it) -------------------------------------
# The node offers twice the machine's CPUs (config_overrides lets slurmd accept that): test jobs
# spend much of their time waiting (one sleeps into its time limit; the others wait on SLURM's
# start and the status polls), and a waiting job should not keep another job from a free core.
CPUS=$(( $(nproc) * 2 ))
MEM=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)
conf_text() {
    cat <<CONF
# Written by .ci/slurm-up.sh - single-node test cluster, no accounting DB.
ClusterName=ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
MinJobAge=300
ReturnToService=2
MpiDefault=none
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
StateSaveLocation=$LIB/slurmctld
SlurmdSpoolDir=$LIB/slurmd
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmdParameters=config_overrides
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
}

# --- already up? -------------------------------------------------------------
# (slurmctld keeps reporting a dead slurmd's node as idle for minutes: check pids too)
if command -v sinfo >/dev/null && alive $RUN/slurmctld.pid && alive $RUN/slurmd.pid &&
   cmp -s <(conf_text) $CONF && munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && usable; then
    say "already running: node $HOST is $(node_state) ($(sinfo -h -o '%P %D %C'))"
    exit 0
fi

# --- install ---------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
   ! command -v sinfo >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm + munge via apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
fi

# --- stop stale daemons (by pid file only) -----------------------------------
stop_pidfile() {
    local f=$1
    if alive "$f"; then
        kill "$(cat "$f")" 2>/dev/null || true
        for _ in $(seq 50); do alive "$f" || break; sleep 0.1; done
        alive "$f" && kill -9 "$(cat "$f")" 2>/dev/null || true
    fi
    rm -f "$f"
}
stop_pidfile $RUN/slurmd.pid
stop_pidfile $RUN/slurmctld.pid

# --- munge ---------------------------------------------------------------------
mkdir -p /run/munge /etc/munge /var/log/munge /var/lib/munge
[[ -s /etc/munge/munge.key ]] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chown -R munge:munge /run/munge /etc/munge /var/log/munge /var/lib/munge
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    stop_pidfile /run/munge/munged.pid
    rm -f /run/munge/munge.socket.2*
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || { echo "slurm-up: munged does not work" >&2; exit 1; }
fi

# --- slurm.conf ----------------------------------------------------------------
mkdir -p /etc/slurm $RUN $LIB/slurmctld $LIB/slurmd $LOG
conf_text > $CONF

# --- start daemons ---------------------------------------------------------------
slurmctld -i
slurmd -N "$HOST"

deadline=$((SECONDS + 30))
until usable || ((SECONDS > deadline)); do sleep 1; done
if ! usable; then
    echo "slurm-up: node $HOST not usable after 30 s (state: '$(node_state)')." >&2
    echo "slurm-up: see $LOG/slurmctld.log and $LOG/slurmd.log" >&2
    tail -n 5 $LOG/slurmctld.log $LOG/slurmd.log >&2 || true
    exit 1
fi

# --- smoke test ------------------------------------------------------------------
out=$(timeout 60 srun -N1 -n1 hostname) || { echo "slurm-up: smoke test 'srun hostname' failed" >&2; exit 1; }
say "up: node $HOST is $(node_state), CPUs=$CPUS RealMemory=${MEM}MB partition=debug; srun -> $out"
