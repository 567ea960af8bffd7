#!/usr/bin/env bash
# slurm-down.sh - stop the single-node SLURM cluster started by .ci/slurm-up.sh
# (slurmd, slurmctld, munged; found by their pid files only). Idempotent.
set -euo pipefail
alive() {  # pid file names a running (non-zombie) process
    [[ -s $1 ]] && [[ $(awk '{print $3}' "/proc/$(cat "$1")/stat" 2>/dev/null) =~ ^[RSD]$ ]]; }
for f in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid /run/munge/munged.pid; do
    if alive "$f"; then
        kill "$(cat "$f")" 2>/dev/null || true
        for _ in $(seq 50); do alive "$f" || break; sleep 0.1; done
        alive "$f" && kill -9 "$(cat "$f")" 2>/dev/null || true
    fi
    rm -f "$f"
done
echo "slurm-down: stopped"
