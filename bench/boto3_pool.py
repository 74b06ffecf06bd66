"""The baseline: list the source prefix, copy_object every key on a boto3 thread pool.

    boto3_pool.py s3://bucket/prefix/ s3://bucket/prefix/ WORKERS
"""
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def main(source: str, destination: str, workers: int) -> None:
    src_bucket, _, src_prefix = source.removeprefix("s3://").partition("/")
    dst_bucket, _, dst_prefix = destination.removeprefix("s3://").partition("/")
    client = boto3.client("s3", config=Config(max_pool_connections=workers))
    keys = [obj["Key"] for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=src_bucket, Prefix=src_prefix) for obj in page.get("Contents", [])]

    def copy(key: str) -> None:
        client.copy_object(Bucket=dst_bucket, Key=dst_prefix + key[len(src_prefix):],
                           CopySource={"Bucket": src_bucket, "Key": key})

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(copy, keys))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
