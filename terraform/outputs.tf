output "settings" {
  description = "Every setting the Toolshed service reads, as environment variable name => value: wire the service with this one map (e.g. an ECS container's environment or a Lambda's variables)."
  value       = var.create ? merge(local.settings, local.settings_optional) : {}
}

output "service_policy_json" {
  description = "The least-privilege IAM policy of the embedding service (JSON)."
  value       = module.service_permissions.policy_json
}

output "service_policy_arn" {
  description = "ARN of the embedding service's managed policy."
  value       = module.service_permissions.policy_arn
}

output "repository_url" {
  description = "URI of the ECR repository of verified images."
  value       = module.image_registry.repository_url
}

output "repository_arn" {
  description = "ARN of the ECR repository."
  value       = module.image_registry.repository_arn
}

output "cluster_arn" {
  description = "ARN of the playground ECS cluster."
  value       = module.playground.cluster_arn
}

output "security_group_id" {
  description = "ID of the playground tasks' security group (add ingress sources through network.ingress_*)."
  value       = module.playground.security_group_id
}

output "no_egress_security_group_id" {
  description = "ID of the security group of playground tasks with egress none (add ingress sources through network.ingress_*)."
  value       = module.playground.no_egress_security_group_id
}

output "task_role_name" {
  description = "Name of the playground task role (permissionless by default)."
  value       = module.playground.task_role_name
}

output "servers_table_arn" {
  description = "ARN of the servers table."
  value       = module.state.servers_table_arn
}

output "sessions_table_arn" {
  description = "ARN of the sessions table."
  value       = module.state.sessions_table_arn
}

output "codebuild_project_arn" {
  description = "ARN of the verification project."
  value       = module.verification.project_arn
}

output "docs_bucket_arn" {
  description = "ARN of the docs bucket."
  value       = module.docs.bucket_arn
}

output "cleanup_function_arn" {
  description = "ARN of the session sweeper (null when cleanup.lambda_zip_path is unset)."
  value       = module.cleanup.function_arn
}

output "openai_secret_arn" {
  description = "ARN of the OpenAI API key secret, when created."
  value       = try(aws_secretsmanager_secret.openai[0].arn, null)
}
