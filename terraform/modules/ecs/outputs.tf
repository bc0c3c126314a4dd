output "cluster_name" {
  description = "The ECS cluster's name."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "The ECS cluster's ARN."
  value       = aws_ecs_cluster.this.arn
}

output "alb_dns_name" {
  description = "DNS name of the internal load balancer (point the certificate's name at it)."
  value       = aws_lb.this.dns_name
}

output "alb_arn_suffix" {
  description = "ARN suffix of the load balancer (CloudWatch dimension LoadBalancer)."
  value       = aws_lb.this.arn_suffix
}

output "target_group_arn_suffixes" {
  description = "ARN suffix of each target group (CloudWatch dimension TargetGroup): serving, webserver, mlflow."
  value       = { for key, group in aws_lb_target_group.this : key => group.arn_suffix }
}

output "serving_service_name" {
  description = "Name of the policy endpoint's ECS service."
  value       = aws_ecs_service.serving.name
}

output "log_group_names" {
  description = "Log group by component."
  value       = { for component, group in aws_cloudwatch_log_group.this : component => group.name }
}

output "task_definition_families" {
  description = "Task definition family by component."
  value = {
    webserver = aws_ecs_task_definition.webserver.family
    daemon    = aws_ecs_task_definition.daemon.family
    run       = aws_ecs_task_definition.run.family
    training  = aws_ecs_task_definition.training.family
    mlflow    = aws_ecs_task_definition.mlflow.family
    serving   = aws_ecs_task_definition.serving.family
  }
}

output "gpu_capacity_provider_name" {
  description = "Capacity provider training tasks are launched on."
  value       = aws_ecs_capacity_provider.gpu_spot.name
}

output "mlflow_tracking_uri" {
  description = "MLflow tracking URI inside the VPC."
  value       = "http://${local.mlflow_host}:5000"
}
