output "repository_urls" {
  description = "Repository URL by suffix (platform, training, mlflow, trading-policy, aws-cli)."
  value       = { for key, repo in aws_ecr_repository.this : key => repo.repository_url }
}

output "repository_arns" {
  description = "Repository ARN by suffix."
  value       = { for key, repo in aws_ecr_repository.this : key => repo.arn }
}
