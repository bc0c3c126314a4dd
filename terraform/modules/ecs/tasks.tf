# Task definitions. Every container: read-only root filesystem (scratch on task volumes),
# not privileged, logs to its own encrypted group, secrets never in plain environment.

locals {
  log_options = {
    for component in local.log_components : component => {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this[component].name
        awslogs-region        = local.region
        awslogs-stream-prefix = component
      }
    }
  }

  tmp_mount = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
}

resource "aws_ecs_task_definition" "webserver" {
  family                   = "${var.name}-webserver"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 1024
  memory                   = 4096
  execution_role_arn       = var.platform_execution_role_arn
  task_role_arn            = var.task_role_arns["webserver"]

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = "webserver"
      image                  = var.images["platform"]
      essential              = true
      command                = ["dagster-webserver", "--host", "0.0.0.0", "--port", "3000", "--workspace", "workspace.yaml"]
      portMappings           = [{ containerPort = 3000, protocol = "tcp" }]
      environment            = local.platform_environment
      secrets                = local.db_secrets
      readonlyRootFilesystem = true
      privileged             = false
      mountPoints            = local.tmp_mount
      logConfiguration       = local.log_options["webserver"]
    },
  ])

  tags = var.tags
}

resource "aws_ecs_task_definition" "daemon" {
  family                   = "${var.name}-daemon"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 1024
  memory                   = 4096
  execution_role_arn       = var.platform_execution_role_arn
  task_role_arn            = var.task_role_arns["daemon"]

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = "daemon"
      image                  = var.images["platform"]
      essential              = true
      command                = ["dagster-daemon", "run", "--workspace", "workspace.yaml"]
      environment            = local.platform_environment
      secrets                = local.db_secrets
      readonlyRootFilesystem = true
      privileged             = false
      mountPoints            = local.tmp_mount
      logConfiguration       = local.log_options["daemon"]
    },
  ])

  tags = var.tags
}

# The EcsRunLauncher starts one of these per Dagster run (per partition in a backfill).
resource "aws_ecs_task_definition" "run" {
  family                   = "${var.name}-run"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.run_cpu
  memory                   = var.run_memory
  execution_role_arn       = var.platform_execution_role_arn
  task_role_arn            = var.task_role_arns["pipeline"]

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  ephemeral_storage {
    size_in_gib = var.run_ephemeral_storage_gib
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = "run"
      image                  = var.images["platform"]
      essential              = true
      environment            = local.platform_environment
      secrets                = local.run_secrets
      readonlyRootFilesystem = true
      privileged             = false
      mountPoints            = local.tmp_mount
      logConfiguration       = local.log_options["run"]
    },
  ])

  tags = var.tags
}

# Training runs on the GPU Spot capacity provider (EC2), one GPU per task.
resource "aws_ecs_task_definition" "training" {
  family                   = "${var.name}-training"
  requires_compatibilities = ["EC2"]
  network_mode             = "awsvpc"
  execution_role_arn       = var.platform_execution_role_arn
  task_role_arn            = var.task_role_arns["training"]

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = "training"
      image                  = var.images["training"]
      essential              = true
      memoryReservation      = var.training_memory
      resourceRequirements   = [{ type = "GPU", value = "1" }]
      environment            = local.platform_environment
      secrets                = local.db_secrets
      readonlyRootFilesystem = true
      privileged             = false
      stopTimeout            = 110
      mountPoints            = local.tmp_mount
      logConfiguration       = local.log_options["training"]
    },
  ])

  tags = var.tags
}

resource "aws_ecs_task_definition" "mlflow" {
  family                   = "${var.name}-mlflow"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 1024
  memory                   = 4096
  execution_role_arn       = var.platform_execution_role_arn
  task_role_arn            = var.task_role_arns["mlflow"]

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name      = "mlflow"
      image     = var.images["mlflow"]
      essential = true
      # The backend store URI is assembled in the container, the credentials URL-quoted, so
      # the RDS-managed password never appears in the task definition.
      entryPoint = ["/bin/sh", "-c"]
      command = [join(" ", [
        "MLFLOW_BACKEND_STORE_URI=\"$(python -c 'import os, urllib.parse as u; e = os.environ; print(\"postgresql://%s:%s@%s:%s/%s?sslmode=require\" % (u.quote(e[\"DB_USER\"], safe=\"\"), u.quote(e[\"DB_PASSWORD\"], safe=\"\"), e[\"DB_HOST\"], e[\"DB_PORT\"], e[\"DB_NAME\"]))')\"",
        "&& export MLFLOW_BACKEND_STORE_URI",
        "&& exec mlflow server --host 0.0.0.0 --port 5000",
        "--serve-artifacts --artifacts-destination \"$ARTIFACTS_DESTINATION\"",
      ])]
      portMappings = [{ containerPort = 5000, protocol = "tcp" }]
      environment = [
        { name = "DB_HOST", value = var.db_address },
        { name = "DB_PORT", value = tostring(var.db_port) },
        { name = "DB_NAME", value = "mlflow" },
        { name = "ARTIFACTS_DESTINATION", value = "s3://${var.bucket_names["artifacts"]}/mlflow" },
      ]
      secrets = [
        { name = "DB_USER", valueFrom = "${var.db_secret_arn}:username::" },
        { name = "DB_PASSWORD", valueFrom = "${var.db_secret_arn}:password::" },
      ]
      readonlyRootFilesystem = true
      privileged             = false
      mountPoints            = local.tmp_mount
      logConfiguration       = local.log_options["mlflow"]
    },
  ])

  tags = var.tags
}

