variable "name" {
  description = "Name prefix of every resource, e.g. tradeops-prod."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "subnet_ids" {
  description = "Private subnets (two or more zones) for the instance and its Multi-AZ standby."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "Give subnets in at least two availability zones."
  }
}

variable "security_group_id" {
  description = "The database tier's security group (5432 from the platform tier only)."
  type        = string
}

variable "logs_kms_key_arn" {
  description = "Customer-managed key that encrypts the exported PostgreSQL log groups."
  type        = string
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the exported PostgreSQL logs (at least a year)."
  type        = number
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "Keep database logs for at least 365 days."
  }
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary every role this module creates carries (the CI deployer may create roles only with it); null for none."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "Customer-managed key for storage, Performance Insights and the master secret."
  type        = string
}

variable "engine_version" {
  description = "PostgreSQL major.minor version; minor upgrades apply in the maintenance window."
  type        = string
  default     = "16.6"
}

variable "instance_class" {
  description = "Instance class, e.g. db.t4g.medium (dev) or db.r7g.large (prod)."
  type        = string
  default     = "db.t4g.medium"
}

variable "allocated_storage_gb" {
  description = "Initial gp3 storage in GiB."
  type        = number
  default     = 50
}

variable "max_allocated_storage_gb" {
  description = "Storage autoscaling ceiling in GiB."
  type        = number
  default     = 500
}

variable "backup_retention_days" {
  description = "Days of automated backups and point-in-time recovery (7-35)."
  type        = number
  default     = 14

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

variable "databases" {
  description = "Application databases, one per component; the Dagster one is created with the instance, mlflow once by an operator (docs/production.md)."
  type        = list(string)
  default     = ["dagster", "mlflow"]
}
