#!/bin/sh
# jobgate local task: runs the job's program once, with output to files named
# after the job id, then writes the exit code and start/end times atomically.
# usage: task.sh JOB_DIR JOB_ID [ARRAY_INDEX]
# As in runner.sh: builtins and absolute paths only, and an error of the task
# script's own stops it (the program's exit code is recorded, never acted on).
# One exception: a record that cannot be written (a full file system) is still
# renamed into place, empty, so that the worker reads why the job failed.
set -eu
dir=$1 id=$2 index=${3:-}
if [ -n "$index" ]; then
    base="$dir/$id.$index"
    JOBGATE_ARRAY_INDEX=$index
    export JOBGATE_ARRAY_INDEX
else
    base="$dir/$id"
fi
exec 3> "$base.out" 4> "$base.err"
start=$(/bin/date +%s.%N)
printf '%s\n' "$start" > "$base.started.tmp" || :
/bin/mv "$base.started.tmp" "$base.started"
code=0
"$dir/$id.program" >&3 2>&4 3>&- 4>&- < /dev/null || code=$?
exec 3>&- 4>&-
end=$(/bin/date +%s.%N)
printf '{"exit_code": %d, "started": %s, "finished": %s}\n' "$code" "$start" "$end" > "$base.exit.tmp" || :
/bin/mv "$base.exit.tmp" "$base.exit"
