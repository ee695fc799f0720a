output "servers_table_name" {
  description = "Name of the servers table: TOOLSHED_SERVERS_TABLE."
  value       = try(aws_dynamodb_table.servers[0].name, null)
}

output "servers_table_arn" {
  description = "ARN of the servers table."
  value       = try(aws_dynamodb_table.servers[0].arn, null)
}

output "sessions_table_name" {
  description = "Name of the sessions table: TOOLSHED_SESSIONS_TABLE."
  value       = try(aws_dynamodb_table.sessions[0].name, null)
}

output "sessions_table_arn" {
  description = "ARN of the sessions table."
  value       = try(aws_dynamodb_table.sessions[0].arn, null)
}

output "sessions_index_arns" {
  description = "ARNs of the sessions table's indexes (`by-server`, `live-by-expiry`, `live-by-server`, `instances-by-name`), for IAM."
  value       = var.create ? [for index in ["by-server", "live-by-expiry", "live-by-server", "instances-by-name"] : "${aws_dynamodb_table.sessions[0].arn}/index/${index}"] : []
}

output "table_arns" {
  description = "ARNs of both tables."
  value       = var.create ? [aws_dynamodb_table.servers[0].arn, aws_dynamodb_table.sessions[0].arn] : []
}
