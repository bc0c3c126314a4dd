# tradeops in this environment: modules/platform, applied only by the environment's CI
# deployer role (GitHub environment "production" for prod, "dev" for dev) after a plan.

provider "aws" {
  region              = var.region
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = local.tags
  }
}

locals {
  tags = {
    project     = "tradeops"
    environment = var.environment
    managed_by  = "terraform"
  }
}

module "platform" {
  source = "../../modules/platform"

  tags                     = local.tags
  environment              = var.environment
  availability_zones       = var.availability_zones
  vpc_cidr                 = var.vpc_cidr
  client_cidrs             = var.client_cidrs
  operator_cidrs           = var.operator_cidrs
  permissions_boundary_arn = var.permissions_boundary_arn
  certificate_arn          = var.certificate_arn
  image_tags               = var.image_tags
  bento_tag                = var.bento_tag
  signing_public_key       = var.signing_public_key
  alert_emails             = var.alert_emails
  serving_desired_count    = var.serving_desired_count
  serving_max_count        = var.serving_max_count
  db_instance_class        = var.db_instance_class
  audit_retention_days     = var.audit_retention_days
  gpu_max_instances        = var.gpu_max_instances
}
