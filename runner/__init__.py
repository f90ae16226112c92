"""The thin runner around the nyc_taxi dbt project: download, land, merge, record."""

__version__ = "0.1.0"
