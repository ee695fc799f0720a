variable "create" {
  description = "Whether to create any resource (false makes the module a no-op with null outputs)."
  type        = bool
  default     = true
}

variable "name" {
  description = "Prefix of the table names: `<name>-servers` and `<name>-sessions`."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,200}$", var.name))
    error_message = "name must be 3-200 characters of a-z, A-Z, 0-9, '_', '.' and '-'."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for server-side encryption; null uses the AWS managed `aws/dynamodb` key."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-zA-Z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the tables (turn off only for ephemeral environments)."
  type        = bool
  default     = true
}

variable "point_in_time_recovery" {
  description = "Point-in-time recovery of both tables (always on; the window is configurable)."
  type = object({
    recovery_period_in_days = optional(number, 35)
  })
  default = {}

  validation {
    condition     = var.point_in_time_recovery.recovery_period_in_days >= 1 && var.point_in_time_recovery.recovery_period_in_days <= 35
    error_message = "point_in_time_recovery.recovery_period_in_days must be between 1 and 35."
  }
}
