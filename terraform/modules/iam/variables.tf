variable "name" {
  description = "Name prefix of every role, e.g. tradeops-prod (roles are <name>-<component>)."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "bucket_arns" {
  description = "Bucket ARN by purpose, from the storage module: raw, features, artifacts, predictions, audit, access_logs."
  type        = map(string)
}

variable "kms_key_arns" {
  description = "KMS key ARN by purpose, from the kms module: data, audit, platform, logs."
  type        = map(string)
}

variable "ecr_repository_arns" {
  description = "ECR repository ARN by suffix, from the ecr module."
  type        = map(string)
}

variable "db_secret_arn" {
  description = "RDS-managed secret the platform tasks connect to PostgreSQL with (rds module)."
  type        = string
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary every role here carries (the CI deployer may create roles only with it); null for none."
  type        = string
  default     = null
}
