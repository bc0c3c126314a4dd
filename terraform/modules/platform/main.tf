# tradeops in one environment: every module, wired. envs/dev and envs/prod call it with
# their own settings; they differ only in backend, tfvars and the account they may touch.

locals {
  name       = "tradeops-${var.environment}"
  trail_name = "tradeops-${var.environment}-audit"
  tags       = var.tags
}

module "kms" {
  source = "../kms"

  name = local.name
  tags = local.tags
}

module "network" {
  source = "../network"

  name                     = local.name
  tags                     = local.tags
  cidr_block               = var.vpc_cidr
  availability_zones       = var.availability_zones
  client_cidrs             = var.client_cidrs
  operator_cidrs           = var.operator_cidrs
  logs_kms_key_arn         = module.kms.key_arns["logs"]
  permissions_boundary_arn = var.permissions_boundary_arn
}

module "storage" {
  source = "../storage"

  name                  = local.name
  tags                  = local.tags
  data_kms_key_arn      = module.kms.key_arns["data"]
  audit_kms_key_arn     = module.kms.key_arns["audit"]
  audit_retention_days  = var.audit_retention_days
  cloudtrail_trail_name = local.trail_name
}

module "ecr" {
  source = "../ecr"

  name        = local.name
  tags        = local.tags
  kms_key_arn = module.kms.key_arns["platform"]
}

module "rds" {
  source = "../rds"

  name                     = local.name
  tags                     = local.tags
  subnet_ids               = module.network.private_subnet_ids
  security_group_id        = module.network.security_group_ids["database"]
  kms_key_arn              = module.kms.key_arns["platform"]
  logs_kms_key_arn         = module.kms.key_arns["logs"]
  instance_class           = var.db_instance_class
  permissions_boundary_arn = var.permissions_boundary_arn
}

module "iam" {
  source = "../iam"

  name                     = local.name
  tags                     = local.tags
  bucket_arns              = module.storage.bucket_arns
  kms_key_arns             = module.kms.key_arns
  ecr_repository_arns      = module.ecr.repository_arns
  db_secret_arn            = module.rds.master_user_secret_arn
  permissions_boundary_arn = var.permissions_boundary_arn
}

module "ecs" {
  source = "../ecs"

  name                          = local.name
  tags                          = local.tags
  vpc_id                        = module.network.vpc_id
  private_subnet_ids            = module.network.private_subnet_ids
  security_group_ids            = module.network.security_group_ids
  logs_kms_key_arn              = module.kms.key_arns["logs"]
  data_kms_key_arn              = module.kms.key_arns["data"]
  audit_kms_key_arn             = module.kms.key_arns["audit"]
  execution_role_arn            = module.iam.execution_role_arn
  platform_execution_role_arn   = module.iam.platform_execution_role_arn
  signing_key_secret_arn        = module.iam.signing_key_secret_arn
  db_secret_arn                 = module.rds.master_user_secret_arn
  db_name                       = module.rds.database_name
  task_role_arns                = module.iam.task_role_arns
  gpu_host_instance_profile_arn = module.iam.gpu_host_instance_profile_arn
  serving_tokens_secret_arn     = module.iam.serving_tokens_secret_arn
  certificate_arn               = var.certificate_arn
  bucket_names                  = module.storage.bucket_names
  db_address                    = module.rds.address
  db_port                       = module.rds.port
  bento_tag                     = var.bento_tag
  signing_public_key            = var.signing_public_key
  serving_desired_count         = var.serving_desired_count
  serving_max_count             = var.serving_max_count
  gpu_max_instances             = var.gpu_max_instances
  deployment_alarm_names        = module.monitoring.deployment_alarm_names
  images = {
    platform       = "${module.ecr.repository_urls["platform"]}:${var.image_tags["platform"]}"
    training       = "${module.ecr.repository_urls["training"]}:${var.image_tags["training"]}"
    mlflow         = "${module.ecr.repository_urls["mlflow"]}:${var.image_tags["mlflow"]}"
    trading_policy = "${module.ecr.repository_urls["trading-policy"]}:${var.image_tags["trading-policy"]}"
    aws_cli        = "${module.ecr.repository_urls["aws-cli"]}:${var.image_tags["aws-cli"]}"
  }
}

module "monitoring" {
  source = "../monitoring"

  name                            = local.name
  tags                            = local.tags
  logs_kms_key_arn                = module.kms.key_arns["logs"]
  audit_kms_key_arn               = module.kms.key_arns["audit"]
  alert_emails                    = var.alert_emails
  alb_arn_suffix                  = module.ecs.alb_arn_suffix
  serving_target_group_arn_suffix = module.ecs.target_group_arn_suffixes["serving"]
  log_group_names                 = module.ecs.log_group_names
  metric_namespace                = module.iam.metric_namespace
  trail_name                      = local.trail_name
  audit_bucket_name               = module.storage.bucket_names["audit"]
  trail_data_event_bucket_arns    = [for purpose in ["raw", "features", "artifacts", "predictions"] : module.storage.bucket_arns[purpose]]
  permissions_boundary_arn        = var.permissions_boundary_arn
}
