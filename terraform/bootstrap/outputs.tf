output "state_bucket" {
  description = "Backend bucket for envs/<environment> (terraform init -backend-config=bucket=...)."
  value       = aws_s3_bucket.this["state"].id
}

output "state_kms_key_arn" {
  description = "Key that encrypts the state (backend kms_key_id)."
  value       = aws_kms_key.state.arn
}

output "release_role_arn" {
  description = "GitHub variable AWS_RELEASE_ROLE_ARN of the release environment."
  value       = module.ci.release_role_arn
}

output "deployer_role_arn" {
  description = "GitHub variable AWS_DEPLOYER_ROLE_ARN of the production environment."
  value       = module.ci.deployer_role_arn
}

output "permissions_boundary_arn" {
  description = "envs/<environment> variable permissions_boundary_arn."
  value       = module.ci.permissions_boundary_arn
}
