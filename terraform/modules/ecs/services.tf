resource "aws_ecs_service" "webserver" {
  name                               = "${var.name}-webserver"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.webserver.arn
  desired_count                      = 2
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 50
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 120
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [var.security_group_ids["platform"]]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this["webserver"].arn
    container_name   = "webserver"
    container_port   = 3000
  }

  tags       = var.tags
  depends_on = [aws_lb_listener.this]
}

# Exactly one daemon: a deployment stops the old one before the new one starts.
resource "aws_ecs_service" "daemon" {
  name                               = "${var.name}-daemon"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.daemon.arn
  desired_count                      = 1
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [var.security_group_ids["platform"]]
    assign_public_ip = false
  }

  tags = var.tags
}

resource "aws_ecs_service" "mlflow" {
  name                               = "${var.name}-mlflow"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.mlflow.arn
  desired_count                      = 2
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 50
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 60
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [var.security_group_ids["platform"]]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this["mlflow"].arn
    container_name   = "mlflow"
    container_port   = 5000
  }

  service_registries {
    registry_arn = aws_service_discovery_service.mlflow.arn
  }

  tags       = var.tags
  depends_on = [aws_lb_listener.this]
}

# The policy endpoint: at least two tasks, spread over every private subnet (one per
# zone); a rolling deployment starts new tasks before it stops old ones (100/200), the
# load balancer sends them traffic only once /readyz answers, and the circuit breaker
# (or a deployment alarm) rolls back to the last steady task definition on failure.
resource "aws_ecs_service" "serving" {
  name                               = local.serving_service_name
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.serving.arn
  desired_count                      = var.serving_desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 60
  availability_zone_rebalancing      = "ENABLED"
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  wait_for_steady_state              = true

  deployment_controller {
    type = "ECS"
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  dynamic "alarms" {
    for_each = length(var.deployment_alarm_names) > 0 ? [var.deployment_alarm_names] : []
    content {
      alarm_names = alarms.value
      enable      = true
      rollback    = true
    }
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [var.security_group_ids["serving"]]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this["serving"].arn
    container_name   = "policy"
    container_port   = 3000
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.this]
}

resource "aws_appautoscaling_target" "serving" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.serving.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.serving_desired_count
  max_capacity       = var.serving_max_count
}

resource "aws_appautoscaling_policy" "serving_requests" {
  name               = "${var.name}-serving-requests-per-target"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.serving.service_namespace
  resource_id        = aws_appautoscaling_target.serving.resource_id
  scalable_dimension = aws_appautoscaling_target.serving.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.this["serving"].arn_suffix}"
    }
  }
}
