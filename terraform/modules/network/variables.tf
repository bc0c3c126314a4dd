variable "name" {
  description = "Name prefix of every resource, e.g. tradeops-prod."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "cidr_block" {
  description = "The VPC's IPv4 range; one /20 private subnet per availability zone is cut from it."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "Availability zones to spread the private subnets (and so every service) over; at least two."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "Give at least two distinct availability zones."
  }
}

variable "client_cidrs" {
  description = "Networks (peered VPCs, the trading floor over Direct Connect) that may call the policy endpoint on the internal load balancer (443)."
  type        = list(string)
}

variable "operator_cidrs" {
  description = "Networks of engineers and auditors that may reach the Dagster UI (8443) and MLflow UI (9443) on the internal load balancer."
  type        = list(string)
}

variable "logs_kms_key_arn" {
  description = "KMS key that encrypts the flow-log group."
  type        = string
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the VPC flow logs (at least a year)."
  type        = number
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "Keep flow logs for at least 365 days."
  }
}

variable "interface_endpoints" {
  description = "AWS services reached through interface endpoints: the subnets have no route to the internet."
  type        = list(string)
  default = [
    "ecr.api",
    "ecr.dkr",
    "ecs",
    "ecs-agent",
    "ecs-telemetry",
    "kms",
    "logs",
    "monitoring",
    "secretsmanager",
    "sns",
    "ssmmessages",
    "sts",
  ]
}

variable "extra_s3_bucket_arns" {
  description = "Buckets outside this stack the workloads may reach through the S3 endpoint (a market-data vendor's drop bucket)."
  type        = list(string)
  default     = []
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary every role this module creates carries (the CI deployer may create roles only with it); null for none."
  type        = string
  default     = null
}
