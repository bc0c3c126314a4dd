variable "environment" {
  description = "Environment name; resources are named tradeops-<environment>-*."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource (the root's provider default_tags carry the same)."
  type        = map(string)
}

variable "availability_zones" {
  description = "Zones to spread subnets and services over (at least two)."
  type        = list(string)
}

variable "vpc_cidr" {
  description = "The VPC's IPv4 range."
  type        = string
}

variable "client_cidrs" {
  description = "Networks allowed to call the policy endpoint."
  type        = list(string)
}

variable "operator_cidrs" {
  description = "Networks allowed to reach the Dagster and MLflow UIs."
  type        = list(string)
}

variable "permissions_boundary_arn" {
  description = "Workload permissions boundary from the bootstrap (every role here carries it)."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate of the internal load balancer (issued by the firm's private CA)."
  type        = string
}

variable "image_tags" {
  description = "Immutable image tag by repository: platform, training, mlflow, trading-policy, aws-cli (CI passes the ones it pushed)."
  type        = map(string)
}

variable "bento_tag" {
  description = "The signed bento the policy endpoint serves (CI passes the one it signed)."
  type        = string
}

variable "signing_public_key" {
  description = "Base64 Ed25519 public key every served bento must verify against."
  type        = string
}

variable "alert_emails" {
  description = "Addresses subscribed to the alert topic."
  type        = list(string)
  default     = []
}

variable "serving_desired_count" {
  description = "Policy endpoint tasks at rest (at least two)."
  type        = number
  default     = 2
}

variable "serving_max_count" {
  description = "Most policy endpoint tasks under load."
  type        = number
  default     = 12
}

variable "db_instance_class" {
  description = "PostgreSQL instance class."
  type        = string
}

variable "audit_retention_days" {
  description = "Object Lock COMPLIANCE retention of audit records."
  type        = number
}

variable "gpu_max_instances" {
  description = "Most GPU Spot instances at once."
  type        = number
  default     = 4
}
