variable "name" {
  description = "Name prefix of every resource, e.g. tradeops-prod."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "logs_kms_key_arn" {
  description = "KMS key that encrypts the alert topic and the trail's log group."
  type        = string
}

variable "audit_kms_key_arn" {
  description = "KMS key that encrypts the CloudTrail log files."
  type        = string
}

variable "alert_emails" {
  description = "Addresses subscribed to the alert topic (each confirms once); pager integrations subscribe the same topic."
  type        = list(string)
  default     = []
}

variable "alb_arn_suffix" {
  description = "Load balancer ARN suffix (ecs module)."
  type        = string
}

variable "serving_target_group_arn_suffix" {
  description = "Serving target group ARN suffix (ecs module)."
  type        = string
}

variable "log_group_names" {
  description = "Log group by component (ecs module): run and daemon are searched for run failures and drift alerts."
  type        = map(string)
}

variable "metric_namespace" {
  description = "Custom metric namespace (iam module) for run failures and drift."
  type        = string
}

variable "serving_min_healthy_tasks" {
  description = "Fewer healthy serving targets than this raises an alarm."
  type        = number
  default     = 2
}

variable "error_rate_percent" {
  description = "5xx responses as a percentage of requests that raise the 5xx alarm (and roll back a deployment)."
  type        = number
  default     = 1
}

variable "p99_latency_seconds" {
  description = "p99 target response time that raises the latency alarm."
  type        = number
  default     = 0.05
}

variable "trail_name" {
  description = "Name of the CloudTrail trail (the storage module's audit bucket policy admits exactly this trail)."
  type        = string
}

variable "audit_bucket_name" {
  description = "Audit bucket (storage module) the trail delivers into, under cloudtrail/."
  type        = string
}

variable "trail_data_event_bucket_arns" {
  description = "Buckets whose object-level reads and writes CloudTrail records (not the audit or access-log buckets: no loops)."
  type        = list(string)
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the trail's copy of events (at least a year)."
  type        = number
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "Keep the trail's log group for at least 365 days."
  }
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary every role this module creates carries; null for none."
  type        = string
  default     = null
}