# The policy endpoint. The launcher verifies the whole bento (files, model tag, bundle)
# against the trusted public key and only then execs `bentoml serve`; a bento that does
# not verify exits 3, the task never turns healthy and the circuit breaker rolls back.
# tokens-sync copies the named client tokens from Secrets Manager into a task-local file
# the service re-reads within a second: a token issued or revoked reaches every task
# within tokens_sync_seconds, with no redeploy.
# The policy writes its prediction log (Parquet parts, journals) on its task volume, as
# core.prediction_log does everywhere; log-ship copies each rolled part once to
# s3://<predictions>/predictions/ under SSE-KMS (the layout S3PredictionLogStore reads),
# and once more at its own SIGTERM, which comes after the policy's (dependsOn order).
resource "aws_ecs_task_definition" "serving" {
  family                   = "${var.name}-serving"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.serving_cpu
  memory                   = var.serving_memory
  execution_role_arn       = var.execution_role_arn
  task_role_arn            = var.task_role_arns["serving"]

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }

  volume {
    name = "sync-tmp"
  }

  volume {
    name = "tokens"
  }

  volume {
    name = "ship-tmp"
  }

  container_definitions = jsonencode([
    {
      name       = "tokens-sync"
      image      = var.images["aws_cli"]
      essential  = true
      entryPoint = ["/bin/sh", "-c"]
      command = [join(" ", [
        "while true; do",
        "if aws secretsmanager get-secret-value --secret-id \"$TOKENS_SECRET_ARN\" --query SecretString --output text > /run/tradeops/tokens.json.next;",
        "then mv /run/tradeops/tokens.json.next /run/tradeops/tokens.json;",
        "else echo 'tokens sync failed; serving keeps the last good tokens file' >&2; fi;",
        "sleep \"$SYNC_SECONDS\"; done",
      ])]
      environment = [
        { name = "TOKENS_SECRET_ARN", value = var.serving_tokens_secret_arn },
        { name = "SYNC_SECONDS", value = tostring(var.tokens_sync_seconds) },
        { name = "HOME", value = "/tmp" },
        { name = "AWS_REGION", value = local.region },
      ]
      healthCheck = {
        command     = ["CMD-SHELL", "test -s /run/tradeops/tokens.json"]
        interval    = 5
        timeout     = 2
        retries     = 3
        startPeriod = 10
      }
      readonlyRootFilesystem = true
      privileged             = false
      mountPoints = [
        { sourceVolume = "sync-tmp", containerPath = "/tmp", readOnly = false },
        { sourceVolume = "tokens", containerPath = "/run/tradeops", readOnly = false },
      ]
      logConfiguration = local.log_options["tokens-sync"]
    },
    {
      name       = "log-ship"
      image      = var.images["aws_cli"]
      essential  = false
      entryPoint = ["/bin/sh", "-c"]
      command = [join(" ", [
        "ship() { for part in \"$LOG_DIR\"/date=*/part-*.parquet; do",
        "[ -e \"$part\" ] || continue; rel=\"$${part#\"$LOG_DIR\"/}\";",
        "[ -e \"/tmp/shipped/$rel\" ] && continue;",
        "aws s3 cp \"$part\" \"$DESTINATION/$rel\" --sse aws:kms --sse-kms-key-id \"$KMS_KEY_ID\" --only-show-errors",
        "&& mkdir -p \"/tmp/shipped/$${rel%/*}\" && touch \"/tmp/shipped/$rel\"",
        "|| echo \"shipping $rel failed; retried next round\" >&2; done; };",
        "trap 'ship; exit 0' TERM;",
        "while true; do ship; sleep \"$SHIP_SECONDS\" & wait $!; done",
      ])]
      environment = [
        { name = "LOG_DIR", value = "/mnt/policy-tmp/${local.prediction_log_name}" },
        { name = "DESTINATION", value = "s3://${var.bucket_names["predictions"]}/predictions" },
        { name = "KMS_KEY_ID", value = var.data_kms_key_arn },
        { name = "SHIP_SECONDS", value = tostring(var.prediction_log_ship_seconds) },
        { name = "HOME", value = "/tmp" },
        { name = "AWS_REGION", value = local.region },
      ]
      readonlyRootFilesystem = true
      privileged             = false
      stopTimeout            = 60
      mountPoints = [
        { sourceVolume = "ship-tmp", containerPath = "/tmp", readOnly = false },
        { sourceVolume = "tmp", containerPath = "/mnt/policy-tmp", readOnly = true },
      ]
      logConfiguration = local.log_options["log-ship"]
    },
    {
      name         = "policy"
      image        = var.images["trading_policy"]
      essential    = true
      command      = ["python", "-m", "bentos.trading_policy.launch", var.bento_tag, "--host", "0.0.0.0", "--port", "3000"]
      portMappings = [{ containerPort = 3000, protocol = "tcp" }]
      environment = [
        { name = "TRADEOPS_SIGNING_PUBLIC_KEY", value = var.signing_public_key },
        { name = "TRADEOPS_API_TOKENS_FILE", value = "/run/tradeops/tokens.json" },
        { name = "TRADEOPS_PREDICTION_LOG", value = local.prediction_log_dir },
        { name = "TRADEOPS_SERVE_WORKERS", value = tostring(var.serving_workers) },
      ]
      # log-ship starts first, so ECS stops it last: after the policy's final roll.
      dependsOn = [
        { containerName = "tokens-sync", condition = "HEALTHY" },
        { containerName = "log-ship", condition = "START" },
      ]
      readonlyRootFilesystem = true
      privileged             = false
      stopTimeout            = 30
      mountPoints = [
        { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
        { sourceVolume = "tokens", containerPath = "/run/tradeops", readOnly = true },
      ]
      logConfiguration = local.log_options["serving"]
    },
  ])

  tags = var.tags
}
