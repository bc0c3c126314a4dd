output "bucket_names" {
  description = "Bucket name by purpose: raw, features, artifacts, predictions, audit, access_logs."
  value = merge(
    { raw = module.raw.id, features = module.features.id, artifacts = module.artifacts.id, predictions = module.predictions.id },
    { audit = aws_s3_bucket.audit.id, access_logs = aws_s3_bucket.access_logs.id },
  )
}

output "bucket_arns" {
  description = "Bucket ARN by purpose: raw, features, artifacts, predictions, audit, access_logs."
  value = merge(
    local.data_bucket_arns,
    { audit = aws_s3_bucket.audit.arn, access_logs = aws_s3_bucket.access_logs.arn },
  )
}
