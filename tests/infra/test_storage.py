"""Every bucket: versioning, SSE-KMS with a customer-managed key, public access blocked,
ACLs off, TLS-only policy, lifecycle; access logging; Object Lock COMPLIANCE on audit."""

import re

import pytest

from tests.infra.terraform import (
    TERRAFORM,
    Config,
    configs,
    module_config,
    policy_statements,
    tfvars,
)

COMPANIONS = [
    "aws_s3_bucket_versioning",
    "aws_s3_bucket_server_side_encryption_configuration",
    "aws_s3_bucket_public_access_block",
    "aws_s3_bucket_ownership_controls",
    "aws_s3_bucket_policy",
    "aws_s3_bucket_lifecycle_configuration",
    "aws_s3_bucket_notification",
]


def buckets() -> list[tuple[Config, str]]:
    return [(cfg, name) for cfg in configs() for name in cfg.of_type("aws_s3_bucket")]


def companion(cfg: Config, kind: str, bucket: str) -> dict:
    """The ``kind`` resource configuring ``aws_s3_bucket.<bucket>``, directly or for_each."""
    found = []
    for _name, body in cfg.of_type(kind).items():
        target = body.get("bucket", "")
        if re.fullmatch(rf"\$\{{aws_s3_bucket\.{bucket}(\[[^\]]+\])?\.(id|bucket)\}}", target) or (
            body.get("for_each") == f"${{aws_s3_bucket.{bucket}}}" and target == "${each.value.id}"
        ):
            found.append(body)
    assert len(found) == 1, f"{cfg.name}: aws_s3_bucket.{bucket} has {len(found)} {kind}"
    return found[0]


def test_every_bucket_is_found():
    names = {(cfg.name, name) for cfg, name in buckets()}
    assert names == {
        ("modules/storage/bucket", "this"),
        ("modules/storage", "audit"),
        ("modules/storage", "access_logs"),
        ("bootstrap", "this"),
    }
    storage = module_config("storage")
    assert {call for call, body in storage.modules.items() if body["source"] == "./bucket"} == {
        "raw",
        "features",
        "artifacts",
        "predictions",
    }


@pytest.mark.parametrize(("cfg", "bucket"), buckets(), ids=lambda x: getattr(x, "name", x))
def test_bucket_hygiene(cfg: Config, bucket: str):
    body = cfg.of_type("aws_s3_bucket")[bucket]
    assert body.get("force_destroy") in (None, False)
    for kind in COMPANIONS:
        companion(cfg, kind, bucket)

    versioning = companion(cfg, "aws_s3_bucket_versioning", bucket)
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"

    (rule,) = companion(cfg, "aws_s3_bucket_server_side_encryption_configuration", bucket)["rule"]
    default = rule["apply_server_side_encryption_by_default"][0]
    assert default["sse_algorithm"] == "aws:kms"
    key = default["kms_master_key_id"]
    assert key.startswith("${"), "a key this stack manages"
    assert "aws/s3" not in key, "a customer-managed key, not the AWS-managed one"
    assert rule["bucket_key_enabled"] is True

    block = companion(cfg, "aws_s3_bucket_public_access_block", bucket)
    for setting in [
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ]:
        assert block[setting] is True, setting

    ownership = companion(cfg, "aws_s3_bucket_ownership_controls", bucket)
    assert ownership["rule"][0]["object_ownership"] == "BucketOwnerEnforced"

    (rule,) = companion(cfg, "aws_s3_bucket_lifecycle_configuration", bucket)["rule"]
    assert rule["status"] == "Enabled"
    assert rule["abort_incomplete_multipart_upload"][0]["days_after_initiation"] <= 7

    policy = companion(cfg, "aws_s3_bucket_policy", bucket)["policy"]
    (doc,) = re.findall(r"data\.aws_iam_policy_document\.([\w-]+)", policy)
    tls = [st for st in policy_statements(cfg, doc) if st.sid == "DenyAnythingButTls"]
    assert len(tls) == 1, "a TLS-only statement"
    (st,) = tls
    assert st.effect == "Deny"
    assert st.actions == {"s3:*"}
    assert len(st.resources) == 2
    assert st.resources[1] == st.resources[0][:-1] + "}/*"
    assert st.principals == ({"type": "*", "identifiers": ["*"]},)
    assert [(c["test"], c["variable"], c["values"]) for c in st.conditions] == [
        ("Bool", "aws:SecureTransport", ["false"])
    ]

    assert companion(cfg, "aws_s3_bucket_notification", bucket)["eventbridge"] is True


