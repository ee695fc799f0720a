output "cluster_name" {
  description = "Name of the ECS cluster: PLAYGROUND_CLUSTER."
  value       = try(aws_ecs_cluster.this[0].name, null)
}

output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = try(aws_ecs_cluster.this[0].arn, null)
}

output "task_execution_role_arn" {
  description = "ARN of the task execution role: TOOLSHED_TASK_EXECUTION_ROLE_ARN."
  value       = try(aws_iam_role.task_execution[0].arn, null)
}

output "task_role_arn" {
  description = "ARN of the task role: TOOLSHED_TASK_ROLE_ARN."
  value       = try(aws_iam_role.task[0].arn, null)
}

output "task_role_name" {
  description = "Name of the task role (attach the servers' own permissions here)."
  value       = try(aws_iam_role.task[0].name, null)
}

output "security_group_id" {
  description = "ID of the security group of tasks with internet egress: AWS_SECURITY_GROUP_ID."
  value       = try(aws_security_group.this[0].id, null)
}

output "no_egress_security_group_id" {
  description = "ID of the security group of tasks with egress none: TOOLSHED_NO_EGRESS_SECURITY_GROUP_ID."
  value       = try(aws_security_group.no_egress[0].id, null)
}

output "log_group_name" {
  description = "Name of the playground log group: TOOLSHED_LOG_GROUP."
  value       = try(aws_cloudwatch_log_group.this[0].name, null)
}

output "log_group_arn" {
  description = "ARN of the playground log group."
  value       = try(aws_cloudwatch_log_group.this[0].arn, null)
}
