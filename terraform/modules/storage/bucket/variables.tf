variable "bucket" {
  description = "Globally unique bucket name."
  type        = string
}

variable "purpose" {
  description = "What the bucket holds (tagged on it)."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key of the bucket's default encryption."
  type        = string
}

variable "access_log_bucket" {
  description = "Bucket that receives this bucket's S3 server access logs."
  type        = string
}

variable "access_log_prefix" {
  description = "Prefix of this bucket's access logs in the access-log bucket."
  type        = string
}

variable "transitions" {
  description = "Lifecycle transitions of current objects: days after creation and the archive tier."
  type = list(object({
    days          = number
    storage_class = string
  }))
  default = []
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted version stays recoverable before it expires."
  type        = number
  default     = 90
}
