"""Kestra: the flows this project emits (flows.py) and their offline validation (validate.py)."""

NAMESPACE = "nyc_taxi"  # the flows' default namespace (`runner kestra emit --namespace`)
