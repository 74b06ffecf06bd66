"""Prefect blocks s3flow uses: prefect-aws credentials (and, later, notifications)."""
