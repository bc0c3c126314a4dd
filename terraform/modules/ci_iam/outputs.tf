output "release_role_arn" {
  description = "Role the release jobs assume (GitHub secret/variable AWS_RELEASE_ROLE_ARN)."
  value       = aws_iam_role.ci["release"].arn
}

output "deployer_role_arn" {
  description = "Role the apply job assumes (GitHub variable AWS_DEPLOYER_ROLE_ARN)."
  value       = aws_iam_role.ci["deployer"].arn
}

output "permissions_boundary_arn" {
  description = "Boundary every role of the environment carries (envs/<env> variable permissions_boundary_arn)."
  value       = aws_iam_policy.boundary.arn
}

output "oidc_provider_arn" {
  description = "The account's GitHub OIDC provider."
  value       = local.oidc_provider_arn
}
