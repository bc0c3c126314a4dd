variable "name" {
  description = "Name prefix of every resource; also the cluster's name, e.g. tradeops-prod."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "The VPC (network module)."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets, one per availability zone; every service spreads its tasks over all of them."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "Give private subnets in at least two availability zones."
  }
}

variable "security_group_ids" {
  description = "Security group id by tier (network module): alb, serving, platform, training, gpu_hosts."
  type        = map(string)
}

variable "data_kms_key_arn" {
  description = "KMS key the platform's writers name on every S3 put to the data buckets (SSE-KMS)."
  type        = string
}

variable "audit_kms_key_arn" {
  description = "KMS key the audit log's writer names on every put to the audit bucket."
  type        = string
}

variable "logs_kms_key_arn" {
  description = "KMS key that encrypts the log groups and ECS Exec sessions."
  type        = string
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps container logs (at least a year)."
  type        = number
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "Keep container logs for at least 365 days."
  }
}

variable "execution_role_arn" {
  description = "ECS task execution role of the serving tasks: images and logs only (iam module)."
  type        = string
}

variable "platform_execution_role_arn" {
  description = "ECS task execution role of the platform tasks; it also injects their secrets (iam module)."
  type        = string
}

variable "db_secret_arn" {
  description = "RDS-managed secret (JSON username, password) the Dagster instance and MLflow connect with (rds module)."
  type        = string
}

variable "db_name" {
  description = "Database of the Dagster instance (rds module)."
  type        = string
}

variable "signing_key_secret_arn" {
  description = "Secrets Manager secret with the bento-signing private key, injected into run tasks only (iam module)."
  type        = string
}

variable "prediction_log_ship_seconds" {
  description = "How often each serving task copies its rolled prediction log parts to S3."
  type        = number
  default     = 30
}

variable "task_role_arns" {
  description = "Task role ARN by component (iam module): webserver, daemon, pipeline, training, mlflow, serving."
  type        = map(string)
}

variable "gpu_host_instance_profile_arn" {
  description = "Instance profile of the GPU Spot container instances (iam module)."
  type        = string
}

variable "images" {
  description = "Image reference (immutable tag or digest) by role: platform, training, mlflow, trading_policy, aws_cli."
  type        = map(string)

  validation {
    condition     = alltrue([for key in ["platform", "training", "mlflow", "trading_policy", "aws_cli"] : contains(keys(var.images), key)])
    error_message = "images needs platform, training, mlflow, trading_policy and aws_cli."
  }
}

variable "bento_tag" {
  description = "The signed bento the serving tasks run, e.g. trading_policy:2026-12-01-abc123; the launcher verifies it before serving."
  type        = string
}

variable "signing_public_key" {
  description = "Base64 of the trusted Ed25519 public key (TRADEOPS_SIGNING_PUBLIC_KEY); a bento signed by any other key refuses to start."
  type        = string
}

variable "serving_tokens_secret_arn" {
  description = "Secrets Manager secret with the named client tokens file (iam module)."
  type        = string
}

variable "tokens_sync_seconds" {
  description = "How often each serving task re-reads the tokens secret; the service re-reads the file within about a second."
  type        = number
  default     = 15
}

variable "certificate_arn" {
  description = "ACM certificate (the firm's private CA) for the internal load balancer's TLS listeners."
  type        = string
}

variable "bucket_names" {
  description = "Bucket name by purpose (storage module)."
  type        = map(string)
}

variable "db_address" {
  description = "PostgreSQL hostname (rds module)."
  type        = string
}

variable "db_port" {
  description = "PostgreSQL port (rds module)."
  type        = number
}

variable "serving_desired_count" {
  description = "Policy endpoint tasks at rest; autoscaling never goes below it. At least two, so one zone or one task can fail."
  type        = number
  default     = 2

  validation {
    condition     = var.serving_desired_count >= 2
    error_message = "The policy endpoint runs at least two tasks."
  }
}

variable "serving_max_count" {
  description = "Upper bound of policy endpoint tasks under load."
  type        = number
  default     = 12
}

variable "serving_cpu" {
  description = "Fargate CPU units of one serving task (1024 = 1 vCPU)."
  type        = number
  default     = 2048
}

variable "serving_memory" {
  description = "Fargate memory (MiB) of one serving task."
  type        = number
  default     = 4096
}

variable "serving_workers" {
  description = "BentoML worker processes per serving task (TRADEOPS_SERVE_WORKERS)."
  type        = number
  default     = 2
}

variable "requests_per_target" {
  description = "Target ALB requests per minute per task for autoscaling (ALBRequestCountPerTarget)."
  type        = number
  default     = 18000
}

variable "deployment_alarm_names" {
  description = "CloudWatch alarms that roll a serving deployment back when they fire during it (monitoring module)."
  type        = list(string)
  default     = []
}

variable "run_cpu" {
  description = "Fargate CPU units of one Dagster run task."
  type        = number
  default     = 4096
}

variable "run_memory" {
  description = "Fargate memory (MiB) of one Dagster run task."
  type        = number
  default     = 16384
}

variable "run_ephemeral_storage_gib" {
  description = "Scratch disk of one run task (a partition's working set)."
  type        = number
  default     = 100
}

variable "gpu_instance_types" {
  description = "GPU instance types the Spot capacity provider may launch (more types, deeper Spot pools)."
  type        = list(string)
  default     = ["g5.xlarge", "g5.2xlarge", "g6.xlarge", "g6.2xlarge"]
}

variable "gpu_max_instances" {
  description = "Most GPU Spot instances at once."
  type        = number
  default     = 4
}

variable "gpu_ami_ssm_parameter" {
  description = "SSM public parameter naming the current ECS GPU-optimized AMI."
  type        = string
  default     = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
}

variable "training_memory" {
  description = "Memory (MiB) reserved by one training task on a GPU instance."
  type        = number
  default     = 14336
}
