# --- execution: the ECS agent ------------------------------------------------------------

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrLoginHasNoResourceScope"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullThisStacksImages"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = values(var.ecr_repository_arns)
  }

  statement {
    sid       = "WriteThisStacksLogGroups"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [local.log_groups, "${local.log_groups}:*"]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-images-write-logs"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

data "aws_iam_policy_document" "platform_execution" {
  statement {
    sid       = "EcrLoginHasNoResourceScope"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullThisStacksImages"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = values(var.ecr_repository_arns)
  }

  statement {
    sid       = "WriteThisStacksLogGroups"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [local.log_groups, "${local.log_groups}:*"]
  }

  statement {
    sid       = "InjectTheDatabaseAndSigningSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.db_secret_arn, aws_secretsmanager_secret.signing_key.arn]
  }

  statement {
    sid       = "DecryptThoseSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arns["platform"]]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "platform_execution" {
  name   = "pull-images-write-logs-inject-secrets"
  role   = aws_iam_role.platform_execution.id
  policy = data.aws_iam_policy_document.platform_execution.json
}

# --- webserver: the Dagster UI ---------------------------------------------------------

data "aws_iam_policy_document" "webserver" {
  statement {
    sid       = "TerminateRunsFromTheUi"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = [local.task_arns]
  }

  statement {
    sid       = "ListArtifacts"
    actions   = local.bucket_list
    resources = [local.artifacts]
  }

  statement {
    sid       = "ReadReportsAndComputeLogs"
    actions   = local.object_read
    resources = ["${local.artifacts}/reports/*", "${local.artifacts}/dagster/*"]
  }

  statement {
    sid       = "DecryptData"
    actions   = ["kms:Decrypt", "kms:DescribeKey"]
    resources = [var.kms_key_arns["data"]]
  }
}

# --- daemon: schedules, sensors, the run queue ------------------------------------------

data "aws_iam_policy_document" "daemon" {
  statement {
    sid       = "LaunchRunAndTrainingTasksInThisCluster"
    actions   = ["ecs:RunTask"]
    resources = local.run_task_families

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [local.cluster_arn]
    }
  }

  statement {
    sid       = "WatchAndStopThisClustersTasks"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = [local.task_arns]
  }

  statement {
    sid       = "TagTasksItLaunches"
    actions   = ["ecs:TagResource"]
    resources = [local.task_arns]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }

  statement {
    sid       = "DescribeTaskDefinitionHasNoResourceScope"
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "PassOnlyTheRunAndTrainingRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.task["pipeline"].arn, aws_iam_role.task["training"].arn, aws_iam_role.platform_execution.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "MarketDataSensorListsRaw"
    actions   = local.bucket_list
    resources = [local.raw]
  }

  statement {
    sid       = "RunFailureAndDriftAlerts"
    actions   = ["sns:Publish"]
    resources = [local.alerts_topic]
  }

  statement {
    sid       = "PublishAlertsToTheEncryptedTopic"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arns["logs"]]
  }
}

# --- pipeline: Dagster run tasks ----------------------------------------------------------

data "aws_iam_policy_document" "pipeline" {
  statement {
    sid       = "ListDataBuckets"
    actions   = local.bucket_list
    resources = [local.raw, local.features, local.artifacts, local.predictions, local.audit]
  }

  statement {
    sid       = "ReadRawPredictionsFeaturesArtifacts"
    actions   = local.object_read
    resources = ["${local.raw}/*", "${local.features}/*", "${local.artifacts}/*", "${local.predictions}/*", "${local.audit}/*"]
  }

  statement {
    sid       = "WriteDatasets"
    actions   = local.object_write
    resources = ["${local.raw}/datasets/*", "${local.features}/*"]
  }

  statement {
    sid     = "WriteReportsRunStateBentosAndDvcRemote"
    actions = local.object_write
    resources = [
      "${local.artifacts}/reports/*",
      "${local.artifacts}/dagster/*",
      "${local.artifacts}/releases/*",
      "${local.artifacts}/bentos/*",
      "${local.artifacts}/dvc/*",
    ]
  }

  statement {
    sid       = "VerifyTheAuditLogWasNeverRewritten"
    actions   = ["s3:ListBucketVersions"]
    resources = [local.audit]
  }

  statement {
    sid       = "AppendToTheAuditLog"
    actions   = ["s3:PutObject", "s3:PutObjectRetention"]
    resources = ["${local.audit}/tradeops/*"]
  }

  statement {
    sid       = "UseDataAndAuditKeys"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arns["data"], var.kms_key_arns["audit"]]
  }

  statement {
    sid       = "Alerts"
    actions   = ["sns:Publish"]
    resources = [local.alerts_topic]
  }

  statement {
    sid       = "PublishAlertsToTheEncryptedTopic"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arns["logs"]]
  }

  statement {
    sid       = "DeployTheEndpoint"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = [local.serving_service]
  }

  statement {
    sid       = "RegisterTaskDefinitionHasNoResourceScope"
    actions   = ["ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "TagServingRevisionsItRegisters"
    actions   = ["ecs:TagResource"]
    resources = [local.serving_family]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition"]
    }
  }

  statement {
    sid       = "PassOnlyTheServingRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.task["serving"].arn, aws_iam_role.execution.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "DriftAndHealthMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [local.metric_namespace]
    }
  }
}

