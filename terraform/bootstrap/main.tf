# Applied once per account by an administrator (MFA, break-glass role): the encrypted,
# versioned, lockable Terraform state bucket and the CI identities. Everything else is
# applied by the CI deployer from envs/<environment>.

provider "aws" {
  region              = var.region
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = local.tags
  }
}

data "aws_partition" "current" {}

locals {
  name = "tradeops-${var.environment}"
  tags = {
    project     = "tradeops"
    environment = var.environment
    managed_by  = "terraform/bootstrap"
  }
  root = "arn:${data.aws_partition.current.partition}:iam::${var.account_id}:root"
  buckets = {
    state       = "tradeops-tfstate-${var.environment}-${var.account_id}"
    access_logs = "tradeops-tfstate-${var.environment}-logs-${var.account_id}"
  }
}

resource "aws_kms_key" "state" {
  description             = "Terraform state of tradeops ${var.environment}"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersTheKey"
        Effect    = "Allow"
        Principal = { AWS = local.root }
        Action = [
          "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey", "kms:DisableKey",
          "kms:EnableKey", "kms:EnableKeyRotation", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus",
          "kms:ListAliases", "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion",
          "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
        ]
        Resource = "*"
      },
      {
        Sid       = "AccountDelegatesUseToIamPolicies"
        Effect    = "Allow"
        Principal = { AWS = local.root }
        Action    = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
        Resource  = "*"
      },
      {
        Sid       = "S3ServerAccessLogDelivery"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = var.account_id } }
      },
    ]
  })
}

resource "aws_kms_alias" "state" {
  name          = "alias/tradeops-tfstate-${var.environment}"
  target_key_id = aws_kms_key.state.key_id
}

resource "aws_s3_bucket" "this" {
  for_each = local.buckets
  #checkov:skip=CKV_AWS_144:Versioning keeps every state version in this region; losing the region stops deploys, not the running services, and resources can be re-imported from code; replication is a documented DR lever (docs/production.md)
  #checkov:skip=CKV_AWS_18:The state bucket logs into the access-log bucket; the access-log bucket itself is the destination (logging it into itself would log every delivery again)

  bucket        = each.value
  force_destroy = false
  tags          = { Name = each.value, purpose = each.key }
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = aws_s3_bucket.this

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.state.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "state" {
  bucket        = aws_s3_bucket.this["state"].id
  target_bucket = aws_s3_bucket.this["access_logs"].id
  target_prefix = "state/"
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  rule {
    id     = "keep-old-state-versions-a-year"
    status = "Enabled"

    filter {}

    noncurrent_version_transition {
      noncurrent_days = 30
      storage_class   = "STANDARD_IA"
    }

    noncurrent_version_expiration {
      noncurrent_days = 365
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_notification" "this" {
  for_each = aws_s3_bucket.this

  bucket      = each.value.id
  eventbridge = true
}

data "aws_iam_policy_document" "bucket" {
  for_each = aws_s3_bucket.this

  statement {
    sid       = "DenyAnythingButTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  dynamic "statement" {
    for_each = each.key == "access_logs" ? [aws_s3_bucket.this["state"].arn] : []
    content {
      sid       = "S3LogDeliveryFromTheStateBucket"
      actions   = ["s3:PutObject"]
      resources = ["${each.value.arn}/*"]

      principals {
        type        = "Service"
        identifiers = ["logging.s3.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [var.account_id]
      }

      condition {
        test     = "ArnLike"
        variable = "aws:SourceArn"
        values   = [statement.value]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  policy = data.aws_iam_policy_document.bucket[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

module "ci" {
  source = "../modules/ci_iam"

  name                 = local.name
  tags                 = local.tags
  github_repository    = var.github_repository
  create_oidc_provider = var.create_oidc_provider
  state_bucket_arn     = aws_s3_bucket.this["state"].arn
  state_kms_key_arn    = aws_kms_key.state.arn
  state_key_prefix     = "${var.environment}/"
  release_environment  = var.environment == "prod" ? "release" : "dev-release"
  deploy_environment   = var.environment == "prod" ? "production" : "dev"
}
