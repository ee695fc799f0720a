output "policy_json" {
  description = "The policy document (JSON), for consumers who attach it their own way."
  value       = try(data.aws_iam_policy_document.this[0].json, null)
}

output "policy_arn" {
  description = "ARN of the managed policy."
  value       = try(aws_iam_policy.this[0].arn, null)
}

output "policy_name" {
  description = "Name of the managed policy."
  value       = try(aws_iam_policy.this[0].name, null)
}
