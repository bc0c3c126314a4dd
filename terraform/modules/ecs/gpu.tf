# GPU Spot capacity for training: an Auto Scaling group of ECS GPU-optimized instances,
# Spot only (price-capacity-optimized over several instance types), scaled by ECS
# managed scaling from zero when a training task is pending and back to zero after.
# ECS drains an instance on its two-minute Spot notice; the training task gets SIGTERM,
# writes a checkpoint to S3 and the next task resumes from it (docs/production.md).

data "aws_ssm_parameter" "gpu_ami" {
  name = var.gpu_ami_ssm_parameter
}

resource "aws_launch_template" "gpu" {
  name_prefix            = "${var.name}-gpu-"
  description            = "ECS GPU container instances of ${var.name}"
  image_id               = data.aws_ssm_parameter.gpu_ami.insecure_value
  vpc_security_group_ids = [var.security_group_ids["gpu_hosts"]]
  update_default_version = true
  ebs_optimized          = true

  iam_instance_profile {
    arn = var.gpu_host_instance_profile_arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = 200
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  user_data = base64encode(<<-EOT
    #!/bin/bash
    cat >> /etc/ecs/ecs.config <<'CONFIG'
    ECS_CLUSTER=${var.name}
    ECS_ENABLE_GPU_SUPPORT=true
    ECS_ENABLE_SPOT_INSTANCE_DRAINING=true
    ECS_AWSVPC_BLOCK_IMDS=true
    ECS_CONTAINER_STOP_TIMEOUT=110s
    CONFIG
  EOT
  )

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-gpu-spot" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = "${var.name}-gpu-spot" })
  }

  tags = var.tags
}

resource "aws_autoscaling_group" "gpu" {
  name_prefix           = "${var.name}-gpu-spot-"
  min_size              = 0
  max_size              = var.gpu_max_instances
  vpc_zone_identifier   = var.private_subnet_ids
  capacity_rebalance    = true
  protect_from_scale_in = true
  health_check_type     = "EC2"

  mixed_instances_policy {
    instances_distribution {
      on_demand_base_capacity                  = 0
      on_demand_percentage_above_base_capacity = 0
      spot_allocation_strategy                 = "price-capacity-optimized"
    }

    launch_template {
      launch_template_specification {
        launch_template_id = aws_launch_template.gpu.id
        version            = "$Latest"
      }

      dynamic "override" {
        for_each = var.gpu_instance_types
        content {
          instance_type = override.value
        }
      }
    }
  }

  tag {
    key                 = "AmazonECSManaged"
    value               = "true"
    propagate_at_launch = true
  }

  dynamic "tag" {
    for_each = var.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    ignore_changes = [desired_capacity]
  }
}

resource "aws_ecs_capacity_provider" "gpu_spot" {
  name = "${var.name}-gpu-spot"

  auto_scaling_group_provider {
    auto_scaling_group_arn         = aws_autoscaling_group.gpu.arn
    managed_termination_protection = "ENABLED"
    managed_draining               = "ENABLED"

    managed_scaling {
      status                    = "ENABLED"
      target_capacity           = 100
      minimum_scaling_step_size = 1
      maximum_scaling_step_size = var.gpu_max_instances
      instance_warmup_period    = 300
    }
  }

  tags = var.tags
}
