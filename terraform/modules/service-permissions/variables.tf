variable "create" {
  description = "Whether to create any resource (false makes the module a no-op with null outputs)."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the IAM policy."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,128}$", var.name))
    error_message = "name must be 1-128 characters of letters, digits and +=,.@_-."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "attach_to_role_names" {
  description = "Names of existing IAM roles of the embedding service to attach the policy to."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.attach_to_role_names : can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", r))])
    error_message = "attach_to_role_names must be IAM role names (not ARNs)."
  }
}

variable "cluster_arn" {
  description = "ARN of the playground ECS cluster."
  type        = string

  validation {
    condition     = var.cluster_arn == null || can(regex("^arn:aws[a-zA-Z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9_-]+$", var.cluster_arn))
    error_message = "cluster_arn must be an ECS cluster ARN."
  }
}

variable "task_family_prefix" {
  description = "Prefix of the task definition families the service registers (`<prefix>-<serverId>-<digest12>`)."
  type        = string
  default     = "toolshed"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_-]{0,100}$", var.task_family_prefix))
    error_message = "task_family_prefix must start with a letter and be at most 101 characters of letters, digits, '-' and '_'."
  }
}

variable "secrets_prefix" {
  description = "Name prefix of the Secrets Manager secrets the service writes (TOOLSHED_SECRETS_PREFIX): `<prefix>/tasks/*` (per-task values), `<prefix>/servers/*` and `<prefix>/instances/*` (kept values)."
  type        = string
  default     = "toolshed"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$", var.secrets_prefix)) && length(var.secrets_prefix) <= 64
    error_message = "secrets_prefix must be at most 64 letters, digits, '-', '_' and inner '/'."
  }
}

variable "task_role_arns" {
  description = "The two roles the service passes to ECS: the task execution role and the task role."
  type        = list(string)

  validation {
    condition     = length(var.task_role_arns) == 2 && alltrue([for a in var.task_role_arns : a == null || can(regex("^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/.+$", a))])
    error_message = "task_role_arns must be exactly two IAM role ARNs."
  }
}

variable "table_arns" {
  description = "ARNs of the servers and sessions tables (their indexes are included)."
  type = object({
    servers  = string
    sessions = string
  })

  validation {
    condition     = alltrue([for a in [var.table_arns.servers, var.table_arns.sessions] : a == null || can(regex("^arn:aws[a-zA-Z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/.+$", a))])
    error_message = "table_arns must be DynamoDB table ARNs."
  }
}

variable "repository_arn" {
  description = "ARN of the ECR repository of verified images."
  type        = string

  validation {
    condition     = var.repository_arn == null || can(regex("^arn:aws[a-zA-Z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$", var.repository_arn))
    error_message = "repository_arn must be an ECR repository ARN."
  }
}

variable "codebuild_project_arn" {
  description = "ARN of the verification CodeBuild project."
  type        = string

  validation {
    condition     = var.codebuild_project_arn == null || can(regex("^arn:aws[a-zA-Z-]*:codebuild:[a-z0-9-]+:[0-9]{12}:project/.+$", var.codebuild_project_arn))
    error_message = "codebuild_project_arn must be a CodeBuild project ARN."
  }
}

variable "docs_bucket_arn" {
  description = "ARN of the docs bucket (the service reads and writes `docs/*`)."
  type        = string

  validation {
    condition     = var.docs_bucket_arn == null || can(regex("^arn:aws[a-zA-Z-]*:s3:::[a-z0-9.-]{3,63}$", var.docs_bucket_arn))
    error_message = "docs_bucket_arn must be an S3 bucket ARN."
  }
}

variable "log_group_arns" {
  description = "Log groups the service may read to show or link logs (playground tasks, builds)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.log_group_arns : a == null || can(regex("^arn:aws[a-zA-Z-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:[^*]+$", a))])
    error_message = "log_group_arns must be log group ARNs without a trailing ':*'."
  }
}

variable "openai_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the OpenAI API key, if the service reads it from there."
  type        = string
  default     = null
}

variable "kms_key_arns" {
  description = "Customer managed KMS keys of the tables, bucket or secret, if any (used only through those services)."
  type        = list(string)
  default     = []
}
