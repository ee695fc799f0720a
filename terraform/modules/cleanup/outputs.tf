output "function_name" {
  description = "Name of the sweeper function."
  value       = try(aws_lambda_function.this[0].function_name, null)
}

output "function_arn" {
  description = "ARN of the sweeper function."
  value       = try(aws_lambda_function.this[0].arn, null)
}

output "role_arn" {
  description = "ARN of the function's role."
  value       = try(aws_iam_role.lambda[0].arn, null)
}

output "schedule_arn" {
  description = "ARN of the EventBridge Scheduler schedule."
  value       = try(aws_scheduler_schedule.this[0].arn, null)
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue."
  value       = try(aws_sqs_queue.dlq[0].arn, null)
}

output "log_group_name" {
  description = "Name of the function's log group."
  value       = try(aws_cloudwatch_log_group.this[0].name, null)
}

output "errors_alarm_arn" {
  description = "ARN of the errors alarm."
  value       = try(aws_cloudwatch_metric_alarm.errors[0].arn, null)
}

output "environment_names" {
  description = "Names of the environment variables the function gets (values are the settings)."
  value       = sort(keys(var.environment))
}

output "task_state_rule_arn" {
  description = "ARN of the EventBridge rule delivering task state changes to the function (null when disabled)."
  value       = try(aws_cloudwatch_event_rule.task_state[0].arn, null)
}
