"""Prefect flows: thin glue around the s3flow engine."""
