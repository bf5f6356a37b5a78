"""ARNs of the resources AWS IoT policies name.

``arn:aws:iot:<region>:<account>:<type>/<name>``; the region and account of a local
install are settings, passed in by the caller. Names are used as they are (a topic is
not escaped: the ARN is the request side, matched against policy patterns).
"""

from __future__ import annotations

__all__ = [
    "PARTITIONS",
    "RESOURCE_TYPES",
    "arn",
    "client_arn",
    "thing_arn",
    "topic_arn",
    "topicfilter_arn",
]

PARTITIONS: tuple[str, ...] = ("aws", "aws-cn", "aws-us-gov")
RESOURCE_TYPES: tuple[str, ...] = ("client", "topic", "topicfilter", "thing", "cert")


def arn(region: str, account: str, resource_type: str, name: str) -> str:
    if resource_type not in RESOURCE_TYPES:
        raise ValueError(f"unknown AWS IoT resource type {resource_type!r}")
    return f"arn:aws:iot:{region}:{account}:{resource_type}/{name}"


def client_arn(region: str, account: str, client_id: str) -> str:
    """What iot:Connect is checked against."""
    return arn(region, account, "client", client_id)


def topic_arn(region: str, account: str, topic: str) -> str:
    """What iot:Publish, iot:RetainPublish, iot:Receive, iot:GetRetainedMessage check."""
    return arn(region, account, "topic", topic)


def topicfilter_arn(region: str, account: str, topic_filter: str) -> str:
    """What iot:Subscribe is checked against (the filter as written, wildcards included)."""
    return arn(region, account, "topicfilter", topic_filter)


def thing_arn(region: str, account: str, thing_name: str) -> str:
    """What the thing-shadow actions are checked against."""
    return arn(region, account, "thing", thing_name)
