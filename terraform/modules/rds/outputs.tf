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

output "database_name" {
  description = "Database of the Dagster instance (created with the instance)."
  value       = aws_db_instance.this.db_name
}

output "database_users" {
  description = "Application databases, one per component (dagster, mlflow)."
  value       = var.databases
}

output "master_user_secret_arn" {
  description = "Secrets Manager secret (JSON username, password) RDS keeps and rotates the master credentials in; ECS injects them into the platform tasks."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}
