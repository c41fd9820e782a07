#!/usr/bin/env bash
# A one-node Slurm cluster in a temporary directory, for crates/cli/tests/it/slurm.rs.
#
#   cluster.sh start DIR PORT   # munged, slurmctld (PORT) and slurmd (PORT+1), all
#                               # with their state, sockets, pid files and logs in DIR
#   cluster.sh stop DIR         # cancel every job, stop the three daemons by pid file
#
# Then `export SLURM_CONF=DIR/slurm.conf` and use sbatch/squeue/scontrol/scancel as usual.
# Nothing outside DIR is written and no system service is touched. Needs root (slurmd
# starts jobs as their submitter), Debian's slurm-wlm and munge. The node claims 8 CPUs
# whatever the machine has (SlurmdParameters=config_overrides), so that the tests' arrays
# run side by side even on a 2-core machine; their jobs are tiny.
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 D=$(realpath -m "$2")

pid_of() { [ -s "$1" ] && cat "$1" || true; }

stop_pidfile() { # TERM, wait up to 10 s, then KILL
    local pid; pid=$(pid_of "$1")
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

case $cmd in
start)
    [ $# -eq 3 ] || usage
    PORT=$3
    for t in munged slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
        command -v "$t" >/dev/null || { echo "$t not found (install slurm-wlm and munge)" >&2; exit 3; }
    done
    [ "$(id -u)" = 0 ] || { echo "not root: slurmd must run as root" >&2; exit 3; }
    mkdir -p "$D"/{state,spool,log,munge}
    chmod 700 "$D/munge"
    H=$(hostname -s)
    dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 2>/dev/null
    chmod 400 "$D/munge/munge.key"
    munged --key-file="$D/munge/munge.key" --socket="$D/munge/munge.sock" \
        --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" \
        --seed-file="$D/munge/munged.seed" --force
    MEM=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 1024 ))
    cat > "$D/slurm.conf" <<CONF
ClusterName=nstest
SlurmctldHost=$H(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
SlurmdParameters=config_overrides
JobRequeue=1
KillWait=5
MinJobAge=600
NodeName=$H NodeAddr=127.0.0.1 CPUs=8 RealMemory=$MEM State=UNKNOWN
PartitionName=test Nodes=$H Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
    export SLURM_CONF=$D/slurm.conf
    slurmctld -f "$D/slurm.conf"
    slurmd -f "$D/slurm.conf"
    for _ in $(seq 1 60); do
        sinfo -h -o %t 2>/dev/null | grep -qE '^idle' && { sinfo; exit 0; }
        sleep 0.5
    done
    echo "the node did not become idle in 30 s:" >&2
    sinfo >&2 || true
    tail -n 20 "$D/log/slurmctld.log" "$D/log/slurmd.log" >&2 || true
    exit 4
    ;;
stop)
    if [ -f "$D/slurm.conf" ] && [ -n "$(pid_of "$D/slurmctld.pid")" ]; then
        export SLURM_CONF=$D/slurm.conf
        scancel --full --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 1 40); do
            [ -z "$(squeue -h 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    stop_pidfile "$D/slurmd.pid"
    stop_pidfile "$D/slurmctld.pid"
    stop_pidfile "$D/munge/munged.pid"
    ;;
*) usage ;;
esac
