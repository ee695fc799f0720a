output "project_name" {
  description = "Name of the CodeBuild project: TOOLSHED_CODEBUILD_PROJECT."
  value       = try(aws_codebuild_project.this[0].name, null)
}

output "project_arn" {
  description = "ARN of the CodeBuild project."
  value       = try(aws_codebuild_project.this[0].arn, null)
}

output "role_arn" {
  description = "ARN of the build role."
  value       = try(aws_iam_role.this[0].arn, null)
}

output "log_group_name" {
  description = "Name of the build log group."
  value       = try(aws_cloudwatch_log_group.this[0].name, null)
}

output "log_group_arn" {
  description = "ARN of the build log group."
  value       = try(aws_cloudwatch_log_group.this[0].arn, null)
}

output "buildspec" {
  description = "The buildspec every build runs."
  value       = file("${path.module}/buildspec.yml")
}
