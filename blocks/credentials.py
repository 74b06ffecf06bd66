"""prefect-aws AwsCredentials blocks as the engine's plain Endpoint values."""

from __future__ import annotations

from s3flow.config import Endpoint
from s3flow.errors import InputError


def endpoint_from_block(name: str | None) -> Endpoint:
    """The Endpoint a saved AwsCredentials block describes; no name, boto3's default chain."""
    if not name:
        return Endpoint()
    from prefect_aws import AwsCredentials

    try:
        block = AwsCredentials.load(name)
    except ValueError:
        raise InputError(
            f"no AwsCredentials block named {name!r}: create it in the Prefect UI (Blocks) or "
            "with `prefect block create aws-credentials`"
        ) from None
    secret = block.aws_secret_access_key
    return Endpoint(
        endpoint_url=block.aws_client_parameters.endpoint_url,
        region=block.region_name,
        profile=block.profile_name,
        access_key_id=block.aws_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
        session_token=block.aws_session_token,
    )
