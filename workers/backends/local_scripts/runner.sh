#!/bin/sh
# jobgate local runner: runs a job's task(s) inside the job's own process group.
# usage: runner.sh PGID JOB_DIR JOB_ID MAX_PARALLEL [INDEX...]
# Without indices the job is one task; with indices it is an array whose elements
# run at most MAX_PARALLEL at a time. Each task leaves its own exit record.
set -u
pgid=$1 dir=$2 id=$3 parallel=$4
shift 4
printf '{"pgid": %s, "runner_pid": %s}\n' "$pgid" "$$" > "$dir/$id.proc.tmp"
mv "$dir/$id.proc.tmp" "$dir/$id.proc"
if [ "$#" -eq 0 ]; then
    /bin/sh "$dir/task.sh" "$dir" "$id"
else
    printf '%s\n' "$@" | xargs -P "$parallel" -n 1 /bin/sh "$dir/task.sh" "$dir" "$id"
fi
