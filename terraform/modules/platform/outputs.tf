output "policy_endpoint" {
  description = "Internal load balancer DNS name; clients call https://<certificate name>/predict, resolving to it."
  value       = module.ecs.alb_dns_name
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.ecs.cluster_name
}

output "serving_service_name" {
  description = "ECS service of the policy endpoint."
  value       = module.ecs.serving_service_name
}

output "bucket_names" {
  description = "Bucket by purpose."
  value       = module.storage.bucket_names
}

output "repository_urls" {
  description = "ECR repository by name (CI pushes here)."
  value       = module.ecr.repository_urls
}

output "alerts_topic_arn" {
  description = "Alarm topic."
  value       = module.monitoring.alerts_topic_arn
}

output "serving_tokens_secret_arn" {
  description = "Secret `tradeops token` writes the client tokens file into."
  value       = module.iam.serving_tokens_secret_arn
}

output "database_address" {
  description = "PostgreSQL hostname."
  value       = module.rds.address
}
