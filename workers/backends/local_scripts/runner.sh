#!/bin/sh
# jobgate local runner: runs a job's task(s) inside the job's own process group.
# usage: runner.sh PGID JOB_DIR JOB_ID MAX_PARALLEL CGROUP [INDEX...]
# Without indices the job is one task; with indices it is an array whose elements
# run at most MAX_PARALLEL at a time. Each task leaves its own exit record. With a
# CGROUP (a cgroup v2 directory, or empty), the runner moves itself there first, so
# everything the job starts stays in it.
# The environment is the job's (its PATH may be anything): every command here is a
# builtin or named by its absolute path, and any error of the runner's own stops it
# before it starts the next step. The runner's record comes before any task.
set -eu
pgid=$1 dir=$2 id=$3 parallel=$4 cgroup=$5
shift 5
if [ -n "$cgroup" ]; then
    printf '%s\n' "$$" > "$cgroup/cgroup.procs"
fi
printf '{"pgid": %s, "runner_pid": %s}\n' "$pgid" "$$" > "$dir/$id.proc.tmp"
/bin/mv "$dir/$id.proc.tmp" "$dir/$id.proc"
if [ "$#" -eq 0 ]; then
    /bin/sh "$dir/task.sh" "$dir" "$id"
else
    printf '%s\n' "$@" | /usr/bin/xargs -P "$parallel" -n 1 /bin/sh "$dir/task.sh" "$dir" "$id"
fi
