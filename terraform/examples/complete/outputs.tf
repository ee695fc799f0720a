output "settings" {
  description = "The service's environment: every TOOLSHED_* / AWS_* setting."
  value       = module.toolshed.settings
}

output "service_role_arn" {
  description = "The example service role, with the Toolshed policy attached."
  value       = aws_iam_role.service.arn
}

output "disabled_settings" {
  description = "Settings of the disabled instance (an empty map)."
  value       = module.toolshed_disabled.settings
}
