"""s3flow: server-side S3-to-S3 transfers, run as Prefect flows.

The engine (manifest, plan, copy, report, storage) knows nothing of Prefect;
flows/ and blocks/ are the thin Prefect glue around it.
"""

__version__ = "0.1.0"
