# One security group per tier; every rule names its peer group or range. No group lets
# anything in from 0.0.0.0/0 and none sends anything out to it.

locals {
  security_groups = {
    alb       = "Internal load balancer: TLS from the client and operator networks only"
    serving   = "Policy endpoint tasks: port 3000 from the load balancer only"
    platform  = "Dagster webserver and daemon, run tasks and the MLflow server"
    training  = "GPU training tasks: no inbound traffic"
    gpu_hosts = "EC2 container instances of the GPU Spot capacity provider: no inbound traffic"
    database  = "PostgreSQL: 5432 from the platform tier only"
    endpoints = "AWS interface endpoints: HTTPS from inside the VPC"
  }

  ingress_cidr_rules = merge(
    { for cidr in var.client_cidrs : "alb-443-${cidr}" => { group = "alb", port = 443, cidr = cidr, description = "Policy endpoint (HTTPS) from client network ${cidr}" } },
    { for cidr in var.operator_cidrs : "alb-8443-${cidr}" => { group = "alb", port = 8443, cidr = cidr, description = "Dagster UI (HTTPS) from operator network ${cidr}" } },
    { for cidr in var.operator_cidrs : "alb-9443-${cidr}" => { group = "alb", port = 9443, cidr = cidr, description = "MLflow UI (HTTPS) from operator network ${cidr}" } },
    { "endpoints-443-vpc" = { group = "endpoints", port = 443, cidr = var.cidr_block, description = "HTTPS to AWS APIs from inside the VPC" } },
  )

  # group <- peer on port
  ingress_peer_rules = {
    "serving-3000-alb"       = { group = "serving", peer = "alb", port = 3000, description = "Policy endpoint traffic from the load balancer" }
    "platform-3000-alb"      = { group = "platform", peer = "alb", port = 3000, description = "Dagster UI traffic from the load balancer" }
    "platform-5000-alb"      = { group = "platform", peer = "alb", port = 5000, description = "MLflow UI traffic from the load balancer" }
    "platform-5000-platform" = { group = "platform", peer = "platform", port = 5000, description = "MLflow tracking API from Dagster runs" }
    "platform-5000-training" = { group = "platform", peer = "training", port = 5000, description = "MLflow tracking API from training tasks" }
    "database-5432-platform" = { group = "database", peer = "platform", port = 5432, description = "PostgreSQL from Dagster and MLflow" }
  }

  # group -> peer on port
  egress_peer_rules = {
    "alb-3000-serving"       = { group = "alb", peer = "serving", port = 3000, description = "Load balancer to policy endpoint tasks" }
    "alb-3000-platform"      = { group = "alb", peer = "platform", port = 3000, description = "Load balancer to the Dagster webserver" }
    "alb-5000-platform"      = { group = "alb", peer = "platform", port = 5000, description = "Load balancer to the MLflow server" }
    "platform-5000-platform" = { group = "platform", peer = "platform", port = 5000, description = "Dagster runs to the MLflow server" }
    "platform-5432-database" = { group = "platform", peer = "database", port = 5432, description = "Dagster and MLflow to PostgreSQL" }
    "training-5000-platform" = { group = "training", peer = "platform", port = 5000, description = "Training tasks to the MLflow server" }
  }

  # every workload tier reaches AWS APIs through the endpoints and S3 through its gateway
  api_clients = ["serving", "platform", "training", "gpu_hosts"]
}

resource "aws_security_group" "this" {
  for_each = local.security_groups
  #checkov:skip=CKV2_AWS_5:Each tier is attached in another module through this module's output (ecs services, launch template and load balancer, rds instance; run and training tasks get theirs at launch from the run launcher's settings), which checkov's graph does not follow; tests/infra asserts every tier is used

  name        = "${var.name}-${replace(each.key, "_", "-")}"
  description = each.value
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-${replace(each.key, "_", "-")}" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "cidr" {
  for_each = local.ingress_cidr_rules

  security_group_id = aws_security_group.this[each.value.group].id
  description       = each.value.description
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
}

resource "aws_vpc_security_group_ingress_rule" "peer" {
  for_each = local.ingress_peer_rules

  security_group_id            = aws_security_group.this[each.value.group].id
  description                  = each.value.description
  referenced_security_group_id = aws_security_group.this[each.value.peer].id
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
}

resource "aws_vpc_security_group_egress_rule" "peer" {
  for_each = local.egress_peer_rules

  security_group_id            = aws_security_group.this[each.value.group].id
  description                  = each.value.description
  referenced_security_group_id = aws_security_group.this[each.value.peer].id
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
}

resource "aws_vpc_security_group_egress_rule" "endpoints" {
  for_each = toset(local.api_clients)

  security_group_id            = aws_security_group.this[each.value].id
  description                  = "HTTPS to the AWS interface endpoints"
  referenced_security_group_id = aws_security_group.this["endpoints"].id
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
}

resource "aws_vpc_security_group_egress_rule" "s3" {
  for_each = toset(local.api_clients)

  security_group_id = aws_security_group.this[each.value].id
  description       = "HTTPS to S3 through the gateway endpoint"
  prefix_list_id    = aws_vpc_endpoint.s3.prefix_list_id
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}
