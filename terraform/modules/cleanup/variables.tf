variable "create" {
  description = "Whether to create any resource (false makes the module a no-op with null outputs)."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the function (also prefixes its roles, queue, schedule and alarms)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9-_]{1,50}$", var.name))
    error_message = "name must be 1-50 characters of letters, digits, '-' and '_'."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "lambda_zip_path" {
  description = "Path of the built sweeper (a zip holding `bootstrap`, built from examples/cleanup-lambda for provided.al2023; see README)."
  type        = string

  validation {
    condition     = var.lambda_zip_path == null || try(endswith(var.lambda_zip_path, ".zip"), false)
    error_message = "lambda_zip_path must be the path of a .zip file."
  }
}

variable "architecture" {
  description = "Instruction set the zip was built for."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "cluster_arn" {
  description = "ARN of the playground ECS cluster the sweeper may list and stop tasks in."
  type        = string

  validation {
    condition     = var.cluster_arn == null || can(regex("^arn:aws[a-zA-Z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9_-]+$", var.cluster_arn))
    error_message = "cluster_arn must be an ECS cluster ARN."
  }
}

variable "sessions_table_arn" {
  description = "ARN of the sessions table (the sweeper queries `live-by-expiry` and ends sessions)."
  type        = string

  validation {
    condition     = var.sessions_table_arn == null || can(regex("^arn:aws[a-zA-Z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/.+$", var.sessions_table_arn))
    error_message = "sessions_table_arn must be a DynamoDB table ARN."
  }
}

variable "servers_table_arn" {
  description = "ARN of the servers table: task state events read a server's transport (MCP port and path) from it. Null: events whose endpoint needs it leave it to the next status poll."
  type        = string
  default     = null

  validation {
    condition     = var.servers_table_arn == null || can(regex("^arn:aws[a-zA-Z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/.+$", var.servers_table_arn))
    error_message = "servers_table_arn must be a DynamoDB table ARN."
  }
}

variable "task_state_events" {
  description = "Whether an EventBridge rule delivers this cluster's playground task state changes (ECS Task State Change, group toolshed-session:*, startedBy the deployment id) to the function, keeping session status fresh without DescribeTasks per poll."
  type        = bool
  default     = true
}

variable "event_concurrency" {
  description = "Reserved concurrency of the function when it also takes task state events."
  type        = number
  default     = 5

  validation {
    condition     = var.event_concurrency >= 1 && var.event_concurrency <= 100
    error_message = "event_concurrency must be between 1 and 100."
  }
}

variable "table_kms_key_arn" {
  description = "Customer managed KMS key of the sessions table, if any."
  type        = string
  default     = null
}

variable "environment" {
  description = "Environment of the function: the sweep settings (PLAYGROUND_CLUSTER, TOOLSHED_SERVERS_TABLE, TOOLSHED_SESSIONS_TABLE, optional TOOLSHED_TASK_FAMILY_PREFIX and TOOLSHED_DEPLOYMENT_ID); Lambda sets AWS_REGION itself."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for k in keys(var.environment) :
      !contains(["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER", "_X_AMZN_TRACE_ID"], k) && !startswith(k, "AWS_LAMBDA_")
    ])
    error_message = "environment must not set Lambda's reserved variables (AWS_REGION, AWS_LAMBDA_*, credentials, ...)."
  }
}

variable "schedule_expression" {
  description = "How often the sweep runs. The Fargate session TTL is only as precise as this."
  type        = string
  default     = "rate(1 minute)"

  validation {
    condition     = can(regex("^(rate\\(\\d+ (minute|minutes|hour|hours|day|days)\\)|cron\\(.+\\))$", var.schedule_expression))
    error_message = "schedule_expression must be rate(N unit) or cron(...)."
  }
}

variable "timeout_seconds" {
  description = "Function timeout; keep it below the schedule period so runs do not overlap."
  type        = number
  default     = 50

  validation {
    condition     = var.timeout_seconds >= 3 && var.timeout_seconds <= 900
    error_message = "timeout_seconds must be between 3 and 900."
  }
}

variable "memory_size" {
  description = "Function memory (MB)."
  type        = number
  default     = 128

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for the function's environment, log group and dead-letter queue; null uses AWS managed keys."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-zA-Z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "log_retention_days" {
  description = "Retention of the function's log group."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value (1, 3, 5, 7, 14, 30, ... 3653)."
  }
}

variable "alarm" {
  description = "Alarms on sweep errors and dead-lettered invocations. `actions`: SNS topic ARNs to notify."
  type = object({
    actions             = optional(list(string), [])
    evaluation_periods  = optional(number, 5)
    datapoints_to_alarm = optional(number, 3)
  })
  default = {}

  validation {
    condition     = var.alarm.datapoints_to_alarm >= 1 && var.alarm.datapoints_to_alarm <= var.alarm.evaluation_periods && var.alarm.evaluation_periods <= 60
    error_message = "alarm needs 1 <= datapoints_to_alarm <= evaluation_periods <= 60."
  }
}

variable "task_family_prefix" {
  description = "Prefix of the service's task definition families (TOOLSHED_TASK_FAMILY_PREFIX): the sweep deregisters and deletes the per-task families `<prefix>_task_*` of tasks that no longer run."
  type        = string
  default     = "toolshed"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_-]{0,100}$", var.task_family_prefix))
    error_message = "task_family_prefix must start with a letter and be at most 101 characters of letters, digits, '-' and '_'."
  }
}

variable "secrets_prefix" {
  description = "Name prefix of the service's Secrets Manager secrets (TOOLSHED_SECRETS_PREFIX): the sweep deletes the leftover per-task secrets `<prefix>/tasks/*`."
  type        = string
  default     = "toolshed"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$", var.secrets_prefix)) && length(var.secrets_prefix) <= 64
    error_message = "secrets_prefix must be at most 64 letters, digits, '-', '_' and inner '/'."
  }
}
