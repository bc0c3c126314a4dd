output "endpoint" {
  description = "host:port of the instance."
  value       = aws_db_instance.this.endpoint
}

output "address" {
  description = "Hostname of the instance."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "Port of the instance."
  value       = aws_db_instance.this.port
}

output "resource_id" {
  description = "DBI resource id, the part of rds-db:connect ARNs that names this instance."
  value       = aws_db_instance.this.resource_id
}

output "database_users" {
  description = "Users that connect with IAM authentication."
  value       = var.databases
}

output "master_user_secret_arn" {
  description = "Secrets Manager secret RDS keeps the (rotated) master password in; break-glass only."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}
