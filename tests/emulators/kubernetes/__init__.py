"""The Kubernetes API server emulator, ``kubeemu``."""
