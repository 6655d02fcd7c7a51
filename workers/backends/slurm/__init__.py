"""The Slurm backend: `backend` runs sbatch/squeue/sacct/scancel; `script` and `status`
are the pure functions that write batch scripts and read Slurm's answers."""

from jobgate.workers.backends.slurm.backend import SlurmBackend

__all__ = ["SlurmBackend"]
