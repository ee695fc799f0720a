variable "create" {
  description = "Whether to create any resource (false makes the module a no-op with null outputs)."
  type        = bool
  default     = true
}

variable "name" {
  description = "Bucket name (globally unique). Generated documentation lives under `docs/<serverId>/<commit>.md`."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name)) && !can(regex("\\.\\.|^xn--|-s3alias$|^\\d+\\.\\d+\\.\\d+\\.\\d+$", var.name))
    error_message = "name must be a valid S3 bucket name: 3-63 lowercase letters, digits, '.' and '-'."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for SSE-KMS; null uses the AWS managed `aws/s3` key."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-zA-Z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "force_destroy" {
  description = "Delete the bucket even when it holds objects (ephemeral environments only)."
  type        = bool
  default     = false
}

variable "lifecycle_rules" {
  description = "Retention: documents are regenerated per commit, so old versions can expire."
  type = object({
    noncurrent_version_expiration_days = optional(number, 30)
    abort_incomplete_upload_days       = optional(number, 1)
  })
  default = {}

  validation {
    condition     = var.lifecycle_rules.noncurrent_version_expiration_days >= 1 && var.lifecycle_rules.noncurrent_version_expiration_days <= 3650
    error_message = "lifecycle_rules.noncurrent_version_expiration_days must be between 1 and 3650."
  }
  validation {
    condition     = var.lifecycle_rules.abort_incomplete_upload_days >= 1 && var.lifecycle_rules.abort_incomplete_upload_days <= 365
    error_message = "lifecycle_rules.abort_incomplete_upload_days must be between 1 and 365."
  }
}

variable "access_logging" {
  description = "Optional server access logging to another bucket."
  type = object({
    target_bucket = string
    target_prefix = optional(string, "toolshed-docs/")
  })
  default = null
}
