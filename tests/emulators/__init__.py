"""Stand-ins for what cannot run here: LSF's commands and the Kubernetes API server."""
