#!/bin/sh
echo "ok from job $SLURM_JOB_ID"
