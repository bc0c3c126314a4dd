output "key_arns" {
  description = "Key ARN by purpose: data, audit, platform, logs."
  value       = { for purpose, key in aws_kms_key.this : purpose => key.arn }
}

output "key_ids" {
  description = "Key id by purpose."
  value       = { for purpose, key in aws_kms_key.this : purpose => key.key_id }
}

output "alias_names" {
  description = "Alias by purpose (alias/<name>-<purpose>)."
  value       = { for purpose, alias in aws_kms_alias.this : purpose => alias.name }
}
