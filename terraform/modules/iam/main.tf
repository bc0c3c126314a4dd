# One role per component, each allowed only what that component does. Identity policies
# name buckets (and prefixes), keys, repositories, database users, secrets and task
# families; the few actions AWS cannot scope to a resource are listed alone on "*".
#
#   execution           ECS agent of serving tasks: pull this stack's images, write its log groups
#   platform_execution  ECS agent of the platform tasks: the same, and inject their secrets
#   webserver  Dagster UI: read the instance DB, reports and compute logs
#   daemon     Dagster daemon (schedules, sensors, run queue): launch run/training tasks
#   pipeline   Dagster runs: read raw, write features/artifacts, append audit, read predictions
#   training   GPU training tasks: read features, keep checkpoints under artifacts/training/
#   mlflow     MLflow server: its database, its artifact prefix (the model registry)
#   serving    bento tasks: append to the prediction log, read the client tokens; nothing else
#   gpu_host   EC2 container instances of the GPU Spot capacity provider

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  cluster_arn         = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:cluster/${var.name}"
  task_arns           = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${var.name}/*"
  serving_service     = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/${var.name}/${var.name}-serving"
  serving_family      = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${var.name}-serving:*"
  container_instances = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:container-instance/${var.name}/*"
  run_task_families = [
    "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${var.name}-run:*",
    "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${var.name}-training:*",
  ]
  log_groups       = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/tradeops/${var.name}/*"
  alerts_topic     = "arn:${local.partition}:sns:${local.region}:${local.account_id}:${var.name}-alerts"
  metric_namespace = "tradeops/${var.name}"

  raw         = var.bucket_arns["raw"]
  features    = var.bucket_arns["features"]
  artifacts   = var.bucket_arns["artifacts"]
  predictions = var.bucket_arns["predictions"]
  audit       = var.bucket_arns["audit"]

  object_read  = ["s3:GetObject", "s3:GetObjectVersion"]
  object_write = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
  bucket_list  = ["s3:ListBucket", "s3:GetBucketLocation"]

  ecs_task_components = ["webserver", "daemon", "pipeline", "training", "mlflow", "serving"]
}

# --- trust -----------------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    sid     = "EcsTasksOfThisAccount"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    sid     = "Ec2InstancesOfThisAccount"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "task" {
  for_each = toset(local.ecs_task_components)

  name                 = "${var.name}-${each.key}"
  description          = "tradeops ${each.key} tasks (ECS task role)"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  permissions_boundary = var.permissions_boundary_arn
  max_session_duration = 3600
  tags                 = merge(var.tags, { component = each.key })
}

resource "aws_iam_role" "execution" {
  name                 = "${var.name}-execution"
  description          = "ECS agent for every tradeops task: image pulls and log streams"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = merge(var.tags, { component = "execution" })
}

resource "aws_iam_role" "platform_execution" {
  name                 = "${var.name}-platform-execution"
  description          = "ECS agent for the platform tasks: image pulls, log streams, database and signing secrets"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = merge(var.tags, { component = "platform_execution" })
}

resource "aws_iam_role" "gpu_host" {
  name                 = "${var.name}-gpu-host"
  description          = "EC2 container instances of the GPU Spot capacity provider (ECS agent)"
  assume_role_policy   = data.aws_iam_policy_document.ec2_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = merge(var.tags, { component = "gpu_host" })
}

resource "aws_iam_instance_profile" "gpu_host" {
  name = "${var.name}-gpu-host"
  role = aws_iam_role.gpu_host.name
  tags = var.tags
}

# --- secrets the roles read (values are written outside Terraform, never in state) ------

resource "aws_secretsmanager_secret" "serving_tokens" {
  #checkov:skip=CKV2_AWS_57:Named client tokens are issued and revoked by a person with `tradeops token` (an audited action per client); a scheduled rotation would cut every trading client off at once
  name        = "${var.name}/serving/tokens"
  description = "The policy endpoint's named client tokens file (JSON), synced into each serving task"
  kms_key_id  = var.kms_key_arns["platform"]
  tags        = var.tags
}

resource "aws_secretsmanager_secret" "signing_key" {
  #checkov:skip=CKV2_AWS_57:The Ed25519 bento-signing key is rotated by the release owners with a new public key in the same change (docs/production.md); an automatic rotation would make every running bento unverifiable
  name        = "${var.name}/signing/private-key"
  description = "Ed25519 private key that signs bentos; read by the CI release role and injected into run tasks, never into serving"
  kms_key_id  = var.kms_key_arns["platform"]
  tags        = var.tags
}