# --- training: GPU Spot tasks ---------------------------------------------------------------

data "aws_iam_policy_document" "training" {
  statement {
    sid       = "ListFeaturesAndArtifacts"
    actions   = local.bucket_list
    resources = [local.features, local.artifacts]
  }

  statement {
    sid       = "ReadFeatures"
    actions   = local.object_read
    resources = ["${local.features}/*"]
  }

  statement {
    sid       = "WriteBacktestReportsAndRunState"
    actions   = local.object_write
    resources = ["${local.artifacts}/reports/*", "${local.artifacts}/dagster/*"]
  }

  # resources.s3_stores.S3TrainingWorkspace: training/<root run>/... survives a Spot reclaim.
  statement {
    sid       = "ReadAndWriteCheckpoints"
    actions   = concat(local.object_read, local.object_write)
    resources = ["${local.artifacts}/training/*"]
  }

  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arns["data"]]
  }
}

# --- mlflow: the tracking server and model registry ---------------------------------------

data "aws_iam_policy_document" "mlflow" {
  statement {
    sid       = "ListArtifacts"
    actions   = local.bucket_list
    resources = [local.artifacts]
  }

  statement {
    sid       = "ServeAndStoreRunArtifactsAndRegisteredModels"
    actions   = concat(local.object_read, local.object_write)
    resources = ["${local.artifacts}/mlflow/*"]
  }

  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arns["data"]]
  }
}

# --- serving: the bento tasks -----------------------------------------------------------------

data "aws_iam_policy_document" "serving" {
  statement {
    sid       = "AppendToThePredictionLog"
    actions   = local.object_write
    resources = ["${local.predictions}/predictions/*"]
  }

  statement {
    sid       = "EncryptPredictionLogParts"
    actions   = ["kms:GenerateDataKey", "kms:Encrypt", "kms:DescribeKey"]
    resources = [var.kms_key_arns["data"]]
  }

  statement {
    sid       = "ReadTheClientTokensFile"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [aws_secretsmanager_secret.serving_tokens.arn]
  }

  statement {
    sid       = "DecryptTheTokensSecret"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arns["platform"]]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }

  # Belt and braces: even a policy added later by mistake cannot let serving touch the
  # model registry, the audit log or the signing key.
  statement {
    sid    = "NeverWriteTheRegistryOrAudit"
    effect = "Deny"
    actions = [
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
      "s3:PutObjectAcl",
      "s3:PutObjectRetention",
      "s3:PutObjectLegalHold",
      "s3:RestoreObject",
    ]
    resources = ["${local.artifacts}/*", "${local.audit}/*"]
  }

  statement {
    sid       = "NeverReadTheSigningKey"
    effect    = "Deny"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.signing_key.arn]
  }
}

# --- gpu_host: ECS agent on the GPU Spot instances --------------------------------------------

data "aws_iam_policy_document" "gpu_host" {
  statement {
    sid       = "JoinThisCluster"
    actions   = ["ecs:RegisterContainerInstance", "ecs:DeregisterContainerInstance", "ecs:SubmitContainerStateChange", "ecs:SubmitTaskStateChange"]
    resources = [local.cluster_arn]
  }

  statement {
    sid       = "ActAsItsContainerInstance"
    actions   = ["ecs:Poll", "ecs:StartTelemetrySession", "ecs:UpdateContainerInstancesState", "ecs:SubmitAttachmentStateChanges"]
    resources = [local.container_instances]
  }

  statement {
    sid       = "EndpointDiscoveryHasNoResourceScope"
    actions   = ["ecs:DiscoverPollEndpoint"]
    resources = ["*"]
  }

  statement {
    sid       = "TagItsContainerInstance"
    actions   = ["ecs:TagResource"]
    resources = [local.container_instances]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterContainerInstance"]
    }
  }
}

locals {
  task_policies = {
    webserver = data.aws_iam_policy_document.webserver.json
    daemon    = data.aws_iam_policy_document.daemon.json
    pipeline  = data.aws_iam_policy_document.pipeline.json
    training  = data.aws_iam_policy_document.training.json
    mlflow    = data.aws_iam_policy_document.mlflow.json
    serving   = data.aws_iam_policy_document.serving.json
  }
}

resource "aws_iam_role_policy" "task" {
  for_each = local.task_policies

  name   = "${each.key}-least-privilege"
  role   = aws_iam_role.task[each.key].id
  policy = each.value
}

resource "aws_iam_role_policy" "gpu_host" {
  name   = "ecs-agent"
  role   = aws_iam_role.gpu_host.id
  policy = data.aws_iam_policy_document.gpu_host.json
}
