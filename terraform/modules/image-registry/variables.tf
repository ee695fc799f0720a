variable "create" {
  description = "Whether to create any resource (false makes the module a no-op with null outputs)."
  type        = bool
  default     = true
}

variable "name" {
  description = "ECR repository name, e.g. `toolshed/mcp-servers`."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", var.name)) && length(var.name) >= 2 && length(var.name) <= 256
    error_message = "name must be a valid ECR repository name: 2-256 lowercase characters, digits, '.', '_', '-' and '/' separators."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for image encryption; null uses the AWS managed `aws/ecr` key (KMS)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-zA-Z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "force_delete" {
  description = "Delete the repository even when it holds images (useful for ephemeral environments)."
  type        = bool
  default     = false
}

variable "lifecycle_rules" {
  description = <<-EOT
    Image retention by tag kind. Untagged images expire after `untagged_expire_days`; build
    candidates (`build-*`: images whose verification failed or never finished) after
    `candidate_expire_days`. Verified images (`verified-*`) never expire: a server's last good
    image stays launchable, at the cost of keeping every verified image (see the README).
  EOT
  type = object({
    untagged_expire_days  = optional(number, 1)
    candidate_expire_days = optional(number, 7)
  })
  default = {}

  validation {
    condition     = var.lifecycle_rules.untagged_expire_days >= 1 && var.lifecycle_rules.untagged_expire_days <= 3650
    error_message = "lifecycle_rules.untagged_expire_days must be between 1 and 3650."
  }
  validation {
    condition     = var.lifecycle_rules.candidate_expire_days >= 1 && var.lifecycle_rules.candidate_expire_days <= 3650
    error_message = "lifecycle_rules.candidate_expire_days must be between 1 and 3650 (a verification must finish before its candidate expires)."
  }
}

variable "repository_policy_json" {
  description = "Optional repository policy (JSON), e.g. to let another account pull. Null attaches none."
  type        = string
  default     = null
}
