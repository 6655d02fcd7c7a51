#!/bin/bash
# Re-record the Slurm command outputs in this directory from a real cluster.
#
#   scripts/slurm-local stop; rm -rf .devstack/slurm   # optional: fresh job ids
#   scripts/slurm-local start
#   . .devstack/slurm/env
#   tests/data/slurm/record.sh
#
# Needs an empty queue on the cluster that $SLURM_CONF points at.  Takes six
# to eight minutes: a --time=1 job has to time out, and the first job has to
# be purged from slurmctld after MinJobAge=300.  Writes every captured file next
# to this script and a manifest.tsv (file, exit code, command) that README.md
# is written from.  Job scripts are in jobs/.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE
MANIFEST=$OUT/manifest.tsv
WORK=$(mktemp -d /tmp/jobgate-slurm-rec.XXXXXX)
cp "$HERE"/jobs/*.sh "$WORK"/
cd "$WORK" || exit 1
: "${SLURM_CONF:?export SLURM_CONF first (see scripts/slurm-local start)}"
if [ -n "$(squeue -h)" ]; then
    echo "the queue is not empty; run this against an idle cluster" >&2
    exit 1
fi

# Drop the files of the previous recording (they are all in its manifest).
if [ -f "$MANIFEST" ]; then
    tail -n +2 "$MANIFEST" | cut -f1 | while read -r old; do rm -f "$OUT/$old"; done
fi
printf 'file\texit_code\tcommand\n' >"$MANIFEST"

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# name TAG: a job name like the backend's, jobgate-<26 lowercase chars>.
name() {
    local tag=$1 pad=00000000000000000000
    printf 'jobgate-01m7zp%s%s' "${pad:0:$((20 - ${#tag}))}" "$tag"
}

# rec FILE 'COMMAND': run COMMAND, keep stdout in FILE and stderr (if any) in
# FILE's base name + .stderr, and note the exit code in the manifest.  An
# empty stdout is dropped when there is stderr; otherwise it is kept (empty).
rec() {
    local file=$1 cmd=$2 base=${1%.*} rc
    eval "$cmd" >"$OUT/$file" 2>"$WORK/stderr"
    rc=$?
    if [ -s "$WORK/stderr" ]; then
        cp "$WORK/stderr" "$OUT/$base.stderr"
        printf '%s\t%s\t%s\n' "$base.stderr" "$rc" "$cmd" >>"$MANIFEST"
        [ -s "$OUT/$file" ] || rm -f "$OUT/$file"
    fi
    if [ -f "$OUT/$file" ]; then
        printf '%s\t%s\t%s\n' "$file" "$rc" "$cmd" >>"$MANIFEST"
    fi
    log "$file (exit $rc): $cmd"
}

# sub TAG SBATCH-ARGS...: submit quietly, print the job id.
sub() {
    local tag=$1
    shift
    sbatch --parsable -J "$(name "$tag")" "$@"
}

# state JOBID: the job's state as squeue prints it (%T), one line per element.
state() { squeue -h -t all -j "$1" -o %T 2>/dev/null; }

# wait_for SECONDS 'CONDITION': poll until the shell condition holds.
wait_for() {
    local deadline=$((SECONDS + $1))
    until eval "$2"; do
        if [ $SECONDS -ge $deadline ]; then
            log "timed out waiting for: $2"
            return 1
        fi
        sleep 0.5
    done
}

is_state() { [ "$(state "$1")" = "$2" ]; }
# reason JOBID: %r of a single (non-array) job.
reason() { squeue -h -t all -j "$1" -o %r 2>/dev/null; }

FMT_O='%i|%A|%F|%K|%j|%T|%r|%S|%e|%V'
FMT_CAP_O='JobID:0|,ArrayJobID:0|,ArrayTaskID:0|,Name:0|,State:0|,Reason:0|,StartTime:0|,EndTime:0|,exit_code:0|,DerivedEC:0'
SACCT_FIELDS='jobid,jobidraw,jobname,state,exitcode,derivedexitcode,start,end,elapsed,submit,timelimit,nodelist'

log "SLURM_CONF=$SLURM_CONF work dir $WORK"
rec version.txt 'sbatch --version'
rec sinfo_idle.txt 'sinfo'
rec scontrol_show_config.txt 'scontrol show config'
rec squeue_json_empty.json 'squeue --json'
rec squeue_text_empty.txt "squeue -h -t all -o '$FMT_O'"

# --------------------------------------------------------------------------
# sbatch output forms
# --------------------------------------------------------------------------
rec sbatch_parsable.txt "sbatch --parsable -J $(name ok) ok.sh"
J_OK=$(cat "$OUT/sbatch_parsable.txt")
rec sbatch_plain.txt "sbatch -J $(name plain) ok.sh"
rec sbatch_parsable_clusters.txt "sbatch --parsable --clusters=jobgate -J $(name clusters) ok.sh"
rec sbatch_parsable_M.txt "sbatch --parsable -M jobgate -J $(name clustersm) ok.sh"
rec sbatch_invalid_partition.txt "sbatch --parsable -p nosuch -J $(name badpart) ok.sh"
rec sbatch_too_much_memory.txt "sbatch --parsable --mem=1000G -J $(name bigmem) ok.sh"
wait_for 30 "is_state $J_OK COMPLETED"
wait_for 30 '[ -z "$(squeue -h)" ]'

# --------------------------------------------------------------------------
# Phase A: a queue with jobs in several states at once
# --------------------------------------------------------------------------
rec sbatch_parsable_array.txt "sbatch --parsable -J $(name arr) --array=0-9%3 sleep.sh 300"
J_ARR=$(cat "$OUT/sbatch_parsable_array.txt")
wait_for 30 "[ \$(squeue -h -r -t running -j $J_ARR | wc -l) -ge 2 ]"
J_PRIO1=$(sub prioa sleep.sh 300)
J_PRIO2=$(sub priob sleep.sh 300)
J_DEP=$(sub dep --dependency=afterok:$J_PRIO1 sleep.sh 300)
J_HELD=$(sub held --hold sleep.sh 300)
J_BEGIN=$(sub begin --begin=now+3600 sleep.sh 300)
# Reasons stay "None" until the scheduler has looked at a job.
wait_for 30 "[ \"\$(reason $J_PRIO2)\" != None ] && [ \"\$(reason $J_DEP)\" != None ]"
sleep 2
log "phase A: array $J_ARR prio $J_PRIO1 $J_PRIO2 dep $J_DEP held $J_HELD begin $J_BEGIN"
rec squeue_default_mixed.txt 'squeue'
rec squeue_json_mixed.json 'squeue --json'
rec squeue_json_mixed_all.json 'squeue --json -t all'
rec squeue_text_mixed.txt "squeue -h -t all -o '$FMT_O'"
rec squeue_text_mixed_r.txt "squeue -h -t all -r -o '$FMT_O'"
rec squeue_format_mixed_r.txt "squeue -h -t all -r -O '$FMT_CAP_O'"
rec squeue_text_mixed_names.txt "squeue -h -t all -n $(name prioa),$(name held) -o '$FMT_O'"
rec scontrol_show_job_running.txt "scontrol show job -o ${J_ARR}_0"
rec scontrol_show_job_array.txt "scontrol show job -o $J_ARR"
rec scontrol_show_job_array_pending_task.txt "scontrol show job -o ${J_ARR}_5"
rec scontrol_show_job_pending_priority.txt "scontrol show job -o $J_PRIO2"
rec scontrol_show_job_pending_dependency.txt "scontrol show job -o $J_DEP"
rec scontrol_show_job_held.txt "scontrol show job -o $J_HELD"
rec scontrol_show_job_begin.txt "scontrol show job -o $J_BEGIN"
rec scancel_array_task.txt "scancel ${J_ARR}_0"
wait_for 30 "[ \$(squeue -h -r -t running -j $J_ARR | wc -l) -ge 2 ] && ! is_state ${J_ARR}_0 CANCELLING"
rec squeue_text_array_after_task_cancel.txt "squeue -h -t all -r -j $J_ARR -o '$FMT_O'"
rec scancel_multiple.txt "scancel $J_ARR $J_PRIO1 $J_PRIO2 $J_DEP $J_HELD $J_BEGIN"
wait_for 30 '[ -z "$(squeue -h)" ]'
rec squeue_json_cancelled_all.json 'squeue --json -t all'
rec squeue_text_cancelled_all.txt "squeue -h -t all -r -o '$FMT_O'"

# An array throttled by %1 while a CPU is still free: JobArrayTaskLimit.
J_LIM=$(sub arrlim --array=0-3%1 sleep.sh 300)
wait_for 30 "squeue -h -r -t pending -j $J_LIM -o %r | grep -qv None"
sleep 1
rec squeue_json_array_task_limit.json "squeue --json -j $J_LIM"
rec squeue_text_array_task_limit.txt "squeue -h -r -j $J_LIM -o '$FMT_O'"
rec scancel_array_whole.txt "scancel $J_LIM"
wait_for 30 '[ -z "$(squeue -h)" ]'

# --------------------------------------------------------------------------
# Phase B: jobs that finish in different ways
# --------------------------------------------------------------------------
TIMEOUT_SUBMITTED=$(date +%s)
J_TIMEOUT=$(sub timeout --time=1 sleep.sh 300)
wait_for 30 "is_state $J_TIMEOUT RUNNING"
J_EXIT3=$(sub exitthree exit3.sh)
wait_for 30 "is_state $J_EXIT3 FAILED"
J_KILL9=$(sub killnine kill9.sh)
wait_for 30 "! is_state $J_KILL9 PENDING && ! is_state $J_KILL9 RUNNING"
J_ARRX=$(sub arrexit --array=0-2 array_exit.sh)
wait_for 30 "[ -z \"\$(squeue -h -j $J_ARRX)\" ]"

# A failed dependency: B waits on A (held, so B is queued before A fails).
J_DEPA=$(sub depa --hold fail1.sh)
J_DEPB=$(sub depb --dependency=afterok:$J_DEPA ok.sh)
wait_for 30 "[ \"\$(reason $J_DEPB)\" = Dependency ]"
rec scontrol_show_job_dependency_waiting.txt "scontrol show job -o $J_DEPB"
scontrol release "$J_DEPA"
wait_for 30 "is_state $J_DEPA FAILED"
wait_for 30 "[ \"\$(reason $J_DEPB)\" != Dependency ]"
sleep 2
rec scontrol_show_job_dependency_never_satisfied.txt "scontrol show job -o $J_DEPB"
rec squeue_json_dependency_never_satisfied.json "squeue --json -j $J_DEPB"
rec squeue_text_dependency_never_satisfied.txt "squeue -h -t all -j $J_DEPA,$J_DEPB -o '$FMT_O'"
rec sbatch_dependency_on_failed_job.txt "sbatch --parsable --dependency=afterok:$J_DEPA -J $(name depc) ok.sh"
J_DEPC=$(cat "$OUT/sbatch_dependency_on_failed_job.txt" 2>/dev/null)
# Do they stay pending?  Look again a little later, then cancel B (C is left
# pending, so the snapshots below show a DependencyNeverSatisfied job).
sleep 20
rec squeue_text_dependency_never_satisfied_later.txt "squeue -h -t all -j $J_DEPB,$J_DEPC -o '$FMT_O'"
rec scancel_pending.txt "scancel $J_DEPB"
wait_for 30 "is_state $J_DEPB CANCELLED"

# Cancelled while running.
J_CANCEL=$(sub cancel sleep.sh 300)
wait_for 30 "is_state $J_CANCEL RUNNING"
sleep 1
rec scontrol_show_job_running_cancel_target.txt "scontrol show job -o $J_CANCEL"
rec scancel_running_verbose.txt "scancel -v $J_CANCEL"
wait_for 30 "is_state $J_CANCEL CANCELLED"

# Wait for the --time=1 job to be killed.
rec scontrol_show_job_timeout_running.txt "scontrol show job -o $J_TIMEOUT"
wait_for 240 "is_state $J_TIMEOUT TIMEOUT"
log "timeout job $J_TIMEOUT reached TIMEOUT $(( $(date +%s) - TIMEOUT_SUBMITTED ))s after submission"
sleep 1

rec squeue_json_finished_all.json 'squeue --json -t all'
rec squeue_text_finished_all.txt "squeue -h -t all -r -o '$FMT_O'"
rec squeue_format_finished_all.txt "squeue -h -t all -r -O '$FMT_CAP_O'"
rec squeue_default_finished_all.txt 'squeue -t all'
rec squeue_text_job_completed_without_t.txt "squeue -h -j $J_OK -o '$FMT_O'"
rec scontrol_show_job_completed.txt "scontrol show job -o $J_OK"
rec scontrol_show_job_completed_multiline.txt "scontrol show job $J_OK"
rec scontrol_show_job_failed_exit3.txt "scontrol show job -o $J_EXIT3"
rec scontrol_show_job_killed_sigkill.txt "scontrol show job -o $J_KILL9"
rec scontrol_show_job_cancelled.txt "scontrol show job -o $J_CANCEL"
rec scontrol_show_job_cancelled_pending.txt "scontrol show job -o $J_DEPB"
rec scontrol_show_job_timeout.txt "scontrol show job -o $J_TIMEOUT"
rec scontrol_show_job_array_exits.txt "scontrol show job -o $J_ARRX"
rec scontrol_show_job_unknown.txt 'scontrol show job -o 999999'

# --------------------------------------------------------------------------
# sacct: the job completion file (-c) and the disabled accounting database
# --------------------------------------------------------------------------
rec sacct_c_default.txt 'sacct -c'
rec sacct_c_parsable.txt 'sacct -c -p'
rec sacct_c_format.txt "sacct -c -o jobid,jobidraw,jobname%40,state,exitcode,derivedexitcode,start,end,elapsed,nodelist"
rec sacct_c_parsable2_format.txt "sacct -c --parsable2 -o $SACCT_FIELDS"
rec sacct_c_one_job.txt "sacct -c -P -o $SACCT_FIELDS -j $J_EXIT3"
rec sacct_c_array_job.txt "sacct -c -P -o $SACCT_FIELDS -j $J_ARRX"
rec sacct_c_array_task.txt "sacct -c -P -o $SACCT_FIELDS -j ${J_ARRX}_1"
rec sacct_c_by_name.txt "sacct -c -P -o $SACCT_FIELDS --name=$(name exitthree)"
rec sacct_c_state_filter.txt "sacct -c -P -o $SACCT_FIELDS -s TIMEOUT"
rec sacct_no_accounting.txt 'sacct'
rec sacct_no_accounting_job.txt "sacct -P -j $J_OK"
rec jobcomp_filetxt.txt "cat \"\$(scontrol show config | sed -n 's/^JobCompLoc *= *//p')\""

