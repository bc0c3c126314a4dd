# The internal load balancer is the production front door: TLS on 443 for the policy
# endpoint (8443 Dagster UI, 9443 MLflow UI), health checks on /readyz, and the target
# group a rolling deployment moves between task sets (docs/production.md, "swap").

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_91:ALB access logs can only be delivered to SSE-S3 buckets and every bucket here is SSE-KMS by rule; each decision is in the prediction log (client, outcome, latency) and request metrics are in CloudWatch
  name                       = var.name
  internal                   = true
  load_balancer_type         = "application"
  security_groups            = [var.security_group_ids["alb"]]
  subnets                    = var.private_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = true
  desync_mitigation_mode     = "strictest"
  idle_timeout               = 60
  tags                       = var.tags
}

locals {
  tls_policy = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  target_groups = {
    serving   = { port = 3000, health_path = "/readyz", listener_port = 443 }
    webserver = { port = 3000, health_path = "/server_info", listener_port = 8443 }
    mlflow    = { port = 5000, health_path = "/health", listener_port = 9443 }
  }
}

resource "aws_lb_target_group" "this" {
  for_each = local.target_groups
  #checkov:skip=CKV_AWS_378:TLS ends at the internal load balancer; the hop to the task stays inside the private subnets and its security group admits only the load balancer

  name                          = "${var.name}-${each.key}"
  port                          = each.value.port
  protocol                      = "HTTP"
  target_type                   = "ip"
  vpc_id                        = var.vpc_id
  deregistration_delay          = 30
  load_balancing_algorithm_type = "least_outstanding_requests"

  health_check {
    enabled             = true
    path                = each.value.health_path
    protocol            = "HTTP"
    port                = "traffic-port"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener" "this" {
  for_each = local.target_groups

  load_balancer_arn = aws_lb.this.arn
  port              = each.value.listener_port
  protocol          = "HTTPS"
  ssl_policy        = local.tls_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this[each.key].arn
  }

  tags = var.tags
}
