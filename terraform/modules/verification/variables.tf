variable "create" {
  description = "Whether to create any resource (false makes the module a no-op with null outputs)."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the CodeBuild project (also prefixes its role and log group)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{1,54}$", var.name))
    error_message = "name must be 2-55 characters of letters, digits, '-' and '_', starting with a letter or digit."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "repository_arn" {
  description = "ARN of the ECR repository builds push to (the build role may push there only)."
  type        = string

  validation {
    condition     = var.repository_arn == null || can(regex("^arn:aws[a-zA-Z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$", var.repository_arn))
    error_message = "repository_arn must be an ECR repository ARN."
  }
}

variable "repository_url" {
  description = "URI of that repository (default REPOSITORY_URI of every build)."
  type        = string

  validation {
    condition     = var.repository_url == null || can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/.+$", var.repository_url))
    error_message = "repository_url must look like <account>.dkr.ecr.<region>.amazonaws.com/<name>."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for build artifacts/logs and the repository's images, if any; null uses AWS managed keys."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-zA-Z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "compute_type" {
  description = "CodeBuild compute size."
  type        = string
  default     = "BUILD_GENERAL1_SMALL"

  validation {
    condition     = contains(["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE", "BUILD_GENERAL1_XLARGE", "BUILD_GENERAL1_2XLARGE"], var.compute_type)
    error_message = "compute_type must be one of BUILD_GENERAL1_SMALL, _MEDIUM, _LARGE, _XLARGE, _2XLARGE."
  }
}

variable "build_image" {
  description = "CodeBuild image (needs docker, git, jq and the AWS CLI; the Amazon Linux standard image has them)."
  type        = string
  default     = "aws/codebuild/amazonlinux-x86_64-standard:5.0"
}

variable "build_timeout_minutes" {
  description = "Build timeout."
  type        = number
  default     = 30

  validation {
    condition     = var.build_timeout_minutes >= 5 && var.build_timeout_minutes <= 480
    error_message = "build_timeout_minutes must be between 5 and 480."
  }
}

variable "queued_timeout_minutes" {
  description = "How long a build may wait in the queue."
  type        = number
  default     = 60

  validation {
    condition     = var.queued_timeout_minutes >= 5 && var.queued_timeout_minutes <= 480
    error_message = "queued_timeout_minutes must be between 5 and 480."
  }
}

variable "concurrent_build_limit" {
  description = "Maximum concurrent builds (null: the account limit)."
  type        = number
  default     = null

  validation {
    condition     = var.concurrent_build_limit == null || try(var.concurrent_build_limit >= 1 && var.concurrent_build_limit <= 1000, false)
    error_message = "concurrent_build_limit must be null or between 1 and 1000."
  }
}

variable "source_config" {
  description = <<-EOT
    Where builds clone from. Every build overrides `location` (sourceLocationOverride) and the
    commit (sourceVersion); `default_location` only satisfies the API. `credentials` is for private
    repositories: `codeconnections` (a CodeConnections/CodeStar connection ARN) or `secrets_manager`
    (ARN of a secret holding a GitHub token); `none` clones public repositories.
  EOT
  type = object({
    default_location = optional(string, "https://github.com/modelcontextprotocol/servers.git")
    fetch_submodules = optional(bool, false)
    credentials = optional(object({
      type = string
      arn  = string
    }), { type = "none", arn = "" })
  })
  default = {}

  validation {
    condition     = can(regex("^https://github\\.com/[^/]+/[^/]+$", var.source_config.default_location))
    error_message = "source_config.default_location must be an https://github.com/<owner>/<repo> URL."
  }
  validation {
    condition     = contains(["none", "codeconnections", "secrets_manager"], var.source_config.credentials.type)
    error_message = "source_config.credentials.type must be none, codeconnections or secrets_manager."
  }
  validation {
    condition = (
      var.source_config.credentials.type == "none" ||
      (var.source_config.credentials.type == "codeconnections" && can(regex("^arn:aws[a-zA-Z-]*:(codeconnections|codestar-connections):", var.source_config.credentials.arn))) ||
      (var.source_config.credentials.type == "secrets_manager" && can(regex("^arn:aws[a-zA-Z-]*:secretsmanager:", var.source_config.credentials.arn)))
    )
    error_message = "source_config.credentials.arn must be a connection ARN (codeconnections) or a secret ARN (secrets_manager)."
  }
}

variable "stdio_bridge" {
  description = <<-EOT
    The static stdio bridge added to images of stdio-only servers (MCP_TRANSPORT=stdio). Give one of:
    `s3_uri` (s3://bucket/key of the binary) or `image` (an image holding it at /toolshed-stdio-bridge;
    `image_repository_arn` when that image is in another ECR repository of this account).
    `entrypoint` is the bridge's argv before the server command (exec form).
  EOT
  type = object({
    s3_uri               = optional(string)
    image                = optional(string)
    image_repository_arn = optional(string)
    entrypoint           = optional(list(string), ["/toolshed/stdio-bridge", "--host", "0.0.0.0", "--port", "8000", "--"])
  })
  default = {}

  validation {
    condition     = var.stdio_bridge.s3_uri == null || can(regex("^s3://[a-z0-9.-]{3,63}/.+$", var.stdio_bridge.s3_uri))
    error_message = "stdio_bridge.s3_uri must be s3://<bucket>/<key>."
  }
  validation {
    condition     = !(var.stdio_bridge.s3_uri != null && var.stdio_bridge.image != null)
    error_message = "Give stdio_bridge.s3_uri or stdio_bridge.image, not both."
  }
  validation {
    condition     = length(var.stdio_bridge.entrypoint) > 0
    error_message = "stdio_bridge.entrypoint must not be empty."
  }
}

variable "log" {
  description = "The build log group."
  type = object({
    retention_days = optional(number, 30)
  })
  default = {}

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log.retention_days)
    error_message = "log.retention_days must be a CloudWatch Logs retention value (1, 3, 5, 7, 14, 30, ... 3653)."
  }
}
