# The ceiling of every role the deployer creates (workload, flow-log, monitoring, trail
# roles): this stack's buckets, keys, database users, secrets, topics, log groups, images
# and cluster, and nothing else; no IAM changes at all. A role written with more than
# this still cannot use it.

data "aws_iam_policy_document" "boundary" {
  statement {
    sid = "ThisStacksObjects"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:GetBucketLocation",
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:ListBucket",
      "s3:ListBucketVersions",
      "s3:ListMultipartUploadParts",
      "s3:PutObject",
      "s3:PutObjectRetention",
    ]
    resources = [local.arn.buckets, local.arn.objects]
  }

  statement {
    sid       = "ThisAccountsKeys"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [local.arn.keys]
  }

  statement {
    sid       = "DatabaseUsers"
    actions   = ["rds-db:connect"]
    resources = ["arn:${local.partition}:rds-db:${local.region}:${local.account_id}:dbuser:*/*"]
  }

  statement {
    sid       = "ThisStacksSecretsReadOnly"
    actions   = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
    resources = [local.arn.secrets, local.arn.rds_secrets]
  }

  statement {
    sid       = "ThisStacksTopics"
    actions   = ["sns:Publish"]
    resources = [local.arn.topics]
  }

  statement {
    sid       = "ThisStacksLogGroups"
    actions   = ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    resources = [local.arn.log_groups, "${local.arn.log_groups}:*"]
  }

  statement {
    sid       = "RdsEnhancedMonitoringLogGroup"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:GetLogEvents", "logs:PutLogEvents", "logs:PutRetentionPolicy"]
    resources = ["arn:${local.partition}:logs:*:${local.account_id}:log-group:RDS*", "arn:${local.partition}:logs:*:${local.account_id}:log-group:RDS*:*"]
  }

  statement {
    sid       = "EcrLoginHasNoResourceScope"
    actions   = ["ecr:GetAuthorizationToken", "logs:DescribeLogGroups"]
    resources = ["*"]
  }

  statement {
    sid       = "PullThisStacksImages"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [local.arn.repositories]
  }

  statement {
    sid = "ThisClustersTasksAndInstances"
    actions = [
      "ecs:DeregisterContainerInstance",
      "ecs:DescribeServices",
      "ecs:DescribeTasks",
      "ecs:DiscoverPollEndpoint",
      "ecs:Poll",
      "ecs:RegisterContainerInstance",
      "ecs:RunTask",
      "ecs:StartTelemetrySession",
      "ecs:StopTask",
      "ecs:SubmitAttachmentStateChanges",
      "ecs:SubmitContainerStateChange",
      "ecs:SubmitTaskStateChange",
      "ecs:TagResource",
      "ecs:UpdateContainerInstancesState",
      "ecs:UpdateService",
    ]
    resources = [local.arn.ecs]
  }

  statement {
    sid       = "TaskDefinitionsHaveNoResourceScope"
    actions   = ["ecs:DescribeTaskDefinition", "ecs:DiscoverPollEndpoint", "ecs:RegisterTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "PassThisStacksRolesToEcs"
    actions   = ["iam:PassRole"]
    resources = [local.arn.roles]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "CustomMetricsOfThisStack"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["tradeops/${var.name}"]
    }
  }
}

resource "aws_iam_policy" "boundary" {
  name        = "${var.name}-workload-boundary"
  description = "Permissions boundary of every role the ${var.name} deployer creates"
  policy      = data.aws_iam_policy_document.boundary.json
  tags        = var.tags
}
