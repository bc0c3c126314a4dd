output "alerts_topic_arn" {
  description = "SNS topic every alarm publishes to."
  value       = aws_sns_topic.alerts.arn
}

output "deployment_alarm_names" {
  description = "Alarms that roll back a serving deployment while it is in progress."
  value       = [aws_cloudwatch_metric_alarm.serving_5xx_rate.alarm_name]
}

output "alarm_names" {
  description = "Every alarm this module creates."
  value = concat(
    [
      aws_cloudwatch_metric_alarm.serving_5xx_rate.alarm_name,
      aws_cloudwatch_metric_alarm.serving_p99_latency.alarm_name,
      aws_cloudwatch_metric_alarm.serving_unhealthy_targets.alarm_name,
      aws_cloudwatch_metric_alarm.serving_healthy_targets_low.alarm_name,
    ],
    [for alarm in aws_cloudwatch_metric_alarm.events : alarm.alarm_name],
  )
}

output "trail_arn" {
  description = "The CloudTrail trail."
  value       = aws_cloudtrail.this.arn
}
