"""SnsNotification: a Prefect notification block that publishes to an SNS topic.

Register it once per Prefect server (`s3flow setup` does, or `prefect block register -m
s3flow.blocks.sns`), then create a block in the UI or in code. It works from our flows and
from automations' send-notification action; for the latter the server's own
environment must have s3flow installed (the `prefect.collections` entry point in
pyproject.toml makes the server load this module) and AWS credentials.
"""

from __future__ import annotations

import anyio
from prefect.blocks.abstract import NotificationBlock, NotificationError
from prefect_aws import AwsCredentials
from pydantic import Field

SUBJECT_LIMIT = 99  # SNS: ASCII, no line breaks, fewer than 100 characters


class SnsNotification(NotificationBlock):
    """Publishes notifications to an Amazon SNS topic."""

    _block_type_name = "SNS Notification"
    _block_type_slug = "sns-notification"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/d74b16fe84ce626345adf235a47008fea2869a60-225x225.png"
    _description = "Publish notifications (for example s3flow's failure reports) to an SNS topic."

    topic_arn: str = Field(description="The topic, arn:aws:sns:REGION:ACCOUNT:NAME.")
    aws_credentials: AwsCredentials | None = Field(
        default=None, description="Credentials to publish with; empty: the environment's."
    )
    region_name: str | None = Field(default=None, description="Default: the topic ARN's region.")
    endpoint_url: str | None = Field(default=None, description="An SNS-compatible endpoint (tests).")

    def _client(self):
        import boto3

        session = self.aws_credentials.get_boto3_session() if self.aws_credentials else boto3.Session()
        parts = self.topic_arn.split(":")
        region = self.region_name or (parts[3] if len(parts) > 3 and parts[3] else None) or session.region_name
        endpoint = self.endpoint_url or (
            self.aws_credentials.aws_client_parameters.endpoint_url if self.aws_credentials else None
        )
        return session.client("sns", region_name=region, endpoint_url=endpoint)

    def publish(self, body: str, subject: str | None = None) -> str:
        """Publish one message; its SNS MessageId. Raises NotificationError on failure."""
        args = {"TopicArn": self.topic_arn, "Message": body}
        if subject:
            args["Subject"] = sns_subject(subject)
        try:
            return self._client().publish(**args)["MessageId"]
        except Exception as exc:  # botocore's errors, missing credentials, a bad endpoint
            raise NotificationError(f"could not publish to {self.topic_arn}: {exc}") from exc

    async def notify(self, body: str, subject: str | None = None) -> None:
        """The NotificationBlock interface (what automations call)."""
        await anyio.to_thread.run_sync(self.publish, body, subject)


def sns_subject(text: str) -> str:
    """A subject SNS accepts: ASCII, one line, under 100 characters."""
    line = " ".join(text.split())
    ascii_only = line.encode("ascii", "replace").decode("ascii")
    if len(ascii_only) > SUBJECT_LIMIT:
        ascii_only = ascii_only[: SUBJECT_LIMIT - 3] + "..."
    return ascii_only
