variable "region" {
  description = "AWS region of the environment."
  type        = string
  default     = "eu-west-1"
}

variable "account_id" {
  description = "AWS account this bootstrap may run in (the provider refuses any other)."
  type        = string
}

variable "environment" {
  description = "dev or prod."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "github_repository" {
  description = "owner/name of the repository whose workflows deploy this environment."
  type        = string
}

variable "create_oidc_provider" {
  description = "Create the account's GitHub OIDC provider (false when dev and prod share an account and the other bootstrap made it)."
  type        = bool
  default     = true
}
