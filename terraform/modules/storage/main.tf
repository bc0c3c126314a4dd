# Five buckets for the platform's data and one for S3's own access logs. Every bucket:
# versioning, SSE-KMS with a customer-managed key (bucket keys on), all public access
# blocked, ACLs disabled, a policy that refuses anything but TLS, a lifecycle that moves
# cold objects to archive tiers, EventBridge notifications, and access logging into the
# access-log bucket (./bucket holds the data buckets' common shape). The audit bucket adds
# Object Lock in COMPLIANCE mode.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # purpose => lifecycle: transitions of current versions (days after creation)
  data_buckets = {
    raw = {
      description = "market data as vendors drop it (CSV/Parquet); the market_data_sensor watches it"
      transitions = [{ days = 90, storage_class = "GLACIER_IR" }]
    }
    features = {
      description = "market_bars and market_features partitions, and the DVC remote"
      transitions = [{ days = 30, storage_class = "STANDARD_IA" }, { days = 180, storage_class = "GLACIER_IR" }]
    }
    artifacts = {
      description = "MLflow artifacts and model registry, backtest reports, training checkpoints, release bundles"
      transitions = [{ days = 90, storage_class = "STANDARD_IA" }]
    }
    predictions = {
      description = "the prediction log: every decision with its client and outcome (cold after a month)"
      transitions = [{ days = 30, storage_class = "STANDARD_IA" }, { days = 90, storage_class = "GLACIER_IR" }, { days = 365, storage_class = "DEEP_ARCHIVE" }]
    }
  }

  bucket_names = merge(
    { for purpose, _ in local.data_buckets : purpose => "${var.name}-${purpose}-${local.account_id}" },
    {
      audit       = "${var.name}-audit-${local.account_id}"
      access_logs = "${var.name}-access-logs-${local.account_id}"
    },
  )
  trail_arn = "arn:${local.partition}:cloudtrail:${local.region}:${local.account_id}:trail/${var.cloudtrail_trail_name}"
}

# --- the four data buckets ------------------------------------------------------------

module "raw" {
  source = "./bucket"

  bucket                  = local.bucket_names["raw"]
  purpose                 = "raw"
  tags                    = var.tags
  kms_key_arn             = var.data_kms_key_arn
  access_log_bucket       = aws_s3_bucket.access_logs.id
  access_log_prefix       = "raw/"
  transitions             = local.data_buckets["raw"].transitions
  noncurrent_version_days = var.noncurrent_version_days
}

module "features" {
  source = "./bucket"

  bucket                  = local.bucket_names["features"]
  purpose                 = "features"
  tags                    = var.tags
  kms_key_arn             = var.data_kms_key_arn
  access_log_bucket       = aws_s3_bucket.access_logs.id
  access_log_prefix       = "features/"
  transitions             = local.data_buckets["features"].transitions
  noncurrent_version_days = var.noncurrent_version_days
}

module "artifacts" {
  source = "./bucket"

  bucket                  = local.bucket_names["artifacts"]
  purpose                 = "artifacts"
  tags                    = var.tags
  kms_key_arn             = var.data_kms_key_arn
  access_log_bucket       = aws_s3_bucket.access_logs.id
  access_log_prefix       = "artifacts/"
  transitions             = local.data_buckets["artifacts"].transitions
  noncurrent_version_days = var.noncurrent_version_days
}

module "predictions" {
  source = "./bucket"

  bucket                  = local.bucket_names["predictions"]
  purpose                 = "predictions"
  tags                    = var.tags
  kms_key_arn             = var.data_kms_key_arn
  access_log_bucket       = aws_s3_bucket.access_logs.id
  access_log_prefix       = "predictions/"
  transitions             = local.data_buckets["predictions"].transitions
  noncurrent_version_days = var.noncurrent_version_days
}

locals {
  data_bucket_arns = {
    raw         = module.raw.arn
    features    = module.features.arn
    artifacts   = module.artifacts.arn
    predictions = module.predictions.arn
  }
}
