"""Cluster profiles shipped with jobgate (YAML files beside this module)."""
