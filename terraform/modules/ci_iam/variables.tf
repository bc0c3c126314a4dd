variable "name" {
  description = "Name prefix of the environment the CI roles serve, e.g. tradeops-prod."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose workflows may assume the CI roles."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name."
  }
}

variable "release_environment" {
  description = "GitHub environment (deployment branches: main only) whose jobs build, sign, push and plan."
  type        = string
  default     = "release"
}

variable "deploy_environment" {
  description = "GitHub environment (main only, required reviewers) whose job applies the plan."
  type        = string
  default     = "production"
}

variable "create_oidc_provider" {
  description = "Create the account's GitHub OIDC provider (one per account: false when another stack made it)."
  type        = bool
  default     = true
}

variable "state_bucket_arn" {
  description = "Bucket holding the Terraform state."
  type        = string
}

variable "state_kms_key_arn" {
  description = "KMS key encrypting the Terraform state."
  type        = string
}

variable "state_key_prefix" {
  description = "Prefix of this environment's state objects in the state bucket (e.g. prod/)."
  type        = string
}
