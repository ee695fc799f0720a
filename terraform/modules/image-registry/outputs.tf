output "repository_arn" {
  description = "ARN of the repository."
  value       = try(aws_ecr_repository.this[0].arn, null)
}

output "repository_name" {
  description = "Name of the repository."
  value       = try(aws_ecr_repository.this[0].name, null)
}

output "repository_url" {
  description = "URI of the repository (`<account>.dkr.ecr.<region>.amazonaws.com/<name>`): TOOLSHED_ECR_REPOSITORY_URI."
  value       = try(aws_ecr_repository.this[0].repository_url, null)
}

output "lifecycle_policy" {
  description = "The lifecycle policy document (JSON) applied to the repository."
  value       = var.create ? local.lifecycle_policy : null
}
