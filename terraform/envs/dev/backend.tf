# Remote state: S3, encrypted with the bootstrap's KMS key, locked with an S3 lock file
# (Terraform >= 1.11). The bucket comes from the bootstrap's output at init:
#   terraform init -backend-config="bucket=tradeops-tfstate-dev-<account>"
terraform {
  backend "s3" {
    key          = "dev/terraform.tfstate"
    region       = "eu-west-1"
    encrypt      = true
    kms_key_id   = "alias/tradeops-tfstate-dev"
    use_lockfile = true
  }
}
