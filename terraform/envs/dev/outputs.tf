output "policy_endpoint" {
  description = "Internal load balancer DNS name; clients call https://<certificate name>/predict, resolving to it."
  value       = module.platform.policy_endpoint
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.platform.cluster_name
}

output "serving_service_name" {
  description = "ECS service of the policy endpoint."
  value       = module.platform.serving_service_name
}

output "bucket_names" {
  description = "Bucket by purpose."
  value       = module.platform.bucket_names
}

output "repository_urls" {
  description = "ECR repository by name (CI pushes here)."
  value       = module.platform.repository_urls
}

output "alerts_topic_arn" {
  description = "Alarm topic."
  value       = module.platform.alerts_topic_arn
}

output "serving_tokens_secret_arn" {
  description = "Secret `tradeops token` writes the client tokens file into."
  value       = module.platform.serving_tokens_secret_arn
}

output "database_address" {
  description = "PostgreSQL hostname."
  value       = module.platform.database_address
}
