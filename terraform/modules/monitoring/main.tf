# Alarms to one encrypted SNS topic: serving 5xx rate, p99 latency, unhealthy and too few
# healthy targets, Dagster run failures and drift alerts. And the CloudTrail trail that
# records every management call and every object-level call on the data buckets.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  trail_name = var.trail_name
  lb_dimensions = {
    LoadBalancer = var.alb_arn_suffix
    TargetGroup  = var.serving_target_group_arn_suffix
  }
}

resource "aws_sns_topic" "alerts" {
  name              = "${var.name}-alerts"
  display_name      = "tradeops ${var.name} alerts"
  kms_master_key_id = var.logs_kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "alerts" {
  statement {
    sid       = "CloudWatchAlarmsOfThisAccount"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "DenyAnythingButTls"
    effect    = "Deny"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alert_emails)

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}

# --- serving ------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "serving_5xx_rate" {
  alarm_name          = "${var.name}-serving-5xx-rate"
  alarm_description   = "More than ${var.error_rate_percent}% of policy requests answered 5xx (target or load balancer) for 3 minutes; rolls back a deployment in progress."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.error_rate_percent
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]

  metric_query {
    id          = "rate"
    expression  = "100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / IF(requests > 0, requests, 1)"
    label       = "5xx percent of requests"
    return_data = true
  }

  metric_query {
    id = "target5xx"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      dimensions  = local.lb_dimensions
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "elb5xx"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_ELB_5XX_Count"
      dimensions  = { LoadBalancer = var.alb_arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = local.lb_dimensions
      period      = 60
      stat        = "Sum"
    }
  }

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "serving_p99_latency" {
  alarm_name          = "${var.name}-serving-p99-latency"
  alarm_description   = "p99 policy response time above ${var.p99_latency_seconds * 1000} ms for 5 minutes."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = local.lb_dimensions
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.p99_latency_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "serving_unhealthy_targets" {
  alarm_name          = "${var.name}-serving-unhealthy-targets"
  alarm_description   = "A policy task failed its /readyz health check for 2 minutes."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = local.lb_dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "serving_healthy_targets_low" {
  alarm_name          = "${var.name}-serving-healthy-targets-low"
  alarm_description   = "Fewer than ${var.serving_min_healthy_tasks} healthy policy tasks: one more failure is an outage."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  dimensions          = local.lb_dimensions
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "LessThanThreshold"
  threshold           = var.serving_min_healthy_tasks
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
  tags                = var.tags
}

# --- pipeline: run failures and drift ------------------------------------------------------
# The run_failure_sensor and drift_sensor log one JSON line per event
# ({"event": "run_failure", ...} / {"event": "drift_alert", ...}); these filters count them.

locals {
  log_events = {
    RunFailures = { pattern = "{ $.event = \"run_failure\" }", description = "A Dagster run failed", threshold = 0 }
    DriftAlerts = { pattern = "{ $.event = \"drift_alert\" }", description = "Feature drift or live performance crossed its threshold", threshold = 0 }
  }
  log_event_sources = {
    for pair in setproduct(keys(local.log_events), ["daemon", "run"]) : "${pair[0]}-${pair[1]}" => { metric = pair[0], component = pair[1] }
  }
}

resource "aws_cloudwatch_log_metric_filter" "events" {
  for_each = local.log_event_sources

  name           = "${var.name}-${each.key}"
  log_group_name = var.log_group_names[each.value.component]
  pattern        = local.log_events[each.value.metric].pattern

  metric_transformation {
    name          = each.value.metric
    namespace     = var.metric_namespace
    value         = "1"
    default_value = "0"
  }
}

resource "aws_cloudwatch_metric_alarm" "events" {
  for_each = local.log_events

  alarm_name          = "${var.name}-${lower(each.key)}"
  alarm_description   = "${each.value.description} (${var.metric_namespace}/${each.key})."
  namespace           = var.metric_namespace
  metric_name         = each.key
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = var.tags

  depends_on = [aws_cloudwatch_log_metric_filter.events]
}
