"""Kestra helpers: offline validation of flow YAML against a task catalogue."""