# --------------------------------------------------------------------------
# scancel edge cases
# --------------------------------------------------------------------------
rec scancel_unknown_job.txt 'scancel 999999'
rec scancel_unknown_job_verbose.txt 'scancel -v 999999'
rec scancel_unknown_array_task.txt 'scancel 999999_3'
rec scancel_invalid_id.txt 'scancel abc'
rec scancel_finished_job.txt "scancel $J_OK"
rec scancel_finished_job_verbose.txt "scancel -v $J_OK"
J_PEND=$(sub pend --hold sleep.sh 300)
rec scancel_mixed_known_unknown.txt "scancel $J_PEND 999998 999999"
J_BYNAME=$(sub byname --hold sleep.sh 300)
rec scancel_by_name.txt "scancel -v --name=$(name byname)"
wait_for 30 "is_state $J_BYNAME CANCELLED"
rec squeue_text_unknown_job.txt "squeue -h -j 999999 -o '$FMT_O'"
rec squeue_json_unknown_job.json 'squeue --json -j 999999'
rec squeue_text_unknown_job_t_all.txt "squeue -h -t all -j 999999 -o '$FMT_O'"

# --------------------------------------------------------------------------
# After MinJobAge (300 s) the first job is purged from slurmctld
# --------------------------------------------------------------------------
log "waiting for job $J_OK to be purged (MinJobAge=300)"
wait_for 600 "! scontrol show job $J_OK >/dev/null 2>&1"
rec scontrol_show_job_purged.txt "scontrol show job -o $J_OK"
rec squeue_text_purged_job.txt "squeue -h -t all -j $J_OK -o '$FMT_O'"
rec sacct_c_purged_job.txt "sacct -c -P -o $SACCT_FIELDS -j $J_OK"

# Leave an empty queue behind.
[ -n "$J_DEPC" ] && scancel "$J_DEPC"
log "done; job outputs in $WORK"
