"""Dagster assets, built by factories over the catalog."""
