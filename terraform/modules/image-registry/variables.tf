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
    Image retention. ECR lifecycle rules cannot group images by a dynamic tag prefix, so "keep the
    last N images per server" is expressed for the servers listed in `servers` (tags are
    `<serverId>-<sha12>`). `max_total_images` optionally caps the whole repository (careful: it can
    expire the only image of an idle server; null disables it).
  EOT
  type = object({
    untagged_expire_days = optional(number, 1)
    images_per_server    = optional(number, 5)
    servers              = optional(list(string), [])
    max_total_images     = optional(number)
  })
  default = {}

  validation {
    condition     = var.lifecycle_rules.untagged_expire_days >= 1 && var.lifecycle_rules.untagged_expire_days <= 3650
    error_message = "lifecycle_rules.untagged_expire_days must be between 1 and 3650."
  }
  validation {
    condition     = var.lifecycle_rules.images_per_server >= 1 && var.lifecycle_rules.images_per_server <= 1000
    error_message = "lifecycle_rules.images_per_server must be between 1 and 1000."
  }
  validation {
    condition     = alltrue([for s in var.lifecycle_rules.servers : can(regex("^[a-z0-9][a-z0-9-]{0,62}$", s))])
    error_message = "lifecycle_rules.servers must be server ids: 1-63 of a-z, 0-9 and '-', starting with a letter or digit."
  }
  validation {
    condition     = var.lifecycle_rules.max_total_images == null || try(var.lifecycle_rules.max_total_images >= 1 && var.lifecycle_rules.max_total_images <= 10000, false)
    error_message = "lifecycle_rules.max_total_images must be null or between 1 and 10000."
  }
}

variable "repository_policy_json" {
  description = "Optional repository policy (JSON), e.g. to let another account pull. Null attaches none."
  type        = string
  default     = null
}
