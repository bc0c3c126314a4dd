variable "name" {
  description = "Name prefix of every resource, e.g. tradeops-prod."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource (the provider's default_tags come on top)."
  type        = map(string)
  default     = {}
}

variable "deletion_window_in_days" {
  description = "Days a scheduled key deletion waits (7-30); the longest window leaves the most time to cancel."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "rotation_period_in_days" {
  description = "Automatic rotation period of every key's material (90-2560 days)."
  type        = number
  default     = 365

  validation {
    condition     = var.rotation_period_in_days >= 90 && var.rotation_period_in_days <= 2560
    error_message = "rotation_period_in_days must be between 90 and 2560."
  }
}
