# CloudTrail: every management call in every region, and object-level calls on the data
# buckets, into the Object Lock audit bucket (log file validation on) and CloudWatch Logs.

resource "aws_cloudwatch_log_group" "trail" {
  name              = "/tradeops/${var.name}/cloudtrail"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "trail_assume" {
  statement {
    sid     = "CloudTrailOfThisAccount"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "trail" {
  name                 = "${var.name}-cloudtrail-logs"
  description          = "CloudTrail delivers events into its log group."
  assume_role_policy   = data.aws_iam_policy_document.trail_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "trail" {
  statement {
    sid       = "WriteTheTrailLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.trail.arn}:*"]
  }
}

resource "aws_iam_role_policy" "trail" {
  name   = "write-trail-logs"
  role   = aws_iam_role.trail.id
  policy = data.aws_iam_policy_document.trail.json
}

resource "aws_sns_topic" "trail_deliveries" {
  name              = "${var.name}-trail-deliveries"
  display_name      = "CloudTrail log file deliveries of ${var.name}"
  kms_master_key_id = var.logs_kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "trail_deliveries" {
  statement {
    sid       = "CloudTrailAnnouncesDeliveries"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.trail_deliveries.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:cloudtrail:${data.aws_region.current.name}:${local.account_id}:trail/${local.trail_name}"]
    }
  }
}

resource "aws_sns_topic_policy" "trail_deliveries" {
  arn    = aws_sns_topic.trail_deliveries.arn
  policy = data.aws_iam_policy_document.trail_deliveries.json
}

resource "aws_cloudtrail" "this" {
  name                          = local.trail_name
  s3_bucket_name                = var.audit_bucket_name
  s3_key_prefix                 = "cloudtrail"
  kms_key_id                    = var.audit_kms_key_arn
  is_multi_region_trail         = true
  include_global_service_events = true
  enable_log_file_validation    = true
  enable_logging                = true
  cloud_watch_logs_group_arn    = "${aws_cloudwatch_log_group.trail.arn}:*"
  cloud_watch_logs_role_arn     = aws_iam_role.trail.arn
  sns_topic_name                = aws_sns_topic.trail_deliveries.name

  event_selector {
    read_write_type           = "All"
    include_management_events = true

    data_resource {
      type   = "AWS::S3::Object"
      values = [for arn in var.trail_data_event_bucket_arns : "${arn}/"]
    }
  }

  tags = var.tags

  depends_on = [aws_sns_topic_policy.trail_deliveries, aws_iam_role_policy.trail]
}
