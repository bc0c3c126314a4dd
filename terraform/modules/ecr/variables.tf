variable "name" {
  description = "Name prefix of every repository, e.g. tradeops-prod."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key that encrypts the images."
  type        = string
}

variable "repositories" {
  description = "Repository suffix => what it holds."
  type        = map(string)
  default = {
    platform       = "Dagster webserver, daemon and run image (tradeops_assets, resources, sensors)"
    training       = "GPU training image (torch with CUDA, stable-baselines3)"
    mlflow         = "MLflow tracking server"
    trading-policy = "signed bento images: one immutable tag per signed bento"
    aws-cli        = "pinned AWS CLI image the tokens-sync sidecar runs"
  }
}

variable "keep_images" {
  description = "Newest tagged images kept per repository (older ones expire); rollback reaches back this far."
  type        = number
  default     = 200
}
