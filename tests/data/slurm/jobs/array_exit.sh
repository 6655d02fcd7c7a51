#!/bin/sh
# Each array element exits with its own index.
exit "$SLURM_ARRAY_TASK_ID"
