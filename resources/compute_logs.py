"""prod: runs' stdout and stderr on S3, under SSE-KMS like every other object.

dagster-aws's ``S3ComputeLogManager`` takes the bucket and any extra upload arguments
as literals; in prod both come from the task's environment (``TRADEOPS_S3_ARTIFACTS``,
``TRADEOPS_DATA_KMS_KEY_ID``), so this subclass reads ``location`` (``s3://bucket/prefix``)
and ``kms_key_id`` as ``{env: ...}`` and requests SSE-KMS with that key on every upload.
"""

from collections.abc import Mapping
from typing import Any

from dagster import Field, StringSource
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

from resources.s3 import KMS, S3Url

SUFFIX = "dagster/compute-logs"


class KmsS3ComputeLogManager(S3ComputeLogManager):
    def __init__(self, location: str, kms_key_id: str, inst_data=None, **kwargs: Any) -> None:
        where = S3Url.parse(location, "compute_logs.location").child(SUFFIX)
        extra = {**(kwargs.pop("upload_extra_args", None) or {})}
        extra.update(ServerSideEncryption=KMS, SSEKMSKeyId=kms_key_id)
        super().__init__(
            bucket=where.bucket,
            prefix=where.prefix,
            inst_data=inst_data,
            upload_extra_args=extra,
            **kwargs,
        )

    @classmethod
    def config_type(cls):
        base = {k: v for k, v in super().config_type().items() if k not in ("bucket", "prefix")}
        return {
            **base,
            "location": Field(StringSource, description="s3://bucket[/prefix]"),
            "kms_key_id": Field(StringSource, description="SSE-KMS key of every upload"),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value: Mapping[str, Any]):
        return cls(inst_data=inst_data, **config_value)
