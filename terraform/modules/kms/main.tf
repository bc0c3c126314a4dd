# One customer-managed key per kind of data, each rotated automatically. Key policies
# enumerate actions (no kms:*): the account administers the key and delegates its use to
# IAM policies, which name the key; AWS services get only what their delivery needs.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  root       = "arn:${local.partition}:iam::${local.account_id}:root"

  purposes = {
    data     = "datasets, features, artifacts (MLflow, DVC, reports, bentos), the prediction log and S3 access logs"
    audit    = "the Object Lock audit bucket and the CloudTrail trail"
    platform = "RDS storage and Performance Insights, Secrets Manager secrets, ECR images"
    logs     = "CloudWatch Logs, SNS alerts and ECS Exec sessions"
  }

  admin_actions = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
  ]

  use_actions = [
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
  ]

  account_statements = [
    {
      Sid       = "AccountAdministersTheKey"
      Effect    = "Allow"
      Principal = { AWS = local.root }
      Action    = local.admin_actions
      Resource  = "*"
    },
    {
      Sid       = "AccountDelegatesUseToIamPolicies"
      Effect    = "Allow"
      Principal = { AWS = local.root }
      Action    = local.use_actions
      Resource  = "*"
    },
    {
      Sid       = "AwsServicesMayHoldGrantsForAccountResources"
      Effect    = "Allow"
      Principal = { AWS = local.root }
      Action    = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]
      Resource  = "*"
      Condition = { Bool = { "kms:GrantIsForAWSResource" = "true" } }
    },
  ]

  service_statements = {
    data = [
      {
        Sid       = "S3ServerAccessLogDelivery"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
    ]
    audit = [
      {
        Sid       = "CloudTrailEncryptsTrailLogs"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = ["kms:GenerateDataKey", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          StringLike   = { "kms:EncryptionContext:aws:cloudtrail:arn" = "arn:${local.partition}:cloudtrail:*:${local.account_id}:trail/*" }
        }
      },
    ]
    platform = []
    logs = [
      {
        Sid       = "CloudWatchLogsEncryptsThisAccountsLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*" }
        }
      },
      {
        Sid       = "CloudWatchAlarmsPublishToEncryptedTopics"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
    ]
  }
}

resource "aws_kms_key" "this" {
  for_each = local.purposes

  description             = "${var.name} ${each.key}: ${each.value}"
  enable_key_rotation     = true
  rotation_period_in_days = var.rotation_period_in_days
  deletion_window_in_days = var.deletion_window_in_days
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat(local.account_statements, local.service_statements[each.key])
  })
  tags = merge(var.tags, { Name = "${var.name}-${each.key}", purpose = each.key })
}

resource "aws_kms_alias" "this" {
  for_each = aws_kms_key.this

  name          = "alias/${var.name}-${each.key}"
  target_key_id = each.value.key_id
}
