output "vpc_id" {
  description = "The VPC's id."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "The VPC's IPv4 range."
  value       = aws_vpc.this.cidr_block
}

output "availability_zones" {
  description = "Zones the private subnets cover, in subnet order."
  value       = [for zone in var.availability_zones : aws_subnet.private[zone].availability_zone]
}

output "private_subnet_ids" {
  description = "One private subnet per availability zone, in the order of var.availability_zones."
  value       = [for zone in var.availability_zones : aws_subnet.private[zone].id]
}

output "private_route_table_ids" {
  description = "Route tables of the private subnets (the S3 gateway endpoint is on each)."
  value       = [for zone in var.availability_zones : aws_route_table.private[zone].id]
}

output "security_group_ids" {
  description = "Security group id by tier: alb, serving, platform, training, gpu_hosts, database, endpoints."
  value       = { for tier, group in aws_security_group.this : tier => group.id }
}

output "s3_prefix_list_id" {
  description = "Prefix list of the S3 gateway endpoint."
  value       = aws_vpc_endpoint.s3.prefix_list_id
}

output "flow_log_group_name" {
  description = "CloudWatch log group of the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow.name
}