def test_every_bucket_but_the_log_destinations_logs_access():
    storage = module_config("storage")
    data_bucket = module_config("storage/bucket")
    assert (
        companion(data_bucket, "aws_s3_bucket_logging", "this")["target_bucket"]
        == "${var.access_log_bucket}"
    )
    for call in ["raw", "features", "artifacts", "predictions"]:
        assert storage.modules[call]["access_log_bucket"] == "${aws_s3_bucket.access_logs.id}"
        assert storage.modules[call]["kms_key_arn"] == "${var.data_kms_key_arn}"
    assert (
        companion(storage, "aws_s3_bucket_logging", "audit")["target_bucket"]
        == "${aws_s3_bucket.access_logs.id}"
    )
    bootstrap = next(cfg for cfg in configs() if cfg.name == "bootstrap")
    logging = bootstrap.of_type("aws_s3_bucket_logging")["state"]
    assert logging["bucket"] == '${aws_s3_bucket.this["state"].id}'
    assert logging["target_bucket"] == '${aws_s3_bucket.this["access_logs"].id}'


def test_audit_bucket_has_object_lock_in_compliance_mode():
    storage = module_config("storage")
    assert storage.of_type("aws_s3_bucket")["audit"]["object_lock_enabled"] is True
    lock = companion(storage, "aws_s3_bucket_object_lock_configuration", "audit")
    retention = lock["rule"][0]["default_retention"][0]
    assert retention["mode"] == "COMPLIANCE"
    assert retention["days"] == "${var.audit_retention_days}"
    assert tfvars("prod")["audit_retention_days"] >= 7 * 365
    deny = [
        st
        for st in policy_statements(storage, "audit_bucket")
        if st.sid == "DenyDeletingAuditRecords"
    ]
    assert deny
    assert deny[0].effect == "Deny"
    assert "s3:DeleteObjectVersion" in deny[0].actions


def test_cold_logs_move_to_archive_tiers():
    storage = module_config("storage")
    tiers = {
        t["storage_class"] for t in storage.locals["data_buckets"]["predictions"]["transitions"]
    }
    assert {"GLACIER_IR", "DEEP_ARCHIVE"} <= tiers
    rule = companion(storage, "aws_s3_bucket_lifecycle_configuration", "audit")["rule"][0]
    assert {t["storage_class"] for t in rule["transition"]} >= {"DEEP_ARCHIVE"}
    assert "expiration" not in rule, "audit records never expire by lifecycle"
    rule = companion(storage, "aws_s3_bucket_lifecycle_configuration", "access_logs")["rule"][0]
    assert {t["storage_class"] for t in rule["transition"]} >= {"GLACIER", "DEEP_ARCHIVE"}


def test_state_bucket_is_encrypted_with_its_own_key():
    bootstrap = next(cfg for cfg in configs() if cfg.name == "bootstrap")
    (rule,) = companion(bootstrap, "aws_s3_bucket_server_side_encryption_configuration", "this")[
        "rule"
    ]
    assert (
        rule["apply_server_side_encryption_by_default"][0]["kms_master_key_id"]
        == "${aws_kms_key.state.arn}"
    )
    assert (TERRAFORM / "bootstrap" / "backend.tf").exists()
