#!/bin/sh
# jobgate local task: runs the job's program once, with output to files named
# after the job id, then writes the exit code and start/end times atomically.
# usage: task.sh JOB_DIR JOB_ID [ARRAY_INDEX]
set -u
dir=$1 id=$2 index=${3:-}
if [ -n "$index" ]; then
    base="$dir/$id.$index"
    JOBGATE_ARRAY_INDEX=$index
    export JOBGATE_ARRAY_INDEX
else
    base="$dir/$id"
fi
start=$(date +%s.%N)
printf '%s\n' "$start" > "$base.started.tmp"
mv "$base.started.tmp" "$base.started"
"$dir/$id.program" > "$base.out" 2> "$base.err" < /dev/null
code=$?
end=$(date +%s.%N)
printf '{"exit_code": %d, "started": %s, "finished": %s}\n' "$code" "$start" "$end" > "$base.exit.tmp"
mv "$base.exit.tmp" "$base.exit"
exit 0
