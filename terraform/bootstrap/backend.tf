# The bootstrap's own state goes into the bucket it creates. First run only, with
# backend_override.tf holding `terraform { backend "local" {} }`: apply, delete the
# override, then `terraform init -migrate-state -backend-config=...` (docs/production.md).
terraform {
  backend "s3" {
    key          = "bootstrap/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
}
