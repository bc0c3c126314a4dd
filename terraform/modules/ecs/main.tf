# The ECS cluster: Dagster webserver and daemon, run and training task definitions, the
# MLflow server, the policy endpoint behind the internal load balancer, and a GPU Spot
# capacity provider for training.

data "aws_region" "current" {}

locals {
  region = data.aws_region.current.name

  log_components = ["webserver", "daemon", "run", "training", "mlflow", "serving", "tokens-sync", "log-ship", "ecs-exec"]

  mlflow_host = "mlflow.${aws_service_discovery_private_dns_namespace.this.name}"

  # What every platform container (webserver, daemon, runs, training) is told about the
  # deployment, by the names resources/prod.py and deploy/prod/dagster.yaml read
  # (TRADEOPS_ENV=prod); tests/infra/test_contracts.py holds the two sides together.
  platform_environment = [
    { name = "TRADEOPS_ENV", value = "prod" },
    { name = "DAGSTER_HOME", value = "/opt/dagster/dagster_home" },
    { name = "TRADEOPS_S3_RAW", value = "s3://${var.bucket_names["raw"]}" },
    { name = "TRADEOPS_S3_FEATURES", value = "s3://${var.bucket_names["features"]}" },
    { name = "TRADEOPS_S3_ARTIFACTS", value = "s3://${var.bucket_names["artifacts"]}" },
    { name = "TRADEOPS_S3_PREDICTIONS", value = "s3://${var.bucket_names["predictions"]}" },
    { name = "TRADEOPS_S3_AUDIT", value = "s3://${var.bucket_names["audit"]}/tradeops" },
    { name = "TRADEOPS_DATA_KMS_KEY_ID", value = var.data_kms_key_arn },
    { name = "TRADEOPS_AUDIT_KMS_KEY_ID", value = var.audit_kms_key_arn },
    { name = "TRADEOPS_DB_HOST", value = var.db_address },
    { name = "TRADEOPS_DB_PORT", value = tostring(var.db_port) },
    { name = "TRADEOPS_DB_NAME", value = var.db_name },
    { name = "TRADEOPS_MLFLOW_TRACKING_URI", value = "http://${local.mlflow_host}:5000" },
    { name = "TRADEOPS_ECS_CLUSTER", value = aws_ecs_cluster.this.name },
    { name = "TRADEOPS_SERVING_SERVICE", value = local.serving_service_name },
    { name = "TRADEOPS_SERVING_URL", value = "https://${aws_lb.this.dns_name}" },
    { name = "TRADEOPS_SIGNING_PUBLIC_KEY", value = var.signing_public_key },
    { name = "TRADEOPS_RUN_TASK_FAMILY", value = "${var.name}-run" },
    { name = "TRADEOPS_TRAINING_TASK_FAMILY", value = "${var.name}-training" },
    { name = "TRADEOPS_TRAINING_CAPACITY_PROVIDER", value = aws_ecs_capacity_provider.gpu_spot.name },
    { name = "TRADEOPS_RUN_SUBNETS", value = join(",", var.private_subnet_ids) },
    { name = "TRADEOPS_RUN_SECURITY_GROUP", value = var.security_group_ids["platform"] },
    { name = "TRADEOPS_TRAINING_SECURITY_GROUP", value = var.security_group_ids["training"] },
  ]

  # The Dagster instance connects with the RDS-managed credentials (Secrets Manager, rotated
  # by RDS), injected by the ECS agent: no password in Terraform state or task definitions.
  db_secrets = [
    { name = "TRADEOPS_DB_USER", valueFrom = "${var.db_secret_arn}:username::" },
    { name = "TRADEOPS_DB_PASSWORD", valueFrom = "${var.db_secret_arn}:password::" },
  ]

  # Only run tasks package and sign bentos (policy_bento); no other task gets the key.
  run_secrets = concat(local.db_secrets, [
    { name = "TRADEOPS_SIGNING_KEY", valueFrom = var.signing_key_secret_arn },
  ])

  serving_service_name = "${var.name}-serving"

  # core.prediction_log takes a local folder; it lives on the policy's /tmp volume.
  prediction_log_name = "tradeops-predictions"
  prediction_log_dir  = "/tmp/${local.prediction_log_name}"
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = toset(local.log_components)

  name              = "/tradeops/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enhanced"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = var.logs_kms_key_arn
      logging    = "OVERRIDE"

      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.this["ecs-exec"].name
      }
    }
  }

  tags = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT", aws_ecs_capacity_provider.gpu_spot.name]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
    base              = 0
  }
}

resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = "${var.name}.internal"
  description = "Private names of ${var.name} services (mlflow)"
  vpc         = var.vpc_id
  tags        = var.tags
}

resource "aws_service_discovery_service" "mlflow" {
  name = "mlflow"

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.this.id
    routing_policy = "MULTIVALUE"

    dns_records {
      ttl  = 10
      type = "A"
    }
  }

  tags = var.tags
}
