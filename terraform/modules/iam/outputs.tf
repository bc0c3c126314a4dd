output "task_role_arns" {
  description = "ECS task role ARN by component: webserver, daemon, pipeline, training, mlflow, serving."
  value       = { for component, role in aws_iam_role.task : component => role.arn }
}

output "execution_role_arn" {
  description = "ECS task execution role of the serving tasks (image pulls, log streams)."
  value       = aws_iam_role.execution.arn
}

output "platform_execution_role_arn" {
  description = "ECS task execution role of the platform tasks (also injects the database and signing secrets)."
  value       = aws_iam_role.platform_execution.arn
}

output "gpu_host_instance_profile_arn" {
  description = "Instance profile of the GPU Spot container instances."
  value       = aws_iam_instance_profile.gpu_host.arn
}

output "serving_tokens_secret_arn" {
  description = "Secrets Manager secret holding the endpoint's named client tokens file."
  value       = aws_secretsmanager_secret.serving_tokens.arn
}

output "signing_key_secret_arn" {
  description = "Secrets Manager secret holding the bento-signing private key (CI release role only)."
  value       = aws_secretsmanager_secret.signing_key.arn
}

output "metric_namespace" {
  description = "CloudWatch namespace the pipeline may publish drift and health metrics into."
  value       = local.metric_namespace
}
