variable "name" {
  description = "Name prefix of every resource, e.g. tradeops-prod; bucket names add the purpose and the account id."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "data_kms_key_arn" {
  description = "Customer-managed KMS key for the data buckets and the access-log bucket."
  type        = string
}

variable "audit_kms_key_arn" {
  description = "Customer-managed KMS key for the audit bucket."
  type        = string
}

variable "audit_retention_days" {
  description = "Object Lock COMPLIANCE retention of every audit object: nobody, root included, can delete or shorten it before then."
  type        = number
  default     = 2557 # seven years

  validation {
    condition     = var.audit_retention_days >= 1
    error_message = "audit_retention_days must be at least 1."
  }
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version stays recoverable before it expires (data buckets)."
  type        = number
  default     = 90
}

variable "access_log_retention_days" {
  description = "Days S3 server access logs are kept (they move to archive tiers on the way)."
  type        = number
  default     = 2557

  validation {
    condition     = var.access_log_retention_days >= 365
    error_message = "Keep access logs for at least a year."
  }
}

variable "cloudtrail_trail_name" {
  description = "Name of the CloudTrail trail allowed to deliver into the audit bucket's cloudtrail/ prefix."
  type        = string
}
